"""Locked packages published only as source (sdists), built into the wheels the image installs. Nothing is built on
the host or as root: the sdists and the build tools (a hash-pinned lock) are downloaded by hash, then built in a
throw-away container of the image's Debian base, as nobody, with no network and a read-only root filesystem. The
wheels therefore match the image's own Python and glibc."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import docker.errors
import requests

from . import interrupts, progress, runs
from .docker_engine import LABEL, RUN_LABEL, docker_client
from .errors import VisaBuildError
from .process import Runner

NOBODY = 65534
#: Seconds the build container may take.
BUILD_TIMEOUT = 1800
#: Run in the container: a venv with the locked build tools (pip from its own wheel), then the wheels.
BUILD_SCRIPT = """set -eu
python3 -m venv --without-pip /tmp/tools
for pip_wheel in /build/tools/pip-*.whl; do :; done
/tmp/tools/bin/python "$pip_wheel/pip" install --quiet --no-index --find-links /build/tools --no-deps \
  --require-hashes --disable-pip-version-check -r /build/tools.lock
/tmp/tools/bin/python -m pip wheel --no-index --find-links /build/sources --no-deps --no-build-isolation \
  --require-hashes --disable-pip-version-check --progress-bar off -r /build/sources.txt -w /out
"""


def download_argv(requirements: Path, dest: Path, *, binary: bool, python: str) -> list[str]:
    """pip download by hash, without resolving: the sdists (binary=False), or the build tools' wheels."""
    wheels = ["--only-binary=:all:", "--implementation", "cp", "--python-version", python]
    kind = wheels if binary else ["--no-binary=:all:"]
    return [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        *kind,
        "--require-hashes",
        "--progress-bar",
        "off",
        "--disable-pip-version-check",
        "-r",
        str(requirements),
        "-d",
        str(dest),
    ]


def build_wheels(
    requirements: str, tools_lock: Path, dest: Path, *, python: str, image: str, runner: Runner
) -> list[str]:
    """Build the sdists of `requirements` (hash-pinned lock blocks) into wheels in `dest`, in a container of
    `image` whose python3 is `python`; returns the wheels' names."""
    work = Path(tempfile.mkdtemp(prefix=".sdists-", dir=dest.parent))
    work.chmod(0o755)  # read by nobody in the container (public sources only)
    try:
        (work / "sources.txt").write_text(requirements)
        shutil.copyfile(tools_lock, work / "tools.lock")
        runner(
            download_argv(work / "sources.txt", work / "sources", binary=False, python=python),
            timeout=1800,
            on_line=progress.line,
        )
        runner(
            download_argv(work / "tools.lock", work / "tools", binary=True, python=python),
            timeout=600,
            on_line=progress.line,
        )
        out = work / "out"
        out.mkdir()
        os.chown(out, NOBODY, NOBODY)
        _run_build(image, work, out)
        wheels = sorted(out.glob("*.whl"))
        for wheel in wheels:
            shutil.move(wheel, dest / wheel.name)
        return [wheel.name for wheel in wheels]
    finally:
        with interrupts.shielded():
            shutil.rmtree(work, ignore_errors=True)


def _run_build(image: str, work: Path, out: Path) -> None:
    client = docker_client()
    container = client.containers.create(
        image,
        ["sh", "-c", BUILD_SCRIPT],
        user=f"{NOBODY}:{NOBODY}",
        network_disabled=True,
        read_only=True,
        environment={"HOME": "/tmp", "PIP_NO_CACHE_DIR": "1"},
        tmpfs={"/tmp": "exec"},
        volumes={str(work): {"bind": "/build", "mode": "ro"}, str(out): {"bind": "/out", "mode": "rw"}},
        labels={LABEL: "sdist-build", RUN_LABEL: runs.RUN_ID},
    )
    try:
        container.start()
        try:
            code = container.wait(timeout=BUILD_TIMEOUT)["StatusCode"]
            outcome = "" if code == 0 else f"exit {code}"
        except requests.RequestException:
            outcome = f"not done after {BUILD_TIMEOUT} s"
        lines = container.logs().decode(errors="replace").splitlines()
        for line in lines:
            progress.line(line)
        if outcome:
            tail = "\n".join(f"    {line}" for line in lines[-20:])
            raise VisaBuildError(
                f"building wheels from source in a container of {image} failed ({outcome}):\n{tail}",
                tip="only pure-Python sdists build there (no compiler, no network); pin a version with wheels",
            )
    finally:
        with interrupts.shielded(), contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
