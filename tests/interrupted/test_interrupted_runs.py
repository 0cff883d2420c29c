"""Real runs of `./visa-build build-qcow2 --image images/ci` stopped a few seconds into a step: mmdebstrap of the
base, docker build, the native fill and the Packer sealing boot, each by SIGTERM (a cancelled pipeline job) and by
SIGHUP (the ssh session dropped: the run's terminal hangs up). Each must exit with the signal's code and leave
nothing behind: no packer, QEMU, nginx, mmdebstrap, apt or cp process, no mount under the build folder, no loop
device, no private key, no container or build network, no partial artefact.

A setting that changes only the step's cache key makes each run redo that step with the rest cached:
visa.rebase_days (a new Debian base), visa.installer (new Docker layers), visa.disk_size (a new fill),
visa.compression (a new sealing boot)."""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO
from visa_build import artefact, fill
from visa_build.docker_engine import docker_client
from visa_build.image_spec import load_image_spec

SPEC = "images/ci"
#: Process names (the kernel keeps 15 characters) of what visa-build starts in these steps.
WATCHED = {"packer", "qemu-system-x86", "nginx", "mmdebstrap", "apt-get", "dpkg", "cp", "qemu-img", "mkfs.ext4"}
FILL_SIZE = "11G"  # visa.disk_size of the fill runs (the default is 12G)


def processes() -> set[tuple[int, str]]:
    """(pid, name) of every running process visa-build may start."""
    found = set()
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            name = comm.read_text().strip()
        except OSError:  # the process ended meanwhile
            continue
        if name in WATCHED:
            found.add((int(comm.parent.name), name))
    return found


def mounts_under(directory: Path) -> list[str]:
    out = subprocess.run(
        ["findmnt", "--list", "--noheadings", "--output", "TARGET"], capture_output=True, text=True, check=True
    ).stdout
    return [target for target in out.splitlines() if target.startswith(f"{directory}/")]


def loops_under(directory: Path) -> list[str]:
    out = subprocess.run(
        ["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"], capture_output=True, text=True, check=True
    ).stdout
    return [line for line in out.splitlines() if str(directory) in line]


def files_under(directory: Path) -> set[Path]:
    return {path for path in directory.rglob("*") if path.is_file()} if directory.is_dir() else set()


@dataclass
class Snapshot:
    """What exists before a run, so the check sees only what the run added."""

    processes: set[tuple[int, str]]
    containers: set[str]
    networks: set[str]  # Docker networks (each build makes its own)
    artefacts: set[Path]  # published images and cache entries

    @classmethod
    def take(cls, build: Path) -> Snapshot:
        client = docker_client()
        containers = {c.id for c in client.containers.list(all=True)}
        networks = {n.id for n in client.networks.list()}
        artefacts = files_under(build / "images") | files_under(build / "cache" / "filled")
        return cls(processes(), containers, networks, artefacts)


class Run:
    """`./visa-build build-qcow2` with its own terminal (a pty, the run its session leader), like a user's ssh
    session; the lines it prints are collected."""

    def __init__(self, build: Path, settings: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        env = {**os.environ, "NO_COLOR": "1", "INVOKE_VISA_BUILD_DIR": str(build), **settings}
        terminal: dict[str, Any] = {"stdin": slave, "stdout": slave, "stderr": slave}
        self.proc = subprocess.Popen(
            ["./visa-build", "build-qcow2", "--image", SPEC],
            cwd=REPO,
            env=env,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),  # the pty becomes its controlling terminal
            **terminal,
        )
        os.close(slave)
        self.lines: list[str] = []
        self.hanging_up = threading.Event()  # the terminal closes once the reader lets go of it
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        pending = b""
        while not self.hanging_up.is_set():
            if not select.select([self.master], [], [], 0.2)[0]:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:  # the run ended
                return
            if not data:
                return
            pending += data
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                line = raw.decode(errors="replace").rstrip("\r")
                self.lines.append(line)
                sys.stderr.write(f"  [run] {line}\n")

    def wait_for(self, what: str, ready: Callable[[], bool], *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None:
                pytest.fail(
                    f"the run ended (exit {self.proc.returncode}) before {what}:\n" + "\n".join(self.lines[-30:])
                )
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {timeout:.0f} s:\n" + "\n".join(self.lines[-30:]))
            time.sleep(0.5)

    def printed(self, pattern: str) -> Callable[[], bool]:
        return lambda: any(re.search(pattern, line) for line in self.lines)

    def stop(self, signum: int) -> int:
        """Send `signum` (SIGHUP: hang the terminal up, as a dropped ssh session does); the run's exit code."""
        if signum == signal.SIGHUP:  # the kernel sends SIGHUP to the session leader, writes then fail
            self.hanging_up.set()
            self.reader.join()
            os.close(self.master)
        else:
            self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout=120)
        finally:
            if signum != signal.SIGHUP:
                os.close(self.master)


