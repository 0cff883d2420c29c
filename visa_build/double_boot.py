"""The container double booted: systemd as PID 1 and a NoCloud seed in a throw-away container, always removed."""

from __future__ import annotations

import contextlib
import io
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors
import requests

from . import interrupts, progress, runs
from .docker_engine import LABEL, RUN_LABEL, docker_client
from .errors import ImageTestError
from .seed import Seed


@dataclass(frozen=True)
class RunningDouble:
    name: str
    address: str  # IP on the Docker bridge
    container: Any


def _seed_archive(seed: Seed) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, text in (("meta-data", seed.meta_data), ("user-data", seed.user_data)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o600
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def keep_journal(container: Any, name: str, log_dir: Path) -> Path:
    """Save the container's journal of this boot under log_dir; returns the file."""
    result = container.exec_run(["journalctl", "--no-pager", "-b", "-o", "short-precise"])
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"{name}-journal.txt"
    path.write_bytes(result.output)
    progress.note(f"journal of {name} kept: {path}")
    return path


@contextlib.contextmanager
def running_double(image: str, seed: Seed, *, log_dir: Path, purpose: str) -> Iterator[RunningDouble]:
    """Boot the double with `seed`; always removed afterwards. On an error its journal is kept in log_dir."""
    client = docker_client()
    name = f"visa-double-{purpose}-{uuid.uuid4().hex[:8]}"
    container = client.containers.create(
        image,
        name=name,
        hostname=name,
        detach=True,
        labels={LABEL: "double", RUN_LABEL: runs.RUN_ID},
        tmpfs={"/run": "", "/run/lock": "", "/tmp": ""},
        volumes={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "ro"}},
    )
    try:
        container.put_archive("/var/lib/cloud/seed/nocloud", _seed_archive(seed))
        container.start()
        container.reload()
        address = container.attrs["NetworkSettings"]["IPAddress"]
        yield RunningDouble(name=name, address=address, container=container)
    except BaseException:
        with contextlib.suppress(Exception):  # the original error matters more than a lost journal
            keep_journal(container, name, log_dir)
        raise
    finally:
        with interrupts.shielded(), contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


def status_code(url: str) -> int | None:
    """The HTTP status of one GET of `url`; None when nothing answers."""
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:
        return None


def wait_for_status(url: str, *, timeout: float) -> float:
    """Poll `url` until it answers 200; returns the seconds waited, ImageTestError after `timeout`."""
    start = time.monotonic()
    last = "no answer"
    while time.monotonic() - start < timeout:
        code = status_code(url)
        if code == 200:
            return time.monotonic() - start
        last = f"HTTP {code}" if code is not None else "no answer"
        time.sleep(1)
    raise ImageTestError(
        f"{url} did not answer 200 within {timeout:.0f} s (last: {last})",
        tip="see the kept journal: journalctl -u visa-jupyter shows why the server did not start",
    )
