"""Fixtures of the publishing tests: real Glance APIs (tests/glance.py) and release records holding small real
qcow2 images."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.glance import clouds  # noqa: F401  (the fixture)
from visa_build.release import record

MakeRelease = Callable[..., Path]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "live_cloud: publishes to the cloud VISA_LIVE_CLOUD names (opt-in)")


def small_qcow2(path: Path, *, pattern: int, megabytes: float) -> Path:
    """A real qcow2 (Glance inspects uploads) holding `megabytes` of the byte `pattern`."""
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "1G"], check=True, timeout=60)
    subprocess.run(
        ["qemu-io", "-c", f"write -P {pattern} 0 {int(megabytes * 1024)}k", str(path)],
        check=True,
        timeout=60,
        capture_output=True,
    )
    return path


@pytest.fixture
def make_release(tmp_path: Path) -> MakeRelease:
    """make_release(spec, when, pattern=1, megabytes=0.2, debian="bookworm") -> a passed release record whose
    qcow2 is real and small, named like the nightly's (<UTC timestamp>-<key>)."""

    def make(spec: str, when: str, *, pattern: int = 1, megabytes: float = 0.2, debian: str = "bookworm") -> Path:
        image = small_qcow2(tmp_path / f"{spec}-{when}.qcow2", pattern=pattern, megabytes=megabytes)
        digest = subprocess.run(["sha256sum", str(image)], check=True, capture_output=True, text=True).stdout
        build = {
            "schema": 1,
            "verdict": "passed",
            "spec": {"name": spec, "debian": debian, "python": "3.11.2"},
            "sizes": {"qcow2_bytes": image.stat().st_size, "virtual_bytes": 1 << 30},
        }
        manifest = {
            "image": spec,
            "debian": {"release": debian, "packages": {"linux-image-cloud-amd64": "6.1.158-1"}},
            "python": {"/opt/visa/jupyter/jupyterlab": {"jupyterlab": {"version": "4.2.5"}}},
            "kernelspecs": {"python3": {"display_name": "Data Analysis", "argv0": "/opt/visa/envs/x/bin/python"}},
        }
        files: dict[str, str | Path] = {
            image.name: image,
            f"{image.name}.sha256": f"{digest.split()[0]}  {image.name}\n",
            "build.json": json.dumps(build),
            "manifest.json": json.dumps(manifest),
        }
        folder = record.write(tmp_path / "releases" / spec, f"{when}-{pattern:012x}", files)
        record.set_latest(folder.parent, folder.name)
        return folder

    return make
