"""VISA-shaped instance metadata and NoCloud seeds (meta-data and user-data)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import yaml


@dataclass(frozen=True)
class Seed:
    meta_data: str
    user_data: str


def random_instance_id() -> str:
    return str(secrets.randbelow(9_000_000) + 1_000_000)


def visa_meta(instance_id: str, owner: str) -> dict[str, str]:
    """The `meta` VISA puts on an instance: every value a string, and more keys than id and owner."""
    return {
        "id": instance_id,
        "owner": owner,
        "uid": "10042",
        "homePath": f"/home/{owner}",
        "screenWidth": "1920",
        "screenHeight": "1080",
        "keyboardLayout": "en-gb-qwerty",
        "instruments": "D11,D22",
        "proposals": "9-12-345",
        "pamPublicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0visabuildtestkeyonlyforseeds visa@pam",
    }


def nocloud_seed(meta: dict[str, str], *, create_user: str | None, create_after_s: int = 5) -> Seed:
    """A NoCloud seed: meta-data carrying `meta`, user-data whose runcmd creates `create_user` late,
    as VISA's boot command does (no user is created when it is None)."""
    host = f"visa-{meta.get('id', 'instance')}"
    meta_data = {"instance-id": f"iid-{host}", "local-hostname": host, "meta": meta}
    user_data: dict[str, object] = {}
    if create_user is not None:
        # argv form: cloud-init runs it without a shell, so the user name is never interpreted.
        user_data["runcmd"] = [
            ["sleep", str(create_after_s)],
            ["useradd", "-m", "-s", "/bin/bash", create_user],
        ]
    return Seed(
        meta_data=yaml.safe_dump(meta_data, sort_keys=False),
        user_data="#cloud-config\n" + (yaml.safe_dump(user_data, sort_keys=False) if user_data else ""),
    )
