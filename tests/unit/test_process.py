"""The one subprocess runner, on real harmless commands."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO
from visa_build import interrupts, runs
from visa_build.errors import CommandError, CommandTimeoutError, ToolNotFoundError
from visa_build.process import alongside, run


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


def test_work_alongside_gives_its_result_and_its_error() -> None:
    with alongside(lambda: run(["sh", "-c", "sleep 0.2; echo base"], timeout=10).output) as base:
        beside = run(["echo", "wheels"], timeout=10).output
        assert (beside, base()) == ("wheels", "base")
    with pytest.raises(CommandError) as error, alongside(lambda: run(["sh", "-c", "exit 4"], timeout=10)):
        pass  # the block succeeds; the job's failure is still the run's
    assert error.value.returncode == 4


def _wait_for(marker: Path) -> None:
    while not marker.is_file() or not marker.read_text().strip():
        time.sleep(0.05)


def test_work_alongside_is_stopped_when_the_block_fails(tmp_path: Path) -> None:
    """A failing (or interrupted) block stops the job's command at once and leaves no process behind."""
    marker = tmp_path / "pid"
    started = time.monotonic()

    def job() -> None:
        run(["sh", "-c", f"echo $$ > {marker}; exec sleep 60"], timeout=120)

    with pytest.raises(RuntimeError, match="download failed"), alongside(job):
        _wait_for(marker)
        raise RuntimeError("download failed")
    assert time.monotonic() - started < 15, "the block's error waited for the job to finish"
    pid = int(marker.read_text())
    assert not Path(f"/proc/{pid}").exists(), f"the job's command (pid {pid}) is still running"


def test_a_stopped_jobs_cleanup_commands_still_run(tmp_path: Path) -> None:
    """What the job runs in its shielded cleanup (an unmount, a removal) after it was stopped is not stopped; the
    command it was running is, at once."""
    marker, cleaned = tmp_path / "pid", tmp_path / "cleaned"

    def job() -> None:
        try:
            run(["sh", "-c", f"echo $$ > {marker}; exec sleep 60"], timeout=120)
        finally:
            with interrupts.shielded():
                run(["sh", "-c", f"sleep 0.5; touch {cleaned}"], timeout=10)

    started = time.monotonic()
    with pytest.raises(RuntimeError), alongside(job):
        _wait_for(marker)
        raise RuntimeError("download failed")
    assert time.monotonic() - started < 15, "the job's command was not stopped"
    assert cleaned.is_file(), "the job's cleanup command was stopped too"


def test_a_stopped_job_starts_no_command_and_waits_for_no_lock(tmp_path: Path) -> None:
    """Asked to stop before its command starts, or while it waits for a lock another run holds, the job gives up
    at once instead of running the command (mmdebstrap: minutes) or waiting out the other run."""
    lock = tmp_path / "base.lock"
    holder = subprocess.Popen(["flock", str(lock), "sleep", "60"])
    try:
        while not lock.exists():
            time.sleep(0.05)

        def command_after_a_second() -> None:
            time.sleep(1)  # the block has failed by then
            run(["sleep", "60"], timeout=120)

        def lock_held_by_another_run() -> None:
            with runs.exclusive(lock, "the base image"):
                pass

        for job in (command_after_a_second, lock_held_by_another_run):
            started = time.monotonic()
            with pytest.raises(RuntimeError), alongside(job):
                raise RuntimeError("download failed")
            assert time.monotonic() - started < 10, f"the stopped job ran on for {time.monotonic() - started:.0f} s"
    finally:
        holder.kill()
        holder.wait()


STOPPED_WHILE_WAITING = """
import os, signal, threading
from visa_build import interrupts
from visa_build import interrupts, runs
from visa_build.process import alongside, run
interrupts.install()
def job():
    try:
        run(["sleep", "60"], timeout=120)
    finally:
        print("job cleaned up", flush=True)
threading.Timer(1, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
try:
    with alongside(job) as base:
        base()
except interrupts.Interrupted:
    print("run stopped", flush=True)
"""


def test_a_run_stopped_while_it_waits_for_the_job_waits_for_its_cleanup() -> None:
    """SIGTERM while the run waits for the job's result: the job's command is stopped and its cleanup done before
    the run goes on to exit (a Thread.join a signal interrupted would not wait again)."""
    done = subprocess.run(
        [sys.executable, "-c", STOPPED_WHILE_WAITING], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert done.stdout.splitlines() == ["job cleaned up", "run stopped"], done.stdout + done.stderr


def test_a_stopped_command_gets_its_grace_before_sigkill(tmp_path: Path) -> None:
    """SIGTERM first; a command that takes a second to clean up (a suite stopping its VMs) finishes when its grace
    is longer, and is killed when it is shorter."""
    cleaned = tmp_path / "cleaned"
    script = f"trap 'sleep 1; touch {cleaned}; exit 0' TERM; while :; do sleep 0.1; done"

    def cleaned_up(grace: float) -> bool:
        cleaned.unlink(missing_ok=True)
        with pytest.raises(CommandTimeoutError):
            run(["bash", "-c", script], timeout=1, stop_grace=grace)
        return cleaned.exists()

    assert cleaned_up(5), "a command given 5 s to clean up was killed before it finished"
    assert not cleaned_up(0.2), "a command was not killed when its grace ran out"