@pytest.fixture(scope="module")
def build(request: pytest.FixtureRequest) -> Path:
    """The build folder, with images/ci built (so each run redoes only the step it changes). Published images of
    images/ci with other settings are removed: a run with those settings would find its step done."""
    folder = Path(request.config.getoption("--visa-build-dir")).resolve()
    env = {**os.environ, "INVOKE_VISA_BUILD_DIR": str(folder)}
    built = subprocess.run(
        ["./visa-build", "build-qcow2", "--image", SPEC],
        cwd=REPO,
        env=env,
        check=True,
        text=True,
        stdout=subprocess.PIPE,
    )
    default = Path(built.stdout.splitlines()[-1])
    for published in default.parent.iterdir():
        if not published.name.startswith(default.stem):
            published.unlink()
    filesystem = docker_client().images.get(f"visa-build/{load_image_spec(REPO / SPEC).name}:filesystem").id
    filled = fill.cache_path(folder / "cache", load_image_spec(REPO / SPEC).name, filesystem, FILL_SIZE)
    for entry in (filled, artefact.sidecar(filled)):
        entry.unlink(missing_ok=True)
    return folder


@pytest.fixture
def interrupted(build: Path) -> Iterator[Callable[[dict[str, str]], Run]]:
    """Start runs; afterwards nothing they started may be left."""
    before = Snapshot.take(build)
    started: list[Run] = []

    def start(settings: dict[str, str]) -> Run:
        started.append(Run(build, settings))
        return started[-1]

    yield start
    for run in started:
        if run.proc.poll() is None:
            run.proc.kill()
    time.sleep(3)  # the engine removes a cancelled build's container as the step ends
    problems = []
    if new := processes() - before.processes:
        problems.append(f"processes left running: {sorted(new)}")
    if mounts := mounts_under(build):
        problems.append(f"still mounted under {build}: {mounts}")
    if loops := loops_under(build):
        problems.append(f"loop devices still attached: {loops}")
    if keys := [p for p in files_under(build / "packer") if "PRIVATE KEY" in p.read_text(errors="replace")]:
        problems.append(f"private keys left: {keys}")
    if containers := {c.id for c in docker_client().containers.list(all=True)} - before.containers:
        problems.append(f"containers left: {containers}")
    if networks := {n.name for n in docker_client().networks.list() if n.id not in before.networks}:
        problems.append(f"Docker networks left: {networks}")
    if artefacts := (files_under(build / "images") | files_under(build / "cache" / "filled")) - before.artefacts:
        problems.append(f"new files among the published images and filled disks: {sorted(map(str, artefacts))}")
    scratch = [p for p in (build / "cache").rglob(".*") if re.match(r"\.(fill|mmdebstrap|base)-", p.name)]
    if partial := scratch + list((build / "cache").glob("*.partial*")):
        problems.append(f"partial files left: {partial}")
    assert not problems, "\n".join(problems)


def stopped(run: Run, signum: int, step: str) -> None:
    """Stop `run` with `signum` while `step` (a step title's pattern) is running."""
    assert not run.printed(f"✓ {step}")(), f"the step {step!r} was over before the signal: the test is too slow"
    code = run.stop(signum)
    assert code == 128 + signum, f"exit code {code} after {signal.Signals(signum).name}, not {128 + signum}"
    if signum != signal.SIGHUP:  # after a hang-up nothing can be read
        assert any(f"stopped by {signal.Signals(signum).name}" in line for line in run.lines), run.lines[-10:]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_stopped_during_mmdebstrap(interrupted: Callable[[dict[str, str]], Run], build: Path, signum: int) -> None:
    run = interrupted({"INVOKE_VISA_REBASE_DAYS": "5"})
    run.wait_for("mmdebstrap step", run.printed(r"Building base image .* \(mmdebstrap\)"), timeout=120)
    if signum == signal.SIGTERM:  # when mmdebstrap has the chroot's /dev, /proc and /sys mounted
        run.wait_for("mount of mmdebstrap's chroot", lambda: bool(mounts_under(build / "cache")), timeout=300)
    time.sleep(3)
    stopped(run, signum, "Building base image")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_stopped_during_docker_build(interrupted: Callable[[dict[str, str]], Run], signum: int) -> None:
    run = interrupted({"INVOKE_VISA_INSTALLER": "pip"})
    run.wait_for("docker build step", run.printed(r"Building container image"), timeout=300)
    run.wait_for("a RUN step", run.printed(r"Running in [0-9a-f]+"), timeout=120)
    time.sleep(3)
    stopped(run, signum, "Building container image")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_stopped_during_the_fill(interrupted: Callable[[dict[str, str]], Run], build: Path, signum: int) -> None:
    run = interrupted({"INVOKE_VISA_DISK_SIZE": FILL_SIZE})
    run.wait_for("fill step", run.printed(r"Filling .* natively"), timeout=300)
    run.wait_for("the fill's mounts", lambda: len(mounts_under(build / "cache")) >= 2, timeout=60)
    time.sleep(0.5)  # the copy takes a few seconds
    stopped(run, signum, "Filling")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_stopped_during_packer(interrupted: Callable[[dict[str, str]], Run], signum: int) -> None:
    run = interrupted({"INVOKE_VISA_COMPRESSION": "zstd"})
    run.wait_for("Packer step", run.printed(r"with Packer"), timeout=300)
    run.wait_for("the build VM", lambda: any(name == "qemu-system-x86" for _, name in processes()), timeout=120)
    time.sleep(3)
    stopped(run, signum, "Building the sealing boot")
