"""C14 on the booted instance: nothing of the build survives into an instance's first boot."""

from __future__ import annotations

import pytest

from tests.helpers import Facts

pytestmark = pytest.mark.vm_only
BUILD_USER = "visa-build"


def test_build_user_is_gone(facts: Facts) -> None:
    user = facts["build_user"]
    assert not user["exists"], f"the build user {BUILD_USER} is still in the image"
    assert not user["home_exists"], f"/home/{BUILD_USER} is still in the image"
    assert user["sudo_rules"] == [], f"sudo rules of the build user remain: {user['sudo_rules']}"


def test_build_key_is_not_authorised_anywhere(facts: Facts) -> None:
    found = facts["build_key_files"]
    if found is None:
        pytest.skip("the build's public key is not known (pass --build-public-key)")
    assert found == [], f"the build key is still authorised in: {found}"


def test_cloud_init_knows_only_this_instance(facts: Facts) -> None:
    this, instances = facts["cloud_instance_id"], facts["cloud_instances"]
    assert instances == [this], f"cloud-init state of other instances (the build's?) remains: {instances}"


def test_machine_id_was_made_at_first_boot(facts: Facts) -> None:
    assert facts["machine_id_initialised"] > 0, (
        "systemd did not initialise a machine id at this boot: the image carried one"
    )
