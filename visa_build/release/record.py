"""Release folders: <release_dir>/<image>/<UTC timestamp>-<short key>[-failed]/, written under a partial name
and renamed whole, so a full disk or Ctrl-C leaves no half release. `latest` points at the newest release that
passed; retention keeps the newest `keep` releases (and as many failed records), never the one `latest` names."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import VisaBuildError

PARTIAL = ".partial-"
LATEST = "latest"
LAST_CHECK = "last-check.json"
FAILED = "-failed"

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
            f"{root / LATEST} is unchanged", tip=f"free space under {root} (or set visa.release_dir) and run again",
        ) from None  # fmt: skip
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
    if not isinstance(manifest, dict) or not {"debian", "python"} <= set(manifest):
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
    doomed = partial + [p for p in releases[keep:] if p != current] + failed[keep:]
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


def copy_without_image(folder: Path, destination: Path) -> Path:
    """A copy of record `folder` without its qcow2 (manifest, changes, SBOM, JUnit, logs), e.g. for CI artifacts."""
    shutil.rmtree(destination, ignore_errors=True)
    shutil.copytree(folder, destination, ignore=shutil.ignore_patterns("*.qcow2"))
    return destination
