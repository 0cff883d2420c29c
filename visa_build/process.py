"""The only place that runs subprocesses: argv lists, streamed lines, a bounded tail, a timeout."""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from . import interrupts
from .errors import CommandError, CommandTimeoutError, ToolNotFoundError

LOGGER = logging.getLogger(__name__)

#: Every program visa-build runs is one the doctor installs (doctor.BUILD_TOOLS and TEST_TOOLS list them).
INSTALL_HINT = "run ./visa-build doctor --fix (it installs every tool visa-build needs; see README, Requirements)"

LineHandler = Callable[[str], None]
T = TypeVar("T")


@dataclass(frozen=True)
class Result:
    """What a finished command printed (stdout and stderr merged, in order)."""

    argv: list[str]
    returncode: int
    lines: list[str]

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


def which(tool: str) -> str:
    """Absolute path of `tool`, or ToolNotFoundError with an install hint."""
    path = shutil.which(tool)
    if path is None:
        raise ToolNotFoundError(tool, INSTALL_HINT)
    return path


#: Seconds a stopped command has to exit after SIGTERM before its group gets SIGKILL.
STOP_GRACE_SECONDS = 10.0


def _stop(proc: subprocess.Popen[Any], grace: float = STOP_GRACE_SECONDS) -> None:
    """Stop the whole process group: SIGTERM, then SIGKILL after `grace` seconds (a stop signal waits until it is
    done)."""
    with interrupts.shielded():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def child_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A child's environment: this process's without the OpenStack credentials (OS_*), which no child needs (Glance
    is reached in-process), plus `env`."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("OS_")}, **(env or {})}


def run(
    argv: list[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    on_line: LineHandler | None = None,
    check: bool = True,
    tail_lines: int = 40,
    tip: str | None = None,
    stop_grace: float = STOP_GRACE_SECONDS,
) -> Result:
    """Run `argv` to completion, streaming each output line to `on_line`.

    Raises CommandTimeoutError after `timeout` seconds (the process group is stopped) and, with
    `check`, CommandError on a non-zero exit. Ctrl-C stops the child before propagating: SIGTERM, and SIGKILL
    when it has not exited after `stop_grace` seconds (a test suite tearing down its VMs needs more).
    """
    argv = [which(argv[0]), *argv[1:]]
    interrupts.stop_if_requested(argv[0])
    LOGGER.info("running: %s", " ".join(argv))
    lines: list[str] = []
    tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        env=child_env(env),
        cwd=cwd,
        start_new_session=True,  # Ctrl-C reaches us only; we stop the child group ourselves
    )

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            lines.append(line)
            tail.append(line)
            if on_line is not None:
                on_line(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        _wait(proc, timeout, argv)
    except subprocess.TimeoutExpired:
        _stop(proc, stop_grace)
        reader.join(timeout=5)
        raise CommandTimeoutError(argv, timeout, list(tail)) from None
    except BaseException:
        _stop(proc, stop_grace)
        raise
    reader.join()
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, list(tail), tip=tip)
    return Result(argv, proc.returncode, lines)


def _wait(proc: subprocess.Popen[str], timeout: float, argv: list[str]) -> None:
    """Wait for `proc`; in a worker thread of `alongside`, raise interrupts.Cancelled as soon as the worker is asked
    to stop (unless `proc` is part of a shielded cleanup, such as an unmount)."""
    if threading.current_thread() is threading.main_thread():
        proc.wait(timeout=timeout)
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            proc.wait(timeout=min(0.5, max(0.0, deadline - time.monotonic())))
            return
        except subprocess.TimeoutExpired:
            if time.monotonic() >= deadline:
                raise
        interrupts.stop_if_requested(argv[0])


@contextlib.contextmanager
def alongside(job: Callable[[], T]) -> Iterator[Callable[[], T]]:
    """Run `job` in a worker thread while the block runs; yields the function that waits for its result (and
    raises its error). When the block fails or is interrupted, the job is asked to stop (its running command is
    stopped, it starts no other outside its shielded cleanups, it waits for no lock) and is waited for before the
    block's error goes on; a job that failed fails the block when its result is asked for, or at the block's end.
    The job must not take a lock its caller may hold: runs.exclusive counts a process's holds, not a thread's."""
    stop, done = threading.Event(), threading.Event()
    values: list[T] = []
    errors: list[BaseException] = []

    def work() -> None:
        interrupts.work_stops_on(stop)
        try:
            values.append(job())
        except BaseException as exc:  # handed to the thread that waits for the result
            errors.append(exc)
        finally:
            done.set()

    threading.Thread(target=work, name="alongside", daemon=True).start()

    def result() -> T:
        done.wait()  # not Thread.join: a join a signal interrupted may return at once the next time (Python < 3.13)
        if errors:
            raise errors[0]
        return values[0]

    try:
        yield result
        result()
    except BaseException:
        with interrupts.shielded():
            stop.set()
            done.wait()
        raise


@contextlib.contextmanager
def background(argv: list[str], *, log_path: str, cwd: str | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Run `argv` in the background for the duration of the block, output to `log_path`; always stopped."""
    argv = [which(argv[0]), *argv[1:]]
    LOGGER.info("starting in background: %s (log %s)", " ".join(argv), log_path)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=child_env(),
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        _stop(proc)


def daemon(argv: list[str], *, log_path: str) -> int:
    """Start a long-lived service (e.g. dockerd) detached from visa-build; returns its pid."""
    argv = [which(argv[0]), *argv[1:]]
    LOGGER.info("starting daemon: %s (log %s)", " ".join(argv), log_path)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=child_env(),
            start_new_session=True,
        )
    return proc.pid


class Runner(Protocol):
    """What library functions call to run a command; unit tests pass a fake that records argv."""

    def __call__(
        self,
        argv: list[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        on_line: LineHandler | None = None,
        check: bool = True,
        tail_lines: int = 40,
        tip: str | None = None,
        stop_grace: float = STOP_GRACE_SECONDS,
    ) -> Result: ...
