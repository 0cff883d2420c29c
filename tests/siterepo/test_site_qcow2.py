"""A site repository's qcow2, built and booted by the installed visa-build, both ways an image is filled: natively
(the default) and in the guest (`visa.fill = guest`, whose image stage runs 43-site-layers.sh under QEMU). The
VM suite checks each site layer and the boot hook, which does not run again after the reboot. Minutes of TCG
each, beyond `test`'s hour: opt-in, VISA_SLOW_BUILD_TESTS=1 (docs/testing.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.siterepo.test_site_build import SITE, _make_site, _visa_build

pytest_plugins = ("tests.installed",)  # the fixtures wheel and installed
pytestmark = pytest.mark.skipif(
    os.environ.get("VISA_SLOW_BUILD_TESTS") != "1", reason="TCG builds and boots of minutes: VISA_SLOW_BUILD_TESTS=1"
)
#: The VM suite's tests of the site's layers and hook, the base URL, and the reboot (hooks not run again).
SUITE = "-k 'site_layers or base_url or reboot'"


@pytest.mark.parametrize("fill", ["native", "guest"])
def test_a_site_repositorys_qcow2_boots_with_its_layers(
    installed: Path, tmp_path: Path, pytestconfig: pytest.Config, fill: str
) -> None:
    site = _make_site(installed, tmp_path, pytestconfig)
    settings = {"INVOKE_VISA_FILL": fill}
    built = _visa_build(installed, site, pytestconfig, "build-qcow2", settings=settings)
    qcow2 = [line for line in built.splitlines() if line.endswith(".qcow2") and f"/images/{SITE}/" in line]
    assert qcow2 and Path(qcow2[0]).is_file(), f"build-qcow2 printed no qcow2 of {SITE}:\n{built[-3000:]}"
    said = _visa_build(
        installed, site, pytestconfig, "test-qcow2", "--datasource-boots", "", "--pytest-args", SUITE, settings=settings
    )
    summary = [line for line in said.splitlines() if " passed" in line and " in " in line]
    assert summary and "failed" not in summary[-1] and "error" not in summary[-1], said[-3000:]
