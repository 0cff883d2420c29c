"""Files cached by content: a sha256 sidecar written when stored, verified before every use."""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

from . import progress


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(functools.partial(handle.read, 1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def checksum(path: Path) -> str:
    """The verified artefact's checksum as Packer takes it: sha256:<hex>, read from its sidecar."""
    return "sha256:" + sidecar(path).read_text().split()[0]


def key_of(*parts: str | bytes) -> str:
    """A short hash of every input of a stage (order matters)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update((part.encode() if isinstance(part, str) else part) + b"\0")
    return digest.hexdigest()[:16]


def is_intact(path: Path) -> bool:
    """True when `path` and its sidecar exist and agree. A damaged entry (an empty or garbled sidecar, content
    that does not match it) is removed with one line saying so, and gets rebuilt."""
    check = sidecar(path)
    if not (path.is_file() and check.is_file()):
        return False
    words = check.read_text(errors="replace").split()
    if words and words[0] == sha256_of(path):
        return True
    why = "its content does not match its sha256 sidecar" if words else "its sha256 sidecar is empty"
    progress.note(f"cache entry {path.name} is damaged ({why}): rebuilding it")
    path.unlink(missing_ok=True)
    check.unlink(missing_ok=True)
    return False


def store(partial: Path, final: Path) -> str:
    """Move a finished `partial` file to `final` with its sidecar (sidecar last: no sidecar, no entry)."""
    digest = sha256_of(partial)
    final.parent.mkdir(parents=True, exist_ok=True)
    sidecar(final).unlink(missing_ok=True)
    os.replace(partial, final)
    tmp = sidecar(final).with_suffix(".partial")
    tmp.write_text(f"{digest}  {final.name}\n")
    os.replace(tmp, sidecar(final))
    return digest
