"""The accelerator QEMU runs guests with: KVM when a real guest boots under it (probed once per kernel and CPU),
else TCG with -cpu max. Builds and test boots both take it from here."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import artefact, progress, runs
from .errors import ConfigError
from .process import background
from .vm import vm_name

#: How long the KVM probe guest gets to print its kernel banner.
KVM_PROBE_SECONDS = 45


@dataclass(frozen=True)
class Accel:
    """A resolved accelerator and how much slower than KVM the guest runs under it."""

    name: str  # kvm | tcg

    @property
    def cpu(self) -> str:
        return "max" if self.name == "tcg" else "host"  # -cpu host does not exist under TCG

    @property
    def slowdown(self) -> int:
        return 4 if self.name == "tcg" else 1


def qemu_option(value: str) -> str:
    """`value` as one value in a QEMU option string, where a single comma would end it: commas are doubled."""
    return value.replace(",", ",,")


def kvm_probe_argv(disk: Path, serial: Path) -> list[str]:
    """A real guest under KVM with -cpu host, as a build would run it; its disk is never written (-snapshot)."""
    return [
        "qemu-system-x86_64",
        "-name",
        vm_name("kvm-probe"),
        "-accel",
        "kvm",
        "-cpu",
        "host",
        "-m",
        "256",
        "-nodefaults",
        "-display",
        "none",
        "-no-user-config",
        "-snapshot",
        "-serial",
        f"file:{serial}",
        "-drive",
        f"file={qemu_option(str(disk))},if=virtio,format=qcow2",
    ]


@dataclass(frozen=True)
class Probe:
    """What the KVM probe found. A guest that booted, or hung until the deadline, is a verdict on this host's KVM;
    `failed` says why there is none (no /dev/kvm, QEMU exited before its guest booted): nothing to keep."""

    works: bool
    failed: str = ""


def probe_kvm(disk: Path, work_dir: Path) -> Probe:
    """Whether a KVM guest boots its kernel. /dev/kvm can open, and even run firmware, while guests hang in
    their boot loader (nested hosts without vmx/svm), so a real disk is booted until the kernel speaks."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return Probe(False, "/dev/kvm cannot be opened for reading and writing")
    if not has_virtualisation(_cpu_flags()):
        return Probe(False, "the CPU offers neither vmx nor svm")
    work_dir.mkdir(parents=True, exist_ok=True)
    serial = work_dir / "kvm-probe.serial.log"
    with progress.step(f"Probing KVM: booting {disk.name} ({KVM_PROBE_SECONDS} s at most)"):
        return watch_boot(kvm_probe_argv(disk, serial), serial, work_dir / "kvm-probe.log", seconds=KVM_PROBE_SECONDS)


def watch_boot(argv: list[str], serial: Path, log: Path, *, seconds: float) -> Probe:
    """Run QEMU (`argv`) until its guest prints its kernel banner to `serial` (works), `seconds` pass (hung: a
    verdict too) or QEMU exits first (failed, with the last line of its `log`)."""
    serial.unlink(missing_ok=True)
    log.unlink(missing_ok=True)
    with background(argv, log_path=str(log)) as qemu:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            exited = qemu.poll() is not None
            if serial.is_file() and "Linux version" in serial.read_text(errors="replace"):
                return Probe(True)
            if exited:
                said = log.read_text(errors="replace").strip().splitlines() or ["no output"]
                return Probe(False, f"QEMU exited with code {qemu.returncode} before its guest booted: {said[-1]}")
            time.sleep(0.5)
    return Probe(False)


def _cpu_flags() -> str:
    return next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")


def has_virtualisation(flags: str) -> bool:
    """Whether a /proc/cpuinfo flags line offers hardware virtualisation (Intel VT-x or AMD-V)."""
    return bool({"vmx", "svm"} & set(flags.split(":", 1)[-1].split()))


def _host_key() -> str:
    return artefact.key_of(os.uname().release, _cpu_flags())


def resolve_accelerator(
    requested: str, *, probe_disk: Path | None, cache_dir: Path, probe: Callable[[Path, Path], Probe] = probe_kvm
) -> Accel:
    """`auto` probes KVM for real by booting `probe_disk` (a verdict is kept per kernel and CPU; a failed probe
    is not) and falls back to TCG with -cpu max; `kvm` and `tcg` are taken as asked."""
    if requested in ("kvm", "tcg"):
        return Accel(requested)
    if probe_disk is None:
        raise ConfigError(
            "visa.accelerator = auto needs a local base qcow2 to probe KVM with",
            tip="set INVOKE_VISA_ACCELERATOR=kvm or tcg when visa.base_qcow2 is a URL",
        )
    verdict = cache_dir / f"accelerator-{_host_key()}.txt"
    with runs.exclusive(cache_dir / "probe.lock", "the KVM probe"):
        if not verdict.is_file():
            found = probe(probe_disk, cache_dir / "probe")
            if found.failed:
                progress.note(f"accelerator: tcg, -cpu max, for this run (not kept): {found.failed}")
                return Accel("tcg")
            verdict.write_text("kvm\n" if found.works else "tcg\n")
    accel = Accel(verdict.read_text().strip())
    why = " (KVM guests do not boot here), -cpu max" if accel.name == "tcg" else ""
    progress.note(f"accelerator: {accel.name}{why}")
    return accel
