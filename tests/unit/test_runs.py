"""Runs sharing a host (runs.py), with real processes: a killed run is told apart from a live one, work on one
spec waits for the other run with a line saying so, and the lock is re-entrant within a run."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO
from visa_build import runs
from visa_build.errors import VisaBuildError


def other_run(build_dir: Path, code: str) -> subprocess.Popen[str]:
    """Another visa-build process: registers as a run of `build_dir`, prints its id, then runs `code`."""
    script = (
        f"import sys, time; from pathlib import Path; from visa_build import runs\n"
        f"print(runs.register(Path({str(build_dir)!r})), flush=True)\n{code}"
    )
    return subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)


def test_a_killed_run_is_dead_and_a_live_run_is_not(tmp_path: Path) -> None:
    live, killed = other_run(tmp_path, "time.sleep(60)"), other_run(tmp_path, "time.sleep(60)")
    try:
        live_id, killed_id = live.stdout.readline().strip(), killed.stdout.readline().strip()  # type: ignore[union-attr]
        assert runs.dead_runs(tmp_path) == [], "no run has ended yet"
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait()
        assert runs.dead_runs(tmp_path) == [killed_id], "a run killed with SIGKILL must count as dead"
        assert live_id in runs.live_runs(tmp_path) and killed_id not in runs.live_runs(tmp_path)
    finally:
        live.kill()
        live.wait()


def test_a_run_that_ends_normally_leaves_no_lock_file(tmp_path: Path) -> None:
    ended = other_run(tmp_path, "pass")
    run_id = ended.stdout.readline().strip()  # type: ignore[union-attr]
    assert ended.wait(timeout=60) == 0
    assert not (runs.runs_dir(tmp_path) / f"{run_id}.lock").exists()


@contextlib.contextmanager
def spec_held_by_another_run(build_dir: Path, seconds: int) -> Iterator[None]:
    """Another run holds the spec lock of visa-ci for `seconds` (from when the block starts)."""
    holder = other_run(
        build_dir,
        f"with runs.spec_lock(Path({str(build_dir)!r}), 'visa-ci'):\n"
        f"    print('held', flush=True); time.sleep({seconds})",
    )
    try:
        holder.stdout.readline()  # type: ignore[union-attr]  # its run id
        assert holder.stdout.readline().strip() == "held"  # type: ignore[union-attr]
        yield
    finally:
        holder.kill()
        holder.wait()


def test_the_second_run_of_a_spec_waits_and_says_for_what(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with spec_held_by_another_run(tmp_path, 3):
        started = time.monotonic()
        with runs.spec_lock(tmp_path, "visa-ci"):
            waited = time.monotonic() - started
    assert 1 < waited < 30, f"the second run did not wait for the first (waited {waited:.1f} s)"
    assert "waiting for the other run of spec visa-ci" in capfd.readouterr().err


def test_other_specs_do_not_wait_and_the_lock_is_reentrant(tmp_path: Path) -> None:
    with spec_held_by_another_run(tmp_path, 30):
        started = time.monotonic()
        with runs.spec_lock(tmp_path, "visa-ci-trixie"), runs.spec_lock(tmp_path, "visa-ci-trixie"):
            pass
        assert time.monotonic() - started < 1, "another spec's lock must not wait"


def test_a_lock_held_too_long_is_a_clear_error(tmp_path: Path) -> None:
    lock = tmp_path / "locks" / "spec-visa-ci.lock"
    with spec_held_by_another_run(tmp_path, 30), pytest.raises(VisaBuildError, match="gave up waiting"):  # noqa: SIM117
        with runs.exclusive(lock, "spec visa-ci", timeout=1):
            pass
