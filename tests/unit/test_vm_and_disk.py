"""Pure parts of the VM path: the base disk's MBR and boot config, QEMU argv, the build seed."""

from __future__ import annotations

import json
import struct
import subprocess
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from tests.helpers import IMAGES
from visa_build import accelerator, base_qcow2, base_rootfs, disk, in_guest, runs, vm
from visa_build.distros import DISTROS
from visa_build.errors import CommandTimeoutError, ConfigError
from visa_build.image_spec import load_image_spec
from visa_build.process import Result, run
from visa_build.seed import QEMU_MAC, Login, build_seed, nocloud_seed, visa_meta
from visa_build.settings import make_settings


def test_mbr_has_one_bootable_linux_partition_and_signature() -> None:
    sector = disk.mbr(b"\xeb\xfe", start=2048, sectors=1000)
    assert len(sector) == 512 and sector[:2] == b"\xeb\xfe" and sector[510:] == b"\x55\xaa"
    entry = sector[446:462]
    assert entry[0] == 0x80 and entry[4] == 0x83
    assert struct.unpack("<II", entry[8:16]) == (2048, 1000)
    assert sector[462:510] == b"\0" * 48


def test_boot_config_names_the_root_filesystem_and_serial_console() -> None:
    conf = disk.extlinux_conf("1234")
    assert "root=UUID=1234" in conf and "console=ttyS0" in conf and "LINUX /vmlinuz" in conf
    assert disk.fstab("1234").startswith("UUID=1234 / ext4")


def test_base_key_changes_with_its_inputs() -> None:
    def key(suite: str = "bookworm", mirror: str = "http://a", security: str = "http://s") -> str:
        return base_qcow2.cache_key(base_rootfs.Sources(DISTROS[suite], mirror, security))

    assert key() == key(), "the same inputs must give the same key"
    assert len({key(), key(suite="trixie"), key(mirror="http://b"), key(security="http://t")}) == 4


def test_qemu_argv_under_tcg_uses_cpu_max_and_forwards_to_loopback_only() -> None:
    argv = vm.qemu_argv(
        name="t",
        disk=Path("/d.qcow2"),
        seed_iso=Path("/s.iso"),
        accel=accelerator.Accel("tcg"),
        ssh_port=2222,
        http_port=8080,
        guest_http_port=8888,
        serial_log=Path("/s.log"),
    )
    joined = " ".join(argv)
    assert argv[3:5] == ["-accel", "tcg"] and "-cpu max" in joined and "-cpu host" not in joined
    assert "hostfwd=tcp:127.0.0.1:2222-:22" in joined and "hostfwd=tcp:127.0.0.1:8080-:8888" in joined
    assert "user,id=net0,restrict=on," in joined, "a test VM's network must reach neither the host nor beyond it"
    assert f"-name visa-build-{runs.RUN_ID}-t " in joined, "the VM's name must carry the run id: runs reap by it"
    assert (
        accelerator.Accel("kvm").cpu == "host" and accelerator.Accel("tcg").slowdown > accelerator.Accel("kvm").slowdown
    )


def test_a_second_nic_exchanges_its_frames_with_its_peers_socket_only() -> None:
    nic = vm.DatagramNic(Path("/t/vm.sock"), Path("/t/relay.sock"), "52:54:00:12:34:57")
    argv = vm.qemu_argv(
        name="t",
        disk=Path("/d.qcow2"),
        seed_iso=None,
        accel=accelerator.Accel("tcg"),
        ssh_port=2222,
        http_port=8080,
        guest_http_port=8888,
        serial_log=Path("/s.log"),
        platform=vm.Platform(second_nic=nic),
    )
    netdev = argv[argv.index("-netdev", argv.index("-netdev") + 1) + 1]
    assert netdev == (
        "dgram,id=net1,local.type=unix,local.path=/t/vm.sock,remote.type=unix,remote.path=/t/relay.sock"
    ), netdev
    assert argv[-2:] == ["-device", "virtio-net-pci,netdev=net1,mac=52:54:00:12:34:57"]
    assert "user,id=net0,restrict=on," in " ".join(argv), "the first NIC stays restricted"
    with pytest.raises(ConfigError, match="comma"):
        vm.DatagramNic(Path("/t/a,b.sock"), Path("/t/relay.sock"), "52:54:00:12:34:57").qemu_args()


