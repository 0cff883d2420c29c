"""Release folders: <release_dir>/<image>/<UTC timestamp>-<short key>[-failed]/, written under a partial name
and renamed whole, so a full disk or Ctrl-C leaves no half release. `latest` points at the newest release that
passed; retention keeps the newest `keep` releases (and as many failed records), never the one `latest` names."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .. import progress
from ..errors import ConfigError, VisaBuildError

PARTIAL = ".partial-"
LATEST = "latest"
LAST_CHECK = "last-check.json"
FAILED = "-failed"
NO_CHANGE = "NO-CHANGE.txt"
COPIED = ".visa-record-copy"  # in a record's copy: the names the copy wrote, all that the next copy removes
CHUNK = 8 << 20

Copy = Callable[[Path, Path], Any]


def folder_name(when: datetime, key: str, *, failed: bool) -> str:
    return f"{when:%Y%m%dT%H%M%SZ}-{key[:12]}" + (FAILED if failed else "")


def write(root: Path, name: str, files: Mapping[str, str | Path], *, copy: Copy = shutil.copyfile) -> Path:
    """Release `root/name` holding `files` (relative name: text, or a file to copy): all of them or nothing."""
    root.mkdir(parents=True, exist_ok=True)
    partial = root / f"{PARTIAL}{name}"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        partial.mkdir()
        for relative, content in files.items():
            target = partial / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                copy(content, target)
            else:
                target.write_text(content)
        os.rename(partial, root / name)
    except OSError as exc:
        raise VisaBuildError(
            f"the release {root / name} could not be written ({exc.strerror or exc}): nothing of it was kept, and "
            f"{root / LATEST} is unchanged",
            tip=f"free space under {root} (or set visa.release_dir) and run again",
        ) from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return root / name


def set_latest(root: Path, name: str) -> None:
    """Point `latest` at release `name`, atomically."""
    link = root / f"{PARTIAL}{LATEST}"
    link.unlink(missing_ok=True)
    link.symlink_to(name)
    os.replace(link, root / LATEST)


def latest(root: Path) -> Path | None:
    target = root / LATEST
    return target.resolve() if target.is_symlink() and target.resolve().is_dir() else None


def previous_manifest(root: Path) -> tuple[dict[str, Any] | None, str]:
    """The manifest of the release `latest` names, or None and why it cannot be used."""
    release = latest(root)
    if release is None:
        return None, "no previous release of this spec"
    try:
        manifest = json.loads((release / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        return None, f"no usable previous release: {release.name}/manifest.json is missing or damaged ({exc})"
    if not isinstance(manifest, dict) or "python" not in manifest or not {"system", "debian"} & set(manifest):
        return None, f"no usable previous release: {release.name}/manifest.json is not a manifest"
    return manifest, f"compared with release {release.name}"


def prune(root: Path, keep: int) -> list[str]:
    """Remove releases beyond the newest `keep` (and failed records beyond the newest `keep`), never the one
    `latest` names, and partial folders left by an interrupted run; returns the names removed."""
    if not root.is_dir():
        return []
    current = latest(root)
    folders = sorted((p for p in root.iterdir() if p.is_dir() and not p.is_symlink()), reverse=True)
    partial = [p for p in folders if p.name.startswith(PARTIAL)]
    releases = [p for p in folders if not p.name.startswith(PARTIAL) and not p.name.endswith(FAILED)]
    failed = [p for p in folders if p.name.endswith(FAILED)]
    doomed = partial + [p for p in releases[keep:] if p.resolve() != current] + failed[keep:]  # also via symlinks
    for folder in doomed:
        shutil.rmtree(folder, ignore_errors=True)
    return [p.name for p in doomed]


def read_last_check(root: Path) -> dict[str, Any]:
    try:
        found = json.loads((root / LAST_CHECK).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def write_last_check(root: Path, check: dict[str, Any]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    partial = root / f"{PARTIAL}{LAST_CHECK}"
    partial.write_text(json.dumps(check, indent=1, sort_keys=True) + "\n")
    os.replace(partial, root / LAST_CHECK)


def copy_without_image(folder: Path | None, destination: Path, *, no_change: str = "") -> Path:
    """A copy of record `folder` without its qcow2 (manifest, changes, SBOM, JUnit, logs) in `destination`, e.g.
    for CI artifacts; without a record, NO-CHANGE.txt holding `no_change`. Only what the previous copy wrote there
    (COPIED lists it) is replaced; anything else in `destination` is left alone, and never overwritten."""
    destination.mkdir(parents=True, exist_ok=True)
    _remove_previous_copy(destination)
    names = sorted(p.name for p in folder.iterdir() if not p.name.endswith(".qcow2")) if folder else [NO_CHANGE]
    clash = [name for name in names if (destination / name).exists() or (destination / name).is_symlink()]
    if clash:
        raise ConfigError(
            f"{destination} already holds {', '.join(clash)}, which the copy of the record would replace",
            tip="give --record-copy a new or empty folder",
        )
    (destination / COPIED).write_text("".join(f"{name}\n" for name in names))
    for name in names:
        if folder is None:
            (destination / name).write_text(no_change + "\n")
        elif (folder / name).is_dir():
            shutil.copytree(folder / name, destination / name, ignore=shutil.ignore_patterns("*.qcow2"))
        else:
            shutil.copyfile(folder / name, destination / name)
    return destination


def _remove_previous_copy(destination: Path) -> None:
    """Remove what the previous copy into `destination` wrote, as its COPIED file lists it (plain names only)."""
    listed = destination / COPIED
    names = listed.read_text().splitlines() if listed.is_file() else []
    for name in names:
        if not name or name in (".", "..") or "/" in name:
            continue
        path = destination / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    listed.unlink(missing_ok=True)


@dataclass(frozen=True)
class Release:
    """A passed release record, checked: its qcow2 matches the sha256 the record holds."""

    folder: Path
    spec_name: str
    qcow2: Path
    sha256: str
    sha512: str
    md5: str
    build: dict[str, Any]
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return self.folder.name


def read_release(folder: Path) -> Release:
    """The release in `folder` (or the one `folder/latest` names), its qcow2 verified against its sha256."""
    folder = latest(folder) or folder
    if not folder.is_dir():
        raise ConfigError(
            f"{folder} is not a release folder",
            tip="run the nightly first, or name a release: --release build/releases/<spec>/<name>",
        )
    try:
        build = json.loads((folder / "build.json").read_text())
        manifest = json.loads((folder / "manifest.json").read_text()) if (folder / "manifest.json").exists() else {}
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{folder}/build.json is missing or damaged ({exc})", tip="publish a release the nightly wrote"
        ) from None
    if folder.name.endswith(FAILED) or build.get("verdict") != "passed" or not manifest:
        raise ConfigError(
            f"{folder} is the record of a failed night, not a release: it is never published",
            tip="publish the release `latest` names, or fix the failure its ERROR.txt shows",
        )
    images = sorted(folder.glob("*.qcow2"))
    if len(images) != 1:
        raise ConfigError(f"{folder} holds {len(images)} qcow2 files; a release holds one", tip="publish another")
    sidecar = images[0].with_name(images[0].name + ".sha256")
    expected = sidecar.read_text().split()[0] if sidecar.is_file() and sidecar.read_text().split() else ""
    sha256, sha512, md5 = hashlib.sha256(), hashlib.sha512(), hashlib.md5(usedforsecurity=False)
    with progress.step(f"Checking {images[0].name} against its sha256"), images[0].open("rb") as data:
        while chunk := data.read(CHUNK):
            for digest in (sha256, sha512, md5):
                digest.update(chunk)
    if sha256.hexdigest() != expected:
        raise VisaBuildError(
            f"{images[0]} does not match its release's sha256 ({expected or 'missing'}): the file "
            "changed or is damaged since the release was written; it is not published",
            tip="publish another release, or run the nightly again",
        )
    return Release(
        folder, build["spec"]["name"], images[0], expected, sha512.hexdigest(), md5.hexdigest(), build, manifest
    )
