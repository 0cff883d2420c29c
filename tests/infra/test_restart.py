"""The server does not stay down: shut down from JupyterLab (File > Shut Down, POST /api/shutdown through the
proxy) or killed with SIGKILL, it is back at the same base_url as a new process; the time is measured (JUnit
property `seconds_back`). On the container double a killed server must be back within 10 s."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

UNIT = "visa-jupyter.service"


def main_pid(host: Any) -> int:
    with host.sudo():
        return int(host.check_output("systemctl show -p MainPID --value %s", UNIT))


def seconds_until_back(host: Any, jupyter: str, old_pid: int, started: float, timeout: float) -> float:
    """Seconds from `started` until a new server process answers /api/status through the proxy."""
    while time.monotonic() - started < timeout:
        try:
            answered = requests.get(f"{jupyter}/api/status", timeout=5).status_code == 200
        except requests.RequestException:
            answered = False
        if answered and main_pid(host) not in (0, old_pid):
            return time.monotonic() - started
        time.sleep(0.25)
    with host.sudo():
        journal = host.check_output("journalctl -u %s -n 30 --no-pager", UNIT)
    pytest.fail(f"the server was not back within {timeout:.0f} s:\n{journal}")


def limit(pytestconfig: pytest.Config) -> float:
    """Seconds a restart may take: 10 on the container double; a TCG guest starts JupyterLab far slower."""
    return 10 if pytestconfig.getoption("--visa-target") == "container" else 180


def test_shut_down_from_jupyterlab_comes_back(
    host: Any,
    browser: requests.Session,
    jupyter: str,
    pytestconfig: pytest.Config,
    record_property: Callable[[str, object], None],
) -> None:
    old = main_pid(host)
    started = time.monotonic()
    answer = browser.post(f"{jupyter}/api/shutdown", timeout=30)
    assert answer.status_code in (200, 202, 204), f"POST /api/shutdown answered {answer.status_code}"
    seconds = seconds_until_back(host, jupyter, old, started, timeout=180)
    record_property("seconds_back", round(seconds, 1))
    assert seconds < limit(pytestconfig), f"shut down, the server was back after {seconds:.1f} s"


def test_a_killed_server_comes_back(
    host: Any, jupyter: str, pytestconfig: pytest.Config, record_property: Callable[[str, object], None]
) -> None:
    old = main_pid(host)
    with host.sudo():
        host.check_output("kill -9 %s", str(old))
    started = time.monotonic()
    seconds = seconds_until_back(host, jupyter, old, started, timeout=180)
    record_property("seconds_back", round(seconds, 1))
    assert seconds < limit(pytestconfig), (
        f"a killed server was back after {seconds:.1f} s (at most {limit(pytestconfig)})"
    )
