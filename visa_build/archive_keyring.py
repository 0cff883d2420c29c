"""Ubuntu's archive keyring, which a Debian host does not have: taken from Debian's own `ubuntu-keyring` package by
apt, so the trust runs from the host's Debian keyring, through Debian's signed index of that package, to the key
that signs Ubuntu's InRelease files. apt and mmdebstrap verify every Ubuntu index with it; verification is never
turned off."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from . import artefact, debian_package, progress
from .process import Runner, run

#: The Debian suite whose signed index carries the package, and what the package and the keyring are called.
SUITE = "trixie"
PACKAGE = "ubuntu-keyring"
KEYRING = "usr/share/keyrings/ubuntu-archive-keyring.gpg"


def ubuntu_keyring(cache_dir: Path, debian_mirror: str, *, runner: Runner = run) -> Path:
    """The verified Ubuntu archive keyring, cached under cache_dir/keyrings (fetched when absent or damaged)."""
    final = cache_dir / "keyrings" / "ubuntu-archive-keyring.gpg"
    if artefact.is_intact(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".keyring-", dir=final.parent))
    try:
        with progress.step(f"Fetching Ubuntu's archive keyring from Debian {SUITE}'s signed {PACKAGE} package"):
            files = debian_package.unpacked(PACKAGE, SUITE, debian_mirror, work, runner=runner)
            shutil.copyfile(files / KEYRING, work / "keyring.gpg")
            artefact.store(work / "keyring.gpg", final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final
