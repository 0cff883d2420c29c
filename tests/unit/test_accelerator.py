"""The KVM probe: QEMU gets the probe disk's path whole, and only a probe that booted or hung is a verdict kept
for the next runs (no QEMU guest is booted here: harmless commands stand in for QEMU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from visa_build import accelerator
from visa_build.process import run


def test_a_probe_disk_path_with_commas_is_one_value_in_qemus_drive_option(tmp_path: Path) -> None:
    folder = tmp_path / "site images, 2026"
    folder.mkdir()
    image = folder / "visa,ci.qcow2"
    run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "16M"], timeout=60)
    argv = accelerator.kvm_probe_argv(image, tmp_path / "serial.log")
    drive = argv[argv.index("-drive") + 1]
    written = drive.removeprefix("file=").removesuffix(",if=virtio,format=qcow2")
    # qemu-img parses an option string the way QEMU parses -drive
    options = f"driver=qcow2,file.driver=file,file.filename={written}"
    info = json.loads(run(["qemu-img", "info", "--output=json", "--image-opts", options], timeout=60).output)
    assert info["filename"] == str(image), drive


def test_a_qemu_that_exits_before_its_guest_boots_is_a_failed_probe_with_its_reason(tmp_path: Path) -> None:
    refused = ["sh", "-c", "echo \"qemu-system-x86_64: -drive file=/x: Could not open '/x'\" >&2; exit 1"]
    probe = accelerator.watch_boot(refused, tmp_path / "serial.log", tmp_path / "qemu.log", seconds=30)
    assert not probe.works
    reason = "qemu-system-x86_64: -drive file=/x: Could not open '/x'"
    assert probe.failed == f"QEMU exited with code 1 before its guest booted: {reason}", probe


def test_a_guest_that_boots_or_hangs_is_a_verdict(tmp_path: Path) -> None:
    serial = tmp_path / "serial.log"
    banner = ["sh", "-c", f"echo 'Linux version 6.1.0-40-cloud-amd64' > '{serial}'; sleep 30"]
    assert accelerator.watch_boot(banner, serial, tmp_path / "qemu.log", seconds=30) == accelerator.Probe(True)
    hung = ["sleep", "30"]
    assert accelerator.watch_boot(hung, serial, tmp_path / "qemu.log", seconds=1) == accelerator.Probe(False)


@pytest.mark.parametrize(
    ("probe", "name", "kept"),
    [
        (accelerator.Probe(True), "kvm", True),
        (accelerator.Probe(False), "tcg", True),
        (accelerator.Probe(False, "QEMU exited with code 1 before its guest booted: Could not open"), "tcg", False),
    ],
)
def test_only_a_probe_that_booted_or_hung_is_kept(
    tmp_path: Path, probe: accelerator.Probe, name: str, kept: bool
) -> None:
    def resolve(found: accelerator.Probe) -> accelerator.Accel:
        return accelerator.resolve_accelerator(
            "auto", probe_disk=tmp_path / "base.qcow2", cache_dir=tmp_path, probe=lambda disk, work: found
        )

    assert resolve(probe).name == name
    assert bool(list(tmp_path.glob("accelerator-*.txt"))) is kept
    again = resolve(accelerator.Probe(works=name == "tcg"))  # a probe now would say the opposite
    assert again.name == (name if kept else "kvm"), "a kept verdict must be reused, a failed probe run again"
