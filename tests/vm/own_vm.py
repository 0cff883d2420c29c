"""A test's own VM of the suite's qcow2, beside the suite's VM: a scratch folder under the build folder with a
fresh login key, and vm.booted_vm with the suite's options (its qcow2, accelerator, log folder, service port)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import image_spec
from visa_build import vm
from visa_build.accelerator import Accel
from visa_build.image_tests import TEST_USER
from visa_build.seed import Login, Seed

#: Memory of each such VM (several run at once beside the suite's own VM; none opens a desktop session).
MEMORY_MIB = 2048


@dataclass(frozen=True)
class Scratch:
    work: Path  # removed with everything in it afterwards
    login: Login  # the test login, with the public half of private_key
    private_key: Path


@contextlib.contextmanager
def scratch(pytestconfig: pytest.Config, prefix: str) -> Iterator[Scratch]:
    """A scratch folder under the build folder's vm/ with a fresh key pair for the test login."""
    parent = Path(pytestconfig.getoption("--visa-build-dir")) / "vm"
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        private_key, public = vm.keypair(work)
        yield Scratch(work, Login(TEST_USER, public), private_key)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def booted(
    pytestconfig: pytest.Config, room: Scratch, name: str, seed: Seed | None, platform: vm.Platform
) -> contextlib.AbstractContextManager[vm.BootedVM]:
    """The suite's qcow2 booted in `room` with `seed` (None: the `platform` gives the metadata)."""
    return vm.booted_vm(
        Path(pytestconfig.getoption("--qcow2")),
        seed,
        (room.login, room.private_key),
        accel=Accel(str(pytestconfig.getoption("--accelerator"))),
        name=name,
        work_root=room.work,
        log_dir=Path(pytestconfig.getoption("--visa-log-dir")),
        guest_http_port=image_spec(pytestconfig).service.port,
        platform=platform,
        memory_mib=MEMORY_MIB,
    )
