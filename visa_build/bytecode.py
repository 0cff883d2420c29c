"""Bytecode compiled on the host into the wheelhouse's wheels, so an emulated guest does not compile it.

Each module gets a checked-hash .pyc (PEP 552) beside it in the wheel, listed in RECORD: valid wherever the
wheel is installed, whatever the installed files' times, and still checked against its source at import.
Only done when the host's Python has the image's major.minor (same magic number and cache tag).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import marshal
import multiprocessing
import os
import sys
import warnings
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path, PurePosixPath

from .process import Runner, run

#: How `main` says how many modules it compiled (its output and its warnings come mixed).
COUNTED = "modules compiled: "
#: PEP 552 flags: hash-based (bit 0) and checked against the source at import (bit 1).
CHECKED_HASH = 0b11


def host_can_compile_for(python: str) -> bool:
    """True when this interpreter writes bytecode that `python` (e.g. '3.11.2') uses as is."""
    return tuple(int(part) for part in python.split(".")[:2]) == sys.version_info[:2]


def pyc(source: bytes, filename: str) -> bytes:
    """A checked-hash .pyc of `source`; raises SyntaxError or ValueError when it does not compile."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SyntaxWarnings of third-party modules are not ours to show
        code = compile(source, filename, "exec", dont_inherit=True)
    header = importlib.util.MAGIC_NUMBER + CHECKED_HASH.to_bytes(4, "little") + importlib.util.source_hash(source)
    return header + marshal.dumps(code)


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _is_module(name: str) -> bool:
    """A .py file of the wheel's packages (not of its .data or .dist-info folders)."""
    top = PurePosixPath(name).parts[0]
    return name.endswith(".py") and not top.endswith((".data", ".dist-info"))


def add_bytecode(wheel: Path) -> int:
    """Rewrite `wheel` with a .pyc for each module that compiles; returns how many were added."""
    partial = wheel.with_name(wheel.name + ".partial")
    added = 0
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as out:
        names = set(source.namelist())
        record = next(info for info in source.infolist() if info.filename.endswith(".dist-info/RECORD"))
        lines = source.read(record).decode().rstrip("\n").split("\n")
        for info in source.infolist():
            if info is record:
                continue
            data = source.read(info)
            out.writestr(info, data, compresslevel=1)  # a member's own ZipInfo would take zlib's slower default
            if not _is_module(info.filename):
                continue
            cached = PurePosixPath(importlib.util.cache_from_source(info.filename)).as_posix()
            if cached in names:
                continue
            try:
                compiled = pyc(data, info.filename)
            except (SyntaxError, ValueError):
                continue  # e.g. an example written for another Python; the installer would skip it too
            out.writestr(cached, compiled)
            lines.append(_record_line(cached, compiled))
            added += 1
        out.writestr(record, "\n".join(lines) + "\n")
    os.replace(partial, wheel)
    return added


def add_bytecode_to_all(wheels: list[Path], *, runner: Runner = run) -> int:
    """add_bytecode on every wheel, on every core, in a Python process of its own (`main`); returns the number of
    .pyc files added. Its own process, because the pool's workers import the caller's `__main__` anew unless they
    are forked, and forking a process with threads (the Docker base built alongside, output readers) may copy a
    lock that some thread holds: a caller's script then needs no `if __name__ == "__main__":` guard."""
    if not wheels:
        return 0
    # -P: the caller's working folder is not put on sys.path, so it is this visa_build that compiles
    result = runner([sys.executable, "-P", "-m", "visa_build.bytecode", *map(str, wheels)], timeout=3600)
    return next(int(line.removeprefix(COUNTED)) for line in reversed(result.lines) if line.startswith(COUNTED))


def main(wheels: list[Path]) -> None:
    """Compile bytecode into `wheels` the largest first (so no core waits for a late big one at the end), in
    workers forked from this thread-free process; prints how many modules were compiled."""
    largest_first = sorted(wheels, key=lambda wheel: wheel.stat().st_size, reverse=True)
    with ProcessPoolExecutor(mp_context=multiprocessing.get_context("fork")) as pool:
        print(f"{COUNTED}{sum(pool.map(add_bytecode, largest_first))}")


if __name__ == "__main__":
    main([Path(arg) for arg in sys.argv[1:]])
