"""Runs sharing one host: every visa-build process is a run with an id (RUN_ID). It holds an exclusive lock on
<build>/runs/<id>.lock while it lives, names its VMs `visa-build-<id>-<name>` and labels its containers with the
id, so what a run leaves behind when it is killed can be told apart from what live runs use: a run whose lock
file is no longer locked is dead. Work that must not happen twice at once (one spec, one shared cache entry)
takes an `exclusive` lock and says what it waits for."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

from . import progress
from .errors import VisaBuildError

RUN_ID = secrets.token_hex(4)
_registered: dict[Path, int] = {}  # runs folder -> the open, locked file descriptor of this run's lock
_held: dict[Path, tuple[int, int]] = {}  # lock file -> (descriptor, depth): exclusive() is re-entrant


def runs_dir(build_dir: Path) -> Path:
    return build_dir / "runs"


def register(build_dir: Path) -> str:
    """Mark this process as a live run of `build_dir` (once); returns RUN_ID."""
    folder = runs_dir(build_dir)
    if folder not in _registered:
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{RUN_ID}.partial"  # locked before it is visible: never taken for a dead run's
        fd = os.open(partial, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.rename(partial, folder / f"{RUN_ID}.lock")
        _registered[folder] = fd
        atexit.register(forget, build_dir, RUN_ID)  # a run that ends normally leaves nothing to reap
    return RUN_ID


def dead_runs(build_dir: Path) -> list[str]:
    """Ids of runs of `build_dir` that ended without cleaning up (their lock is free)."""
    dead = []
    folder = runs_dir(build_dir)
    for lock in sorted(folder.glob("*.lock")) if folder.is_dir() else []:
        if lock.stem == RUN_ID:
            continue
        with open(lock, "rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            dead.append(lock.stem)
    return dead


def forget(build_dir: Path, run_id: str) -> None:
    (runs_dir(build_dir) / f"{run_id}.lock").unlink(missing_ok=True)


def live_runs(build_dir: Path) -> list[str]:
    folder = runs_dir(build_dir)
    ids = {lock.stem for lock in folder.glob("*.lock")} if folder.is_dir() else set()
    return sorted(ids - set(dead_runs(build_dir)) - {RUN_ID})


@contextlib.contextmanager
def exclusive(lock: Path, what: str, *, timeout: float = 6 * 3600) -> Iterator[None]:
    """Hold `lock` for the block (re-entrant within this process). When another run holds it: one line saying
    that this run waits for `what`, then wait up to `timeout` seconds."""
    if lock in _held:
        fd, depth = _held[lock]
        _held[lock] = (fd, depth + 1)
    else:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            _acquire(fd, lock, what, timeout)
        except BaseException:
            os.close(fd)
            raise
        _held[lock] = (fd, 1)
    try:
        yield
    finally:
        fd, depth = _held[lock]
        if depth > 1:
            _held[lock] = (fd, depth - 1)
        else:
            del _held[lock]
            os.close(fd)  # releases the lock


def _acquire(fd: int, lock: Path, what: str, timeout: float) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        progress.note(f"waiting for {what}: another visa-build run holds {lock}")
    started = time.monotonic()
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            progress.note(f"{what}: free after {time.monotonic() - started:.0f} s")
            return
        except BlockingIOError:
            if time.monotonic() - started > timeout:
                raise VisaBuildError(
                    f"gave up waiting for {what} after {timeout:.0f} s ({lock} stays locked)",
                    tip=f"see which run holds it: fuser -v {lock}",
                ) from None
            time.sleep(1)


def spec_lock(build_dir: Path, spec_name: str) -> contextlib.AbstractContextManager[None]:
    """Builds and tests of one spec, one at a time (they share its build context, disks and images)."""
    return exclusive(build_dir / "locks" / f"spec-{spec_name}.lock", f"the other run of spec {spec_name}")
