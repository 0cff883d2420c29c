"""Doctor: what this host needs (tools, the Docker engine, disk), and fixing it when asked."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import docker.errors
from docker.client import from_env

from . import progress
from .errors import VisaBuildError
from .process import Runner, daemon, run

#: Program -> Debian package providing it.
TOOLS: dict[str, str] = {
    "dockerd": "docker.io",
    "mmdebstrap": "mmdebstrap",
    "nginx": "nginx",
    "shellcheck": "shellcheck",
}
MIN_FREE_GIB = 15
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


def examine(build_dir: Path) -> list[Finding]:
    findings = [
        Finding(
            f"tool {tool}",
            shutil.which(tool) is not None,
            shutil.which(tool) or "missing",
            f"apt-get install {pkg}",
        )
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
