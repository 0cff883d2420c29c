"""Which Packer every call runs: a `packer` on PATH when it is 1.6.6 or newer (e.g. from HashiCorp's repository),
else Debian 12's package (1.6.6, a static binary: the last Debian or Ubuntu release to package Packer), downloaded
by apt from bookworm and unpacked into visa-build's own tools folder, never installed on the host."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import debian_package, packer, progress, runs
from .errors import VisaBuildError
from .process import run

MIN_VERSION = (1, 6, 6)
SUITE = "bookworm"


class PackerNotFoundError(VisaBuildError):
    """No Packer 1.6.6 or newer on PATH nor in the tools folder."""

    def __init__(self, refused: list[str], folder: Path) -> None:
        super().__init__(
            "no Packer 1.6.6 or newer" + (f" ({'; '.join(refused)})" if refused else ""),
            tip=f"./visa-build doctor --fix fetches Debian 12's packer into {folder}; or put Packer 1.6.6 or newer "
            "on PATH",
        )


@dataclass(frozen=True)
class Packer:
    path: str
    version: tuple[int, ...]

    def __str__(self) -> str:
        return f"{self.path} ({_dotted(self.version)})"


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def tools_folder(build_dir: Path) -> Path:
    """Where Debian's package is unpacked, a folder per version: <version>/usr/bin/packer."""
    return build_dir / "tools" / "packer"


def version_of(path: str) -> tuple[int, ...] | None:
    """What `path version` says, or None when it is not a Packer that answers."""
    try:
        result = run([path, "version"], timeout=60, env={"CHECKPOINT_DISABLE": "1"}, check=False)
        return packer.parse_version(result.output) if result.returncode == 0 else None
    except (VisaBuildError, OSError, ValueError):
        return None


def _candidates(build_dir: Path, *, on_path: bool) -> list[str]:
    found = shutil.which("packer") if on_path else None
    unpacked = sorted(tools_folder(build_dir).glob("*/usr/bin/packer"), reverse=True)
    return ([found] if found else []) + [str(path) for path in unpacked]


def choose(build_dir: Path, *, on_path: bool = True) -> Packer:
    """The Packer to run: the first of PATH's (unless not `on_path`) and the tools folder's that is 1.6.6 or newer."""
    refused = []
    for path in _candidates(build_dir, on_path=on_path):
        version = version_of(path)
        if version is not None and version >= MIN_VERSION:
            return Packer(path, version)
        refused.append(f"{path} is {_dotted(version) if version else 'not a Packer that answers `version`'}")
    raise PackerNotFoundError(refused, tools_folder(build_dir))


def fetch(build_dir: Path, mirror: str) -> Packer:
    """Debian 12's packer from `mirror`, verified by apt, unpacked into the tools folder (kept there for later
    runs); the host's packages are not touched."""
    folder = tools_folder(build_dir)
    with runs.exclusive(folder.parent / "packer.lock", "the download of Packer"):
        with contextlib.suppress(PackerNotFoundError):
            return choose(build_dir, on_path=False)  # a run beside this one fetched it while this one waited
        work = Path(tempfile.mkdtemp(prefix=".fetch-", dir=folder.parent))
        try:
            with progress.step(f"Fetching Debian 12's packer ({mirror} {SUITE}, verified by apt)"):
                files = debian_package.unpacked("packer", SUITE, mirror, work)
                version = version_of(str(files / "usr" / "bin" / "packer"))
                if version is None:
                    raise VisaBuildError(f"the packer of {files.name} does not run", tip="put Packer >= 1.6.6 on PATH")
                target = folder / _dotted(version)
                shutil.rmtree(target, ignore_errors=True)  # an earlier copy that no longer runs
                folder.mkdir(exist_ok=True)
                os.rename(files, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    chosen = Packer(str(target / "usr" / "bin" / "packer"), version)
    progress.note(
        f"Packer {_dotted(version)} from Debian 12's package is in {chosen.path} (the host's packages unchanged)"
    )
    return chosen
