"""The root filesystem's mmdebstrap: a package the release does not carry is named in one line with a TIP, and
any other failure keeps mmdebstrap's own output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from visa_build import base_rootfs
from visa_build.distros import DISTROS
from visa_build.errors import CommandError, ConfigError
from visa_build.process import Result, Runner

#: The end of what mmdebstrap 1.3.5 printed here for `--include=no-such-package-visa,python3 bookworm`.
MISSING_OUTPUT = """\
I: installing remaining packages inside the chroot...
Reading package lists...
Building dependency tree...
E: Unable to locate package no-such-package-visa
E: setup failed: E: apt-get --yes install no-such-package-visa python3 failed
I: removing tempdir /tmp/mmdebstrap.p0ionuUEgA...
E: mmdebstrap failed to run""".splitlines()
UNREACHABLE_OUTPUT = [
    "E: Failed to fetch http://archive.ubuntu.com/ubuntu/dists/noble/InRelease",
    "E: mmdebstrap failed",
]


def failing(lines: list[str]) -> Runner:
    """A runner whose mmdebstrap fails with `lines` as its output, as process.run reports it."""

    def runner(argv: list[str], **options: Any) -> Result:
        assert argv[0] == "mmdebstrap"
        raise CommandError(argv, 25, lines, tip=options.get("tip"))

    return runner


def test_a_package_the_release_does_not_carry_is_named(tmp_path: Path) -> None:
    sources = base_rootfs.Sources(
        DISTROS["noble"], "http://archive.ubuntu.com/ubuntu", "http://security.ubuntu.com/ubuntu"
    )
    with pytest.raises(ConfigError, match=r"ubuntu 24.04 \(noble\) has no package no-such-package-visa") as refused:
        base_rootfs.mmdebstrap(sources, tmp_path / "root", tar=False, runner=failing(MISSING_OUTPUT), timeout=60)
    assert "provision/packages.txt" in (refused.value.tip or "")


def test_other_failures_keep_mmdebstraps_output_and_name_the_mirror_settings(tmp_path: Path) -> None:
    sources = base_rootfs.Sources(
        DISTROS["noble"], "http://archive.ubuntu.com/ubuntu", "http://security.ubuntu.com/ubuntu"
    )
    with pytest.raises(CommandError, match="Failed to fetch") as failed:
        base_rootfs.mmdebstrap(sources, tmp_path / "root", tar=False, runner=failing(UNREACHABLE_OUTPUT), timeout=60)
    assert "visa.ubuntu_mirror" in (failed.value.tip or "")
