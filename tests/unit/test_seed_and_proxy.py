"""VISA-shaped seeds and the test proxy's nginx config."""

from __future__ import annotations

from pathlib import Path

import yaml

from visa_build.proxy import nginx_config
from visa_build.seed import nocloud_seed, random_instance_id, visa_meta


def test_meta_is_visa_shaped() -> None:
    meta = visa_meta(random_instance_id(), "alice")
    assert all(isinstance(value, str) for value in meta.values())
    assert {
        "id",
        "owner",
        "uid",
        "homePath",
        "screenWidth",
        "keyboardLayout",
        "instruments",
        "pamPublicKey",
    } <= set(meta)
    assert meta["id"].isdigit()


def test_seed_creates_owner_late_without_a_shell() -> None:
    seed = nocloud_seed(visa_meta("42", "x;touch /tmp/pwn"), create_user="x;touch /tmp/pwn", create_after_s=60)
    meta_data = yaml.safe_load(seed.meta_data)
    assert meta_data["meta"]["owner"] == "x;touch /tmp/pwn"
    assert seed.user_data.startswith("#cloud-config\n")
    runcmd = yaml.safe_load(seed.user_data)["runcmd"]
    assert runcmd == [["sleep", "60"], ["useradd", "-m", "-s", "/bin/bash", "x;touch /tmp/pwn"]]


def test_proxy_keeps_path_and_host_and_upgrades_websockets() -> None:
    config = nginx_config(listen_port=8080, upstream="172.17.0.2:8888", prefix=Path("/tmp/p"))
    assert "proxy_pass http://172.17.0.2:8888;" in config  # no URI part: the path is forwarded unchanged
    assert "proxy_set_header Host $http_host;" in config
    assert "proxy_set_header Upgrade $http_upgrade;" in config
    assert "X-Forwarded-Proto" not in config
