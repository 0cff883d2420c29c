"""The suites' pytest, stopped by SIGTERM (a cancelled CI job, or visa-build stopping it), tears its fixtures down
as after Ctrl-C, and a second SIGTERM does not cut that short: the VMs, doubles and servers they started do not
outlive the run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO

SUITE = """
import os, signal, time
import pytest

@pytest.fixture(scope="session")
def vm():
    yield
    os.kill(os.getpid(), signal.SIGTERM)  # a second one, during the teardown
    time.sleep(0.5)
    with open(os.environ["TORN_DOWN"], "w") as marker:
        marker.write("the VM was stopped")

def test_boots(vm):
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
"""


def test_sigterm_tears_the_suites_fixtures_down(tmp_path: Path) -> None:
    suite = tmp_path / "test_stopped.py"
    suite.write_text(SUITE)
    marker = tmp_path / "torn-down"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-p", "no:cacheprovider", str(suite)],
        cwd=REPO,
        env={"TORN_DOWN": str(marker), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=25,
    )
    assert done.returncode == 2, f"pytest exit code {done.returncode}, not 2 (interrupted):\n{done.stdout}"
    assert marker.is_file(), f"the session fixture was not torn down after SIGTERM:\n{done.stdout}"
