"""The only terminal writer: steps with elapsed time on stderr, results on stdout.

On a TTY a spinner shows the latest output line of a long step; elsewhere (CI logs, NO_COLOR) every
line is printed plainly so a log file tells the whole story.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.status import Status

from . import interrupts


class _Stream:
    """stdout or stderr that outlives its terminal: once a write fails (a hung-up terminal answers EIO, a reader
    that went away EPIPE), output goes to the hang-up log (interrupts.detach_terminal) and the run, or its cleanup,
    goes on."""

    def __init__(self, name: str) -> None:
        self._name = name  # looked up at each write: tests capture output by replacing sys.stderr

    @property
    def _stream(self) -> TextIO:
        stream: TextIO = getattr(sys, self._name)
        return stream

    @property
    def encoding(self) -> str:
        return self._stream.encoding

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError:
            interrupts.detach_terminal()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError:
            interrupts.detach_terminal()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()


_stdout, _stderr = _Stream("stdout"), _Stream("stderr")
_err = Console(file=_stderr, highlight=False, soft_wrap=True)  # type: ignore[arg-type]  # a text stream's methods
_status: Status | None = None
_open_steps = 0  # steps running now: two run at once when work runs alongside other work (process.alongside)
_lock = threading.Lock()


def _interactive() -> bool:
    return _err.is_terminal and not _err.no_color


def _stamp(seconds: float) -> str:
    return f"{seconds:6.1f}s"


@contextlib.contextmanager
def step(title: str) -> Iterator[None]:
    """Announce a step, then report it done or failed with its elapsed time."""
    global _status, _open_steps
    start = time.monotonic()
    _err.print(f"[bold]▶ {escape(title)}[/bold]")
    with _lock:
        _open_steps += 1
        if _interactive() and _status is None:  # one spinner, showing the latest line of any open step
            _status = _err.status(escape(title))
            _status.start()
    try:
        yield
    except BaseException:
        _step_closed()
        _err.print(f"[red]✗ {escape(title)} failed after {_stamp(time.monotonic() - start)}[/red]")
        raise
    _step_closed()
    _err.print(f"[green]✓ {escape(title)}[/green] [dim]({_stamp(time.monotonic() - start)})[/dim]")


def _step_closed() -> None:
    global _open_steps
    with _lock:
        _open_steps -= 1
        if _open_steps == 0:
            _close_status()


def _close_status() -> None:
    global _status
    if _status is not None:
        _status.stop()
        _status = None


def line(text: str) -> None:
    """One line of a running step's output: the spinner's text on a TTY, a plain line elsewhere."""
    status = _status  # another thread may close the spinner meanwhile
    if status is not None:
        status.update(escape(text[:150]))
    else:
        _err.print(f"  [dim]| {escape(text)}[/dim]")


def passthrough(text: str) -> None:
    """A line of a tool whose own report the user reads as it is (pytest): printed unchanged."""
    with _lock:
        _close_status()
    _stderr.write(text + "\n")
    _stderr.flush()


def note(text: str) -> None:
    """A remark outside any step (a warning, a skipped stage, a cache hit)."""
    _err.print(f"  {escape(text)}")


def result(text: str) -> None:
    """A result for scripts: written to stdout, nothing else goes there."""
    _stdout.write(text + "\n")
    _stdout.flush()
