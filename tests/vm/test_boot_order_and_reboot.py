"""VM only: the unit's boot ordering is free of cycles, and the service is back after a reboot, where the site's
boot hooks that ran do not run again. The reboot test runs last (this module is passed after tests/infra)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from tests.helpers import Facts
from tests.infra.test_site_layers import hooks_finished, hooks_journal
from visa_build.image_spec import ImageSpec

pytestmark = pytest.mark.vm_only


def test_unit_verifies_without_ordering_cycles(facts: Facts) -> None:
    verify = facts["unit_verify"]
    assert verify["rc"] == 0 and "cycle" not in verify["stderr"].lower(), f"systemd-analyze verify: {verify['stderr']}"
    assert facts["ordering_cycles"] == 0, "the journal of this boot reports an ordering cycle"


def _boot_id(host: Any) -> str | None:
    """This boot's id, or None while ssh does not answer (testinfra raises on ssh's own failures)."""
    try:
        result = host.run("cat /proc/sys/kernel/random/boot_id")
    except RuntimeError:
        return None
    return result.stdout.strip() if result.rc == 0 else None


def test_service_is_back_after_reboot(host: Any, jupyter: str, instance: Any, pytestconfig: pytest.Config) -> None:
    timeout = float(pytestconfig.getoption("--boot-timeout"))
    before = _boot_id(host)
    host.run("systemd-run --on-active=2 systemctl reboot")  # ssh returns before the connection drops
    deadline = time.monotonic() + timeout
    while (after := _boot_id(host)) in (None, before):
        assert time.monotonic() < deadline, f"the VM did not come back over ssh within {timeout:.0f} s of a reboot"
        time.sleep(5)
    status = None
    while time.monotonic() < deadline:
        try:
            status = requests.get(f"{jupyter}/api/status", timeout=5).status_code
        except requests.RequestException:
            status = None
        if status == 200:
            break
        time.sleep(2)
    assert status == 200, f"{jupyter}/api/status answered {status} after the reboot (boot {after})"
    pid = host.check_output("systemctl show -p MainPID --value visa-jupyter.service")
    assert host.check_output(f"ps -o user= -p {pid}") == instance.owner


def test_boot_hooks_that_ran_do_not_run_again_after_the_reboot(host: Any, spec: ImageSpec, instance: Any) -> None:
    """Once per instance id: after the reboot above, each hook that succeeded at first boot is skipped."""
    if not spec.layers.boot_hooks:
        pytest.skip("the spec has no boot hooks")
    hooks_finished(host)
    with host.sudo():
        succeeded = host.check_output(f"ls /var/lib/visa/boot-hooks/{instance.id}").split()
    assert succeeded, f"no boot hook succeeded for instance {instance.id}"
    journal = hooks_journal(host)
    for name in succeeded:
        assert f"{name}: already ran for instance {instance.id}" in journal, (
            f"hook {name} succeeded at first boot, but this boot's journal does not say it was skipped:\n{journal}"
        )
        assert f"{name}: running" not in journal, f"hook {name} ran again after the reboot:\n{journal}"
