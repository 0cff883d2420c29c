"""Runs side by side in one checkout (the test task's container step): `test-container` of several specs at
once, each passing, after planting a QEMU that only looks like visa-build's and the VM and container of a run
that was killed. Each run must reap the killed run's leftovers and nothing else."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO
from visa_build import runs
from visa_build.docker_engine import LABEL, RUN_LABEL, docker_client

DEAD_RUN = "deadbeef"


def idle_qemu(name: str) -> subprocess.Popen[bytes]:
    """A QEMU process named `name` that runs no guest."""
    return subprocess.Popen(
        ["qemu-system-x86_64", "-name", name, "-machine", "none", "-accel", "tcg", "-nodefaults", "-display", "none"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture
def killed_run_container() -> Iterator[Any]:
    """A container labelled as the killed run's (created from a one-file image, never started)."""
    client = docker_client()
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:
        info = tarfile.TarInfo("planted")
        archive.addfile(info, io.BytesIO(b""))
    client.api.import_image_from_data(data.getvalue(), repository="visa-build/planted", tag="test")
    container = client.containers.create(
        "visa-build/planted:test", command=["/planted"], labels={LABEL: "planted", RUN_LABEL: DEAD_RUN}
    )
    try:
        yield container
    finally:
        for leftover in client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={DEAD_RUN}"}):
            leftover.remove(force=True)
        client.images.remove("visa-build/planted:test", force=True)


def streamed(spec: str, proc: subprocess.Popen[str], lines: list[str]) -> threading.Thread:
    """Echo the run's output prefixed with its spec (the CI log shows both runs as they go)."""

    def pump() -> None:
        for line in proc.stdout or []:
            lines.append(line.rstrip())
            sys.stderr.write(f"[{spec}] {line}")

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


def test_specs_side_by_side_pass_and_reap_only_a_killed_runs_leftovers(
    pytestconfig: pytest.Config, killed_run_container: Any
) -> None:
    build_dir = Path(pytestconfig.getoption("--visa-build-dir")).resolve()
    specs = [s for s in pytestconfig.getoption("--side-by-side").split(",") if s]
    runs.runs_dir(build_dir).mkdir(parents=True, exist_ok=True)
    (runs.runs_dir(build_dir) / f"{DEAD_RUN}.lock").write_text("0\n")  # its lock file, held by nobody
    foreign, orphan = idle_qemu("visa-build-other-planted"), idle_qemu(f"visa-build-{DEAD_RUN}-planted")
    try:
        procs: dict[str, subprocess.Popen[str]] = {}
        outputs: dict[str, list[str]] = {}
        pumps = []
        for spec in specs:
            procs[spec] = subprocess.Popen(
                ["./visa-build", "test-container", "--image", spec],
                cwd=REPO,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env={**os.environ, "INVOKE_VISA_BUILD_DIR": str(build_dir)},
            )
            outputs[spec] = []
            pumps.append(streamed(spec, procs[spec], outputs[spec]))
        for proc in procs.values():
            proc.wait(timeout=3600)
        for pump in pumps:
            pump.join(timeout=60)
        for spec, proc in procs.items():
            tail = "\n".join(outputs[spec][-30:])
            assert proc.returncode == 0, f"test-container {spec} failed beside the other run(s):\n{tail}"
            assert any(line.startswith("PASSED test-container") for line in outputs[spec]), tail
        assert foreign.poll() is None, "a QEMU that is not visa-build's own (no run lock) was killed"
        assert orphan.wait(timeout=30) is not None, "the killed run's VM was not reaped"
        assert not docker_client().containers.list(all=True, filters={"label": f"{RUN_LABEL}={DEAD_RUN}"}), (
            "the killed run's container was not removed"
        )
        assert not (runs.runs_dir(build_dir) / f"{DEAD_RUN}.lock").exists(), "the killed run's lock file stayed"
        reaped = [line for lines in outputs.values() for line in lines if f"interrupted run {DEAD_RUN}" in line]
        assert len(reaped) == 1, f"exactly one run reports the reaping: {reaped}"
    finally:
        for idle in (foreign, orphan):
            idle.kill()
            idle.wait()