def test_build_seed_makes_only_the_build_user_with_its_key() -> None:
    seed = build_seed(Login("visa-build", "ssh-ed25519 AAAA build"), name="visa-ci")
    users = yaml.safe_load(seed.user_data)["users"]
    assert users == [
        {
            "name": "visa-build",
            "shell": "/bin/bash",
            "sudo": "ALL=(ALL) NOPASSWD:ALL",
            "lock_passwd": True,
            "ssh_authorized_keys": ["ssh-ed25519 AAAA build"],
        }
    ]
    assert "meta" not in yaml.safe_load(seed.meta_data)


def test_test_seed_keeps_visa_metadata_and_creates_the_owner_late() -> None:
    seed = nocloud_seed(visa_meta("42", "alice"), create_user="alice", login=Login("visa-test", "ssh-ed25519 K"))
    user_data = yaml.safe_load(seed.user_data)
    assert user_data["runcmd"][-1] == ["useradd", "-m", "-s", "/bin/bash", "alice"]
    assert [u["name"] for u in user_data["users"]] == ["visa-test"]
    assert yaml.safe_load(seed.meta_data)["meta"]["id"] == "42"


def test_ssh_config_shares_one_connection_per_target(tmp_path: Path) -> None:
    guest = vm.BootedVM(
        "visa-build-test",
        2222,
        8888,
        tmp_path / "serial.log",
        tmp_path / "key",
        "visa-test",
        qemu=subprocess.Popen(["true"]),
    )
    config = guest.ssh_config(tmp_path / "ssh_config", tmp_path / "control").read_text()
    assert f"ControlPath {tmp_path / 'control'}/%C" in config
    assert "ServerAliveInterval 5" in config and "StrictHostKeyChecking no" in config


def test_ssh_control_dir_closes_its_connections_and_is_removed() -> None:
    calls: list[list[str]] = []

    def runner(argv: list[str], **_: object) -> Result:
        calls.append(argv)
        return Result(argv, 0, [])

    with vm.ssh_control_dir(runner=runner) as control:
        (control / "abc123").touch()  # stands for a master's socket
    assert not control.exists(), "the control folder (sockets) was left behind"
    assert calls == [["ssh", "-O", "exit", "-o", f"ControlPath={control / 'abc123'}", "visa-build-vm"]]


def test_kvm_needs_vmx_or_svm_in_the_cpu_flags() -> None:
    assert accelerator.has_virtualisation("flags\t\t: fpu vme de pse tsc msr vmx ept")
    assert accelerator.has_virtualisation("flags\t\t: fpu svm npt")
    assert not accelerator.has_virtualisation("flags\t\t: fpu vme de pse tsc msr hypervisor"), (
        "no vmx/svm: no KVM guest"
    )
    assert not accelerator.has_virtualisation("")


def test_vm_seeds_give_dhcp4_on_the_nic_qemu_makes(tmp_path: Path) -> None:
    seed = build_seed(Login("visa-build", "ssh-ed25519 AAAA build"), name="x")
    network = yaml.safe_load(seed.network_config)
    nic = network["config"][0]
    assert nic["mac_address"] == QEMU_MAC and nic["subnets"] == [{"type": "dhcp"}], "DHCPv4 only (no DHCPv6 wait)"
    argv = qemu_argv(tmp_path, tmp_path / "d.qcow2")
    assert f"virtio-net-pci,netdev=net0,mac={QEMU_MAC}" in argv
    assert (vm.write_seed(seed, tmp_path / "seed") / "network-config").read_text() == seed.network_config


@pytest.mark.parametrize(
    ("info", "message"),
    [
        ({"format": "qcow2", "backing-filename": "/srv/base.qcow2"}, "is an overlay on /srv/base.qcow2"),
        ({"format": "raw"}, "is a raw image, not a qcow2"),
    ],
)
def test_a_qcow2_to_test_must_hold_the_whole_image(info: dict[str, str], message: str) -> None:
    def qemu_img_info(argv: list[str], **_: object) -> Result:
        assert argv[:3] == ["qemu-img", "info", "--output=json"]
        return Result(argv, 0, json.dumps(info).splitlines())

    with pytest.raises(ConfigError, match=message):
        vm.require_standalone(Path("/images/x.qcow2"), "--qcow2", runner=qemu_img_info)
    vm.require_standalone(
        Path("/images/x.qcow2"), "--qcow2", runner=lambda argv, **_: Result(argv, 0, ['{"format": "qcow2"}'])
    )


