"""The JupyterLab unit (provision/files/visa-jupyter.service): its ExecStopPost= command run on this host, as
systemd would run it after the server ended, with a stub for systemctl."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "provision/files/visa-jupyter.service"


def stop_post_argv() -> list[str]:
    """The unit's ExecStopPost= argv as systemd runs it: `+` prefix off, `$$` a dollar, %n the unit's name."""
    lines = [line for line in UNIT.read_text().splitlines() if line.startswith("ExecStopPost=")]
    assert len(lines) == 1, f"{UNIT.name} has {len(lines)} ExecStopPost= lines, expected 1"
    command = lines[0].removeprefix("ExecStopPost=").removeprefix("+")
    return shlex.split(command.replace("$$", "$").replace("%n", UNIT.name))


@pytest.mark.parametrize(
    ("exit_code", "exit_status", "flushed"),
    [
        ("exited", "0", True),  # File > Shut Down
        ("exited", "1", False),  # the server failed
        ("exited", "75", False),  # the launcher gave up waiting for the owner
        ("killed", "KILL", False),  # SIGKILL, the OOM killer
        ("dumped", "SEGV", False),
    ],
)
def test_only_a_clean_exit_flushes_the_start_limit(
    tmp_path: Path, exit_code: str, exit_status: str, flushed: bool
) -> None:
    calls = tmp_path / "systemctl.args"
    stub = tmp_path / "systemctl"
    stub.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    stub.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "EXIT_CODE": exit_code, "EXIT_STATUS": exit_status}
    ran = subprocess.run(stop_post_argv(), env=env, capture_output=True, text=True, timeout=30)
    assert ran.returncode == 0, f"ExecStopPost= failed ({ran.returncode}): {ran.stderr}"
    called = calls.read_text().splitlines() if calls.exists() else []
    assert called == (["reset-failed visa-jupyter.service"] if flushed else []), (
        f"after {exit_code}/{exit_status}, systemctl was called with {called}"
    )
