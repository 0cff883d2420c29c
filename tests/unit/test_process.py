"""The one subprocess runner, on real harmless commands."""

from __future__ import annotations

import pytest

from visa_build.errors import CommandError, CommandTimeoutError, ToolNotFoundError
from visa_build.process import run


def test_streams_lines_in_order() -> None:
    seen: list[str] = []
    result = run(["sh", "-c", "echo one; echo two >&2; echo three"], timeout=10, on_line=seen.append)
    assert seen == ["one", "two", "three"] == result.lines
    assert result.returncode == 0


def test_failure_keeps_a_bounded_tail() -> None:
    with pytest.raises(CommandError) as error:
        run(["sh", "-c", "seq 1 100; exit 3"], timeout=10, tail_lines=5)
    assert error.value.returncode == 3
    assert error.value.tail == ["96", "97", "98", "99", "100"]
    assert "exit code 3" in str(error.value)


def test_timeout_stops_the_command() -> None:
    with pytest.raises(CommandTimeoutError):
        run(["sleep", "30"], timeout=0.5)


def test_missing_tool_has_an_install_hint() -> None:
    with pytest.raises(ToolNotFoundError) as error:
        run(["mmdebstrap-that-does-not-exist"], timeout=5)
    assert "not installed" in str(error.value)


def test_unchecked_run_returns_the_exit_code() -> None:
    assert run(["false"], timeout=5, check=False).returncode == 1
