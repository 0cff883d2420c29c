"""C14 on the booted instance: nothing of the build survives into an instance's first boot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.vm_only
BUILD_USER = "visa-build"


def test_build_user_is_gone(host: Any) -> None:
    assert not host.user(BUILD_USER).exists, f"the build user {BUILD_USER} is still in the image"
    assert not host.file(f"/home/{BUILD_USER}").exists, f"/home/{BUILD_USER} is still in the image"
    rules = host.run(f"grep -rlw {BUILD_USER} /etc/sudoers /etc/sudoers.d")
    assert rules.stdout.strip() == "", f"sudo rules of the build user remain: {rules.stdout}"


def test_build_key_is_not_authorised_anywhere(host: Any, pytestconfig: pytest.Config) -> None:
    key_file = pytestconfig.getoption("--build-public-key")
    if not key_file or not Path(key_file).is_file():
        pytest.skip("the build's public key is not known (pass --build-public-key)")
    blob = Path(key_file).read_text().split()[1]
    found = host.run(f"grep -rlF {blob} /root /home /etc/ssh")
    assert found.stdout.strip() == "", f"the build key is still authorised in: {found.stdout}"


def test_cloud_init_knows_only_this_instance(host: Any) -> None:
    this = host.check_output("cloud-init query instance_id")
    instances = host.check_output("ls /var/lib/cloud/instances").split()
    assert instances == [this], f"cloud-init state of other instances (the build's?) remains: {instances}"


def test_machine_id_was_made_at_first_boot(host: Any) -> None:
    # sudo logs each command line to the journal: leave those out, or the pattern would find itself
    journal = host.check_output(
        "journalctl -b -o cat --no-pager | grep -v COMMAND= | grep -c 'Initializing machine ID' || true"
    )
    assert int(journal or 0) > 0, "systemd did not initialise a machine id at this boot: the image carried one"
