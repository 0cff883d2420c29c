"""Runs sharing one host: every visa-build process is a run with an id (RUN_ID). From its start it holds the build
folder's in-use lock shared (`clean` takes it exclusively, so it never runs beside another run), and once
registered an exclusive lock on <build>/runs/<id>.lock while it lives. It names its VMs `visa-build-<id>-<name>`,
labels its containers with the id and names its scratch folders with it (noted in its lock file), so what a run
leaves behind when it is killed can be told apart from what live runs use: a run whose lock file is no longer
locked is dead. Work that must not happen twice at once (one spec, one shared cache entry) takes an `exclusive`
lock and says what it waits for."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from . import interrupts, progress
from .errors import ConfigError, VisaBuildError

RUN_ID = secrets.token_hex(4)
_registered: dict[Path, int] = {}  # runs folder -> the open, locked file descriptor of this run's lock
IN_USE = "in-use"  # the build folder's in-use lock, in its runs folder
_in_use: dict[Path, int] = {}  # runs folder -> the open descriptor of the build folder's in-use lock
_held: dict[Path, tuple[int, int]] = {}  # lock file -> (descriptor, depth): exclusive() is re-entrant


def runs_dir(build_dir: Path) -> Path:
    return build_dir / "runs"


def build_dir_id(build_dir: Path) -> str:
    """A random id of `build_dir`, made on first use and kept in its runs folder (`clean` keeps that): the Docker
    images its builds make carry it, so only its runs remove them, not those of another build folder, even one at
    the same path in another container on the same Docker engine."""
    path = runs_dir(build_dir) / "build-dir-id"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{RUN_ID}.partial")
        partial.write_text(secrets.token_hex(8) + "\n")
        with contextlib.suppress(FileExistsError):  # a run beside this one made it first: its id is the folder's
            os.link(partial, path)
        partial.unlink()
    return path.read_text().strip()


def use(build_dir: Path, *, timeout: float = 6 * 3600) -> None:
    """Hold the in-use lock of `build_dir` shared for the rest of this process (once): `clean` runs beside no run
    that has started, registered or not. While a `clean` holds it, say so and wait up to `timeout` seconds."""
    folder = runs_dir(build_dir)
    if folder not in _in_use:
        fd = _open_in_use(folder)
        try:
            _acquire(fd, folder / IN_USE, f"the clean of {build_dir}", timeout, fcntl.LOCK_SH)
        except BaseException:
            os.close(fd)
            raise
        _in_use[folder] = fd


def use_alone(build_dir: Path) -> None:
    """Hold the in-use lock of `build_dir` exclusively for the rest of this process (`clean`); VisaBuildError naming
    the runs that use it, when any does."""
    folder = runs_dir(build_dir)
    if folder not in _in_use:
        _in_use[folder] = _open_in_use(folder)
    try:
        fcntl.flock(_in_use[folder], fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        ids = live_runs(build_dir)
        who = f"visa-build runs {', '.join(ids)} are" if ids else "a visa-build run that is starting is"
        raise VisaBuildError(
            f"{who} using {build_dir}; clean removes nothing while runs use it",
            tip=f"wait for them (pids in {folder}; every process using it: fuser -v {folder / IN_USE})",
        ) from None


def _open_in_use(folder: Path) -> int:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return os.open(folder / IN_USE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as error:
        raise ConfigError(
            f"cannot write the build folder's run records in {folder}: {error.strerror}",
            tip="run as a user who may write visa.build_dir, or point visa.build_dir (INVOKE_VISA_BUILD_DIR) elsewhere",
        ) from None


def register(build_dir: Path) -> str:
    """Mark this process as a live run of `build_dir` (once, after taking its in-use lock); returns RUN_ID."""
    folder = runs_dir(build_dir)
    use(build_dir)
    if folder not in _registered:
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
        try:
            with open(lock, "rb") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (BlockingIOError, FileNotFoundError):  # alive, or already reaped by another run
            continue
        dead.append(lock.stem)
    return dead


def scratch_dir(parent: Path, prefix: str) -> Path:
    """A new folder under `parent` for this run's scratch (disks, mounts): named `<prefix><RUN_ID>-...` and noted in
    this run's lock file, so that the next run removes it when this one is killed."""
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{RUN_ID}-", dir=parent)).absolute()
    for fd in _registered.values():
        os.write(fd, f"{path}\n".encode())
    return path


def scratch_of(build_dir: Path, run_id: str) -> list[Path]:
    """The scratch folders run `run_id` noted in its lock file (after its pid) that are still there."""
    try:
        noted = (runs_dir(build_dir) / f"{run_id}.lock").read_text().splitlines()[1:]
    except FileNotFoundError:  # already reaped by another run
        return []
    folders = [Path(line) for line in noted if line.startswith("/")]
    return [folder for folder in folders if f"{run_id}-" in folder.name and folder.is_dir()]


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


def _acquire(fd: int, lock: Path, what: str, timeout: float, mode: int = fcntl.LOCK_EX) -> None:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        progress.note(f"waiting for {what}: another visa-build run holds {lock}")
    started = time.monotonic()
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            progress.note(f"{what}: free after {time.monotonic() - started:.0f} s")
            return
        except BlockingIOError:
            interrupts.stop_if_requested(f"waiting for {what}")
            if time.monotonic() - started > timeout:
                raise VisaBuildError(
                    f"gave up waiting for {what} after {timeout:.0f} s ({lock} stays locked)",
                    tip=f"see which run holds it: fuser -v {lock}",
                ) from None
            time.sleep(1)


def spec_lock(build_dir: Path, spec_name: str) -> contextlib.AbstractContextManager[None]:
    """Builds and tests of one spec, one at a time (they share its build context, disks and images)."""
    return exclusive(build_dir / "locks" / f"spec-{spec_name}.lock", f"the other run of spec {spec_name}")
