"""VISA-shaped instance metadata and NoCloud seeds (meta-data and user-data)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import ConfigError
from .process import Runner, run

#: The NIC of the build and test VMs (QEMU's default MAC, set explicitly by vm.py; Packer uses the same).
QEMU_MAC = "52:54:00:12:34:56"
#: Their network, given as VISA's platforms give theirs (OpenStack network_data.json, Proxmox network-config):
#: DHCPv4, which QEMU's user networking answers. Without it, cloud-init 25 (trixie) falls back to DHCPv4 and
#: DHCPv6, and ifup waits five minutes for a DHCPv6 server that QEMU does not have.
NETWORK_CONFIG = yaml.safe_dump(
    {
        "version": 1,
        "config": [{"type": "physical", "name": "ens3", "mac_address": QEMU_MAC, "subnets": [{"type": "dhcp"}]}],
    },
    sort_keys=False,
)


@dataclass(frozen=True)
class Seed:
    meta_data: str
    user_data: str
    network_config: str = NETWORK_CONFIG  # read by VMs; the container double's network is Docker's


def random_instance_id() -> str:
    return str(secrets.randbelow(9_000_000) + 1_000_000)


#: The pamPublicKey of instances whose desktop is not under test: not a PEM public key, so token login is off.
NO_PAM_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0visabuildtestkeyonlyforseeds visa@pam"
#: VISA's token key for test instances: RSA with 1024 bits, as a token must fit xrdp's password limit (255
#: characters; a 2048-bit signature alone is 344 in base64).
PAM_KEY_BITS = 1024


def pam_keypair(directory: Path, *, runner: Runner = run) -> tuple[Path, str]:
    """A fresh RSA key VISA would sign desktop tokens with, in `directory`: (private key file, public PEM)."""
    private = directory / "visa-pam.key"
    argv = ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{PAM_KEY_BITS}", "-out"]
    runner([*argv, str(private)], timeout=60)
    private.chmod(0o600)
    public = runner(["openssl", "pkey", "-in", str(private), "-pubout"], timeout=60).lines
    return private, "\n".join(public) + "\n"


def visa_meta(
    instance_id: str, owner: str, *, pam_public_key: str = NO_PAM_KEY, keyboard_layout: str = "en-gb-qwerty"
) -> dict[str, str]:
    """The `meta` VISA puts on an instance: every value a string, and more keys than id and owner."""
    return {
        "id": instance_id,
        "owner": owner,
        "uid": "10042",
        "homePath": f"/home/{owner}",
        "screenWidth": "1920",
        "screenHeight": "1080",
        "keyboardLayout": keyboard_layout,
        "instruments": "D11,D22",
        "proposals": "9-12-345",
        "pamPublicKey": pam_public_key,
    }


#: Nova refuses server metadata whose key or value is longer than this (HTTP 400 when VISA creates the server).
NOVA_METADATA_LIMIT = 255


def nova_metadata(meta: Mapping[str, object]) -> dict[str, str]:
    """`meta` as Nova takes server metadata: every value a string of at most 255 characters, or a ConfigError
    naming the key (a 1024-bit RSA key's PEM is 272 characters: give its base64 body, see pem_body)."""
    for key, value in meta.items():
        if not isinstance(value, str):
            raise ConfigError(f"metadata {key} is a {type(value).__name__}, not a string", tip="VISA sends strings")
        if len(key) > NOVA_METADATA_LIMIT or len(value) > NOVA_METADATA_LIMIT:
            raise ConfigError(
                f"metadata {key} is {len(value)} characters: Nova refuses more than {NOVA_METADATA_LIMIT}",
                tip="for pamPublicKey, give the key's base64 body alone (the image accepts it as well as PEM)",
            )
    return {key: str(value) for key, value in meta.items()}


def pem_body(pem: str) -> str:
    """A PEM block's base64 body on one line, without its BEGIN/END lines: what fits Nova's limit."""
    return "".join(line.strip() for line in pem.splitlines() if line.strip() and not line.startswith("-----"))


@dataclass(frozen=True)
class Login:
    """An ssh login with passwordless sudo, made by cloud-init (a build user, or the test suite's)."""

    user: str
    public_key: str


def cloud_user(login: Login) -> dict[str, object]:
    return {
        "name": login.user,
        "shell": "/bin/bash",
        "sudo": "ALL=(ALL) NOPASSWD:ALL",
        "lock_passwd": True,
        "ssh_authorized_keys": [login.public_key],
    }


def build_seed(login: Login, *, name: str) -> Seed:
    """The seed of a Packer build VM: only the build user (no VISA metadata, so no owner is expected)."""
    meta_data = {"instance-id": f"iid-visa-build-{name}", "local-hostname": f"visa-build-{name}"}
    user_data = {"users": [cloud_user(login)], "ssh_pwauth": False}
    return Seed(
        meta_data=yaml.safe_dump(meta_data, sort_keys=False),
        user_data="#cloud-config\n" + yaml.safe_dump(user_data, sort_keys=False),
    )


def nocloud_seed(
    meta: dict[str, str], *, create_user: str | None, create_after_s: int = 5, login: Login | None = None
) -> Seed:
    """A NoCloud seed: meta-data carrying `meta`, user-data whose runcmd creates `create_user` late,
    as VISA's boot command does (no user is created when it is None); `login` adds an ssh user."""
    host = f"visa-{meta.get('id', 'instance')}"
    meta_data = {"instance-id": f"iid-{host}", "local-hostname": host, "meta": meta}
    user_data: dict[str, object] = {}
    if login is not None:
        user_data["users"] = [cloud_user(login)]
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