def test_a_qcow2_with_an_external_data_file_is_refused_as_qcow2_and_as_base(tmp_path: Path) -> None:
    """Its guest would read the host file the data-file names."""
    host_file, image = tmp_path / "host-file", tmp_path / "site-base.qcow2"
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", f"data_file={host_file}", str(image), "16M"], timeout=60)
    tip = f"qemu-img convert -O qcow2 {image}"
    with pytest.raises(ConfigError, match=f"--qcow2 {image} keeps its data in the external file {host_file}") as error:
        vm.require_standalone(image, "--qcow2")
    assert tip in error.value.tip
    settings = make_settings(
        build_dir=str(tmp_path / "build"), fill="guest", base_qcow2=str(image), base_qcow2_checksum="sha256:" + "0" * 64
    )
    spec = load_image_spec(IMAGES / "ci")
    with pytest.raises(ConfigError, match=f"visa.base_qcow2 {image} keeps its data in the external file") as error:
        in_guest.base_source(spec, settings)
    assert tip in error.value.tip
    run(["qemu-img", "convert", "-O", "qcow2", str(image), str(tmp_path / "standalone.qcow2")], timeout=60)
    standalone = replace(settings, base_qcow2=str(tmp_path / "standalone.qcow2"))
    assert in_guest.base_source(spec, standalone) == (standalone.base_qcow2, settings.base_qcow2_checksum)


def test_a_qcow2_path_with_a_comma_space_or_semicolon_boots_through_its_overlay(tmp_path: Path) -> None:
    """--qcow2 may be any path: QEMU's options name only the overlay, which records the path as it is."""
    folder = tmp_path / "site images, 2026; nightly"
    folder.mkdir()
    image = folder / "visa,jupyter latest.qcow2"
    run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "64M"], timeout=60)
    vm.require_standalone(image, "--qcow2")
    overlay = tmp_path / "overlay.qcow2"
    run(vm.overlay_argv(image, overlay), timeout=60)
    chain = json.loads(run(["qemu-img", "info", "--backing-chain", "--output=json", str(overlay)], timeout=60).output)
    assert [layer["filename"] for layer in chain] == [str(overlay), str(image)], chain
    argv = qemu_argv(tmp_path, overlay)
    assert not any(str(folder) in arg for arg in argv), "QEMU's options must not carry the --qcow2 path"


def qemu_argv(folder: Path, disk: Path) -> list[str]:
    """A test VM's QEMU command for `disk`, with its other files in `folder`."""
    accel, serial = accelerator.Accel("tcg"), folder / "s.log"
    ports: dict[str, Any] = {"ssh_port": 2222, "http_port": 8888, "guest_http_port": 8888}
    return vm.qemu_argv(name="t", disk=disk, seed_iso=folder / "s.iso", accel=accel, serial_log=serial, **ports)


def test_an_ssh_attempt_that_hangs_is_retried_until_ssh_answers(tmp_path: Path) -> None:
    attempts: list[list[str]] = []

    def sshd_slow_at_first(argv: list[str], **kwargs: Any) -> Result:
        attempts.append(argv)
        if len(attempts) == 1:  # the guest's sshd took the connection and did not answer in time
            raise CommandTimeoutError(argv, kwargs["timeout"], [])
        return Result(argv, 0, [])

    qemu: Any = SimpleNamespace(poll=lambda: None)  # running
    guest = vm.BootedVM("t", 2222, 8888, tmp_path / "serial.log", tmp_path / "key", "visa-test", qemu)
    assert vm.wait_for_ssh(guest, timeout=60, runner=sshd_slow_at_first) >= 0
    assert len(attempts) == 2, f"ssh was tried {len(attempts)} times: a hung attempt ended the wait"
