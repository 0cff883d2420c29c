"""The doctor reads the host for real: inotify instances enough for the doubles' systemd, and how to fix it."""

from __future__ import annotations

import sysconfig
from pathlib import Path

from visa_build import doctor


def test_the_doctor_reports_the_inotify_limit_the_doubles_need(tmp_path: Path) -> None:
    finding = next(f for f in doctor.examine(tmp_path) if f.check == "inotify instances")
    limit = int(doctor.INOTIFY_INSTANCES.read_text())
    assert finding.ok == (limit >= doctor.MIN_INOTIFY_INSTANCES), finding
    assert str(limit) in finding.detail and "max_user_instances=1024" in finding.fix, finding


def test_the_python_header_checked_is_the_one_of_the_interpreter_running_visa_build() -> None:
    """Debian 13's Python is 3.13 and Ubuntu 24.04's 3.12: the header's path is read, never assumed."""
    headers = [tool for tool in doctor.TEST_TOOLS if tool.endswith("/Python.h")]
    assert headers == [str(Path(sysconfig.get_paths()["include"]) / "Python.h")], headers
