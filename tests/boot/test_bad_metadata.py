"""C6, C7: each test boots its own container double with crafted VISA metadata. Bad values must give a
clear log line, a non-zero exit and nothing listening; an owner created late must still be served."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from visa_build.container import RunningDouble, keep_journal, running_double, wait_for_status
from visa_build.seed import nocloud_seed, random_instance_id, visa_meta

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def image(pytestconfig: pytest.Config) -> str:
    tag = pytestconfig.getoption("--visa-image")
    if not tag:
        pytest.skip("boots its own container doubles: pass --visa-image (invoke test-container does)")
    return str(tag)


@pytest.fixture
def boot(image: str, pytestconfig: pytest.Config, request: pytest.FixtureRequest) -> Iterator[Any]:
    """boot(meta, create_user, delay) -> a running double, removed after the test (journal kept on failure)."""
    log_dir = Path(pytestconfig.getoption("--visa-log-dir"))
    doubles: list[RunningDouble] = []
    with contextlib.ExitStack() as stack:

        def start(meta: dict[str, str], create_user: str | None = None, delay: int = 1) -> RunningDouble:
            seed = nocloud_seed(meta, create_user=create_user, create_after_s=delay)
            double = stack.enter_context(running_double(image, seed, log_dir=log_dir, purpose="boot"))
            doubles.append(double)
            return double

        yield start
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            for double in doubles:
                keep_journal(double.container, double.name, log_dir)


def unit_outcome(double: RunningDouble, timeout: float = 120) -> tuple[str, str]:
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


def without(meta: dict[str, str], key: str) -> dict[str, str]:
    return {k: v for k, v in meta.items() if k != key}


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("owner missing", "metadata has no owner"),
        ("id missing", "metadata has no instance id"),
        ("id 12a", "instance id 12a is not a number"),
        ("id ../1", "instance id ../1 is not a number"),
        ("owner root", "owner is root"),
        ("owner x;touch /tmp/pwn", "is not a safe user name"),
    ],
)
def test_bad_metadata_refused(boot: Any, case: str, message: str) -> None:
    meta = visa_meta(random_instance_id(), "visauser")
    kind, value = case.split(" ", 1)
    meta = without(meta, kind) if value == "missing" else {**meta, kind: value}
    double = boot(meta, create_user="visauser")
    state, journal = unit_outcome(double)
    assert state == "failed", f"{case}: the unit is '{state}', expected it to give up (failed)\n{journal}"
    assert message in journal, f"{case}: the journal does not say '{message}':\n{journal}"
    assert "status=78" in journal, f"{case}: the launcher did not exit 78 (bad metadata, no restart):\n{journal}"
    assert not listening_8888(double), f"{case}: something listens on 8888 although the metadata is bad"
    assert double.container.exec_run(["test", "-e", "/tmp/pwn"]).exit_code != 0, f"{case}: /tmp/pwn was created"


def test_owner_created_60s_late_is_served(boot: Any) -> None:
    instance_id = random_instance_id()
    double = boot(visa_meta(instance_id, "lateowner"), create_user="lateowner", delay=60)
    start = time.monotonic()
    wait_for_status(f"http://{double.address}:8888/jupyter/{instance_id}/api/status", timeout=240)
    assert time.monotonic() - start >= 55, "served before the owner existed"
    user = double.container.exec_run(["ps", "-o", "user=", "-C", "jupyter-lab"]).output.decode().split()
    assert user[:1] == ["lateowner"], f"JupyterLab runs as {user}, not as the late owner"
