"""The doctor reads the host for real: inotify instances enough for the doubles' systemd, and how to fix it."""

from __future__ import annotations

import shutil
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


def test_an_image_task_asks_for_the_disk_of_one_build_and_test_for_that_of_the_whole_run(tmp_path: Path) -> None:
    """`test` runs the nightly after it has filled part of the disk itself; the nightly's own check asks only for
    what one build can take (its raw disk of visa.disk_size and 3 GiB more), not for a whole `test`'s."""
    assert doctor.build_free_gib("12G") == 15
    assert doctor.build_free_gib("512M") == 3.5
    assert doctor.build_free_gib("1T") == 1027
    assert doctor.build_free_gib("12G") < doctor.TEST_FREE_GIB


def test_the_free_disk_finding_says_what_is_free_and_what_is_needed(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free / 2**30
    enough = next(f for f in doctor.examine(tmp_path, free_gib=free - 1) if f.check == "free disk")
    short = next(f for f in doctor.examine(tmp_path, free_gib=free + 1) if f.check == "free disk")
    assert enough.ok and not short.ok, (enough, short)
    assert f"{free + 1:.0f} GiB needed" in short.detail and "clean --caches-only" in short.fix, short
