"""How a run stops when asked: Ctrl-C, SIGTERM (a cancelled pipeline job) and SIGHUP (a dropped ssh session)
each raise Interrupted once, where the run is, so every `finally` cleans up as it does on an error.

Nothing cuts a cleanup short: a signal that comes while a shielded cleanup runs (stopping a child, unmounting,
detaching a loop device, removing a private key) takes effect when it is done, and every signal after the
first is noted and ignored. After SIGHUP the terminal is gone, so output goes to a log file (build/logs/
hangup-<run id>.log) instead of making the cleanup's next write fail."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """The run was asked to stop by `signum`."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP


class Cancelled(BaseException):
    """A worker thread's work stopped because the work beside it failed or the run was stopped
    (process.alongside); a BaseException, so no `except Exception` in the worker's code takes it."""


_first: int | None = None  # the signal that stopped the run
_hangup_log = os.devnull  # where output goes once the terminal is gone
_pending: int | None = None  # a signal that came during a shielded cleanup, raised when it ends
_shield_depth = 0
#: In a worker thread of process.alongside: `stop`, the event that asks it to stop, and `cleaning`, how deep it
#: is in shielded cleanups (which a stop does not cut short).
_worker = threading.local()


def install() -> None:
    """Handle the stop signals in this (the main) thread from now on."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _received)


def _received(signum: int, frame: FrameType | None) -> None:
    global _first, _pending
    if signum == signal.SIGHUP:
        detach_terminal()
    if _first is not None:
        name, first = signal.Signals(signum).name, signal.Signals(_first).name
        _say(f"visa-build: {name} received while cleaning up after {first}; it exits when the cleanup is done\n")
        return
    _first = signum
    if _shield_depth:
        _pending = signum
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """A cleanup a stop signal must not interrupt: a signal that comes meanwhile takes effect after it. Signals
    are raised in the main thread only; in a worker thread the block is a cleanup that a stop request does not cut
    short (its commands run to their end)."""
    global _shield_depth, _pending
    if threading.current_thread() is not threading.main_thread():
        _worker.cleaning = getattr(_worker, "cleaning", 0) + 1
        try:
            yield
        finally:
            _worker.cleaning -= 1
        return
    _shield_depth += 1
    try:
        yield
    finally:
        _shield_depth -= 1
        if _shield_depth == 0 and _pending is not None:
            signum, _pending = _pending, None
            raise Interrupted(signum)


def work_stops_on(stop: threading.Event) -> None:
    """This worker thread's work is to stop when `stop` is set (see stop_requested)."""
    _worker.stop = stop


def stop_requested() -> bool:
    """Whether this worker thread was asked to stop, outside a shielded cleanup (never in the main thread)."""
    stop: threading.Event | None = getattr(_worker, "stop", None)
    return stop is not None and stop.is_set() and not getattr(_worker, "cleaning", 0)


def stop_if_requested(what: str) -> None:
    """Raise Cancelled when stop_requested(): `what` is not started, or no longer waited for."""
    if stop_requested():
        raise Cancelled(f"{what}: stopped, the work beside it failed or the run was stopped")


def keep_output_after_hangup(path: str) -> None:
    """Once the terminal is gone, write the rest of the run's output to `path` (its folder must exist)."""
    global _hangup_log
    _hangup_log = path


def detach_terminal() -> None:
    """Point stdout and stderr at the hang-up log (or /dev/null): writes to a hung-up terminal fail (EIO)."""
    try:
        os.makedirs(os.path.dirname(_hangup_log) or ".", exist_ok=True)  # a run's log folder may not exist yet
        target = os.open(_hangup_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError:
        target = os.open(os.devnull, os.O_WRONLY)
    os.dup2(target, 1)
    os.dup2(target, 2)
    os.close(target)


def _say(text: str) -> None:
    with contextlib.suppress(OSError):
        os.write(2, text.encode())
