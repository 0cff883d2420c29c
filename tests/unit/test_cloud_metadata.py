"""VISA's metadata as Nova takes it (strings of at most 255 characters), and the way a test VM reaches the
host's metadata server: QEMU options, and the relay QEMU runs for each guest connection."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.vm import metadata_service
from visa_build import accelerator, vm
from visa_build.errors import ConfigError
from visa_build.seed import NOVA_METADATA_LIMIT, nova_metadata, pam_keypair, pem_body, visa_meta


def test_visa_metadata_is_strings_and_a_nova_value_over_255_characters_is_refused() -> None:
    meta = visa_meta("4242", "alice")
    assert nova_metadata(meta) == meta and all(isinstance(value, str) for value in meta.values())
    with pytest.raises(ConfigError, match="screenWidth is a int, not a string"):
        nova_metadata({**meta, "screenWidth": 1920})
    with pytest.raises(ConfigError, match=f"homePath is 256 characters: Nova refuses more than {NOVA_METADATA_LIMIT}"):
        nova_metadata({**meta, "homePath": "/" + "h" * 255})


def test_a_1024_bit_pem_key_does_not_fit_nova_but_its_body_does(tmp_path: Path) -> None:
    _, pem = pam_keypair(tmp_path)
    assert len(pem) > NOVA_METADATA_LIMIT, f"a 1024-bit PEM key is {len(pem)} characters"
    with pytest.raises(ConfigError, match="pamPublicKey is .* characters"):
        nova_metadata(visa_meta("4242", "alice", pam_public_key=pem))
    body = pem_body(pem)
    assert len(body) <= NOVA_METADATA_LIMIT and "-" not in body and "\n" not in body
    assert nova_metadata(visa_meta("4242", "alice", pam_public_key=body))["pamPublicKey"] == body


def test_the_platform_reaches_qemus_options(tmp_path: Path) -> None:
    drive = tmp_path / "config-drive.iso"
    platform = vm.Platform(smbios=metadata_service.NOVA_SMBIOS, network="net=169.254.0.0/16", drive=drive)
    argv = vm.qemu_argv(
        name="t",
        disk=tmp_path / "d.qcow2",
        seed_iso=None,
        accel=accelerator.Accel("tcg"),
        ssh_port=2222,
        http_port=8080,
        guest_http_port=8888,
        serial_log=tmp_path / "s.log",
        platform=platform,
    )
    joined = " ".join(argv)
    assert "-smbios type=1,manufacturer=OpenStack Foundation,product=OpenStack Nova" in joined
    assert "hostfwd=tcp:127.0.0.1:8080-:8888,net=169.254.0.0/16" in joined
    assert f"file={drive},if=virtio,media=cdrom" in joined and "s.iso" not in joined, "only the config drive"


def test_the_relay_carries_a_guest_connection_to_the_metadata_server() -> None:
    """What QEMU's guestfwd cmd: does for each connection: the relay gets it as stdin and stdout."""
    files = {"openstack/latest/meta_data.json": b'{"meta": {"owner": "alice"}}'}
    with metadata_service.serving(files) as service:
        guest, relay_end = socket.socketpair()
        relay = subprocess.Popen(
            [sys.executable, str(vm.GUEST_RELAY), str(service.port)],
            stdin=relay_end.fileno(),
            stdout=relay_end.fileno(),
        )
        relay_end.close()
        guest.sendall(b"GET /openstack/latest/meta_data.json HTTP/1.0\r\nHost: 169.254.169.254\r\n\r\n")
        guest.shutdown(socket.SHUT_WR)
        answer = b"".join(iter(lambda: guest.recv(4096), b""))
        assert relay.wait(timeout=30) == 0
    assert answer.startswith(b"HTTP/1.0 200") and answer.endswith(b'{"meta": {"owner": "alice"}}'), answer
    assert service.requests == [("/openstack/latest/meta_data.json", 200)]


def test_a_failing_metadata_service_answers_500_then_the_files() -> None:
    with metadata_service.serving({"openstack": b"latest"}, failing_seconds=1) as service:
        url = f"http://127.0.0.1:{service.port}/openstack"
        assert requests.get(url, timeout=5).status_code == 500, "a failing service answers 500 at first"
        time.sleep(1.1)
        assert requests.get(url, timeout=5).text == "latest", "after its failing time it answers the files"
        assert requests.get(f"{url}/missing", timeout=5).status_code == 404
