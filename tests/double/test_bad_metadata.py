"""C6, C7: doubles booted with crafted VISA metadata (tests/double/conftest.py starts them all at once). Bad values
must give a clear log line, a non-zero exit and nothing listening; an owner created late must still be served."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from tests.helpers import LATE_SECONDS
from visa_build.double_boot import RunningDouble, wait_for_status

pytestmark = pytest.mark.slow


def unit_outcome(double: RunningDouble, timeout: float = 180) -> tuple[str, str]:
    """Wait until visa-jupyter.service has given up; returns (its state, its journal)."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = double.container.exec_run(["systemctl", "is-failed", "visa-jupyter.service"]).output.decode().strip()
        if state == "failed":
            break
        time.sleep(1)
    journal = double.container.exec_run(["journalctl", "-u", "visa-jupyter.service", "--no-pager"]).output.decode()
    return state, journal


def listening_8888(double: RunningDouble) -> bool:
    sockets = double.container.exec_run(["ss", "-Hltn", "sport = :8888"]).output.decode()
    return bool(sockets.strip())


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("owner missing", "metadata has no owner"),
        ("id missing", "metadata has no instance id"),
        ("id 12a", "instance id 12a is not a number"),
        ("id ../1", "instance id ../1 is not a number"),
        ("owner root", "owner is root"),
        ("owner daemon", "is a system account"),
        ("owner x;touch /tmp/pwn", "is not a safe user name"),
    ],
)
def test_bad_metadata_refused(crafted: Callable[[str], RunningDouble], case: str, message: str) -> None:
    double = crafted(case)
    state, journal = unit_outcome(double)
    assert state == "failed", f"{case}: the unit is '{state}', expected it to give up (failed)\n{journal}"
    assert message in journal, f"{case}: the journal does not say '{message}':\n{journal}"
    assert "status=78" in journal, f"{case}: the launcher did not exit 78 (bad metadata, no restart):\n{journal}"
    assert not listening_8888(double), f"{case}: something listens on 8888 although the metadata is bad"
    assert double.container.exec_run(["test", "-e", "/tmp/pwn"]).exit_code != 0, f"{case}: /tmp/pwn was created"


def journal_time(journal: str, pattern: str) -> float | None:
    """The time (seconds since the epoch) of the first journal line (-o short-unix) matching `pattern`."""
    for line in journal.splitlines():
        if re.search(pattern, line) and "COMMAND=" not in line:
            return float(line.split()[0])
    return None


def boot_time(journal: str) -> float:
    """The time of the journal's first entry (-o short-unix): the double's boot."""
    return next(float(line.split()[0]) for line in journal.splitlines() if re.match(r"\d+\.\d+ ", line))


def test_owner_created_30s_late_is_served(late_double: RunningDouble) -> None:
    meta_id = late_double.container.exec_run(["cloud-init", "query", "ds.meta_data.meta.id"]).output.decode().strip()
    wait_for_status(f"http://{late_double.address}:8888/jupyter/{meta_id}/api/status", timeout=300)
    journal = late_double.container.exec_run(["journalctl", "-b", "-o", "short-unix", "--no-pager"]).output.decode()
    booted = boot_time(journal)
    created = journal_time(journal, r"new user: name=lateowner")
    started = journal_time(journal, r"visa-jupyter: starting JupyterLab for 'lateowner'")
    assert created is not None, f"the journal does not show the owner's creation:\n{journal[-3000:]}"
    assert created - booted >= LATE_SECONDS, f"the owner was created {created - booted:.0f} s into the boot, too early"
    assert started is not None and started >= created, "JupyterLab started before the owner existed"
    user = late_double.container.exec_run(["ps", "-o", "user=", "-C", "jupyter-lab"]).output.decode().split()
    assert user[:1] == ["lateowner"], f"JupyterLab runs as {user}, not as the late owner"
