"""The one exception tree of visa-build. Every error a user can fix is a VisaBuildError with a tip."""

from __future__ import annotations


class VisaBuildError(Exception):
    """Base of all errors the user can act on; `tip` says how."""

    tip = ""

    def __init__(self, message: str, *, tip: str | None = None) -> None:
        super().__init__(message)
        if tip is not None:
            self.tip = tip


class ConfigError(VisaBuildError, ValueError):
    """An image spec or setting is wrong; the message names the key."""


class ToolNotFoundError(VisaBuildError):
    """A program visa-build needs is not installed."""

    def __init__(self, tool: str, install_hint: str) -> None:
        super().__init__(f"'{tool}' is not installed or not on PATH", tip=install_hint)
        self.tool = tool


class CommandError(VisaBuildError):
    """A command exited non-zero; `tail` holds its last output lines."""

    def __init__(self, argv: list[str], returncode: int, tail: list[str], *, tip: str | None = None) -> None:
        self.argv = argv
        self.returncode = returncode
        self.tail = tail
        shown = "\n".join(f"    {line}" for line in tail)
        super().__init__(
            f"command failed with exit code {returncode}: {' '.join(argv)}"
            + (f"\n  last output:\n{shown}" if tail else ""),
            tip=tip,
        )


class CommandTimeoutError(VisaBuildError):
    """A command ran longer than its timeout and was stopped."""

    def __init__(self, argv: list[str], timeout: float, tail: list[str]) -> None:
        self.argv = argv
        self.timeout = timeout
        self.tail = tail
        super().__init__(
            f"command stopped after {timeout:.0f} s: {' '.join(argv)}",
            tip="the step hung or the machine is slower than expected; see the output above",
        )


class ImageTestError(VisaBuildError):
    """The image under test does not meet the contract."""
