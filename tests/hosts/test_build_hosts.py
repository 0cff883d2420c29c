"""Debian 13 and Ubuntu 24.04 as build hosts. A container of each release (made by mmdebstrap from its mirror,
with only python3, python3-venv and git), as root, runs the README's set-up from a clean clone of this checkout:
the doctor installs the build tools (Packer from bookworm into the clone's build/tools: neither release packages
it), the Packer templates validate with the Packer the doctor chose, and build-container builds images/ci with
the release's own Python (3.13, 3.12: the wheelhouse's path without bytecode) through this host's Docker engine,
whose socket is mounted in. The engine itself is this host's: a container cannot run one of its own here."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest
import requests

from tests.helpers import REPO
from visa_build import image_inputs, mounts
from visa_build.artefact import key_of
from visa_build.docker_engine import BUILD_DIR_LABEL, docker_client, image_exists
from visa_build.image_spec import load_image_spec
from visa_build.process import run
from visa_build.settings import make_settings

#: The host releases, by the CI spec of the same release (its mirrors and archive keyring).
HOSTS = {"debian-13": "images/ci-trixie", "ubuntu-24.04": "images/ci-noble"}
HOST_PACKAGES = ("python3", "python3-venv", "git", "ca-certificates")
#: The host's TLS settings a container needs to reach the package index as this host does (a TLS proxy's CA).
CA_VARIABLES = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
#: What runs in the host container, as root, from a clean clone.
CLONE = "/root/visa-build"
SET_UP = f"""set -euo pipefail
git clone -q /src {CLONE}
cd {CLONE}
./visa-build doctor --fix
.venv/bin/python -m pytest -q -p no:cacheprovider tests/packer --visa-build-dir={CLONE}/build
./visa-build build-container --image images/ci
"""
#: Minutes one host's set-up may take (apt installs the build tools; the double's layers may be cold).
SET_UP_TIMEOUT = 1800


def host_image(host: str, build_dir: Path) -> str:
    """The Docker image of a bare `host` system (made once per mirror state of its suites' lines)."""
    spec = load_image_spec(REPO / HOSTS[host])
    sources = image_inputs.sources(spec, make_settings(build_dir=str(build_dir), rebase_days=0))
    tag = f"visa-build/host:{host}-{key_of(*sources.lines(), *HOST_PACKAGES)}"
    client = docker_client()
    if image_exists(client, tag):
        return tag
    scratch = Path(tempfile.mkdtemp(prefix=".host-rootfs-", dir=build_dir))
    try:
        tar = scratch / "host.tar"
        argv = [
            "mmdebstrap",
            "--variant=apt",
            *([f"--keyring={sources.keyring}"] if sources.keyring else []),
            "--format=tar",
            f"--include={','.join(HOST_PACKAGES)}",
            sources.suite,
            str(tar),
            *sources.lines(),
        ]
        run(argv, timeout=900, env={"TMPDIR": str(scratch)})
        with tar.open("rb") as handle:
            client.api.import_image_from_data(handle.read(), repository=tag.split(":")[0], tag=tag.split(":")[1])
    finally:
        mounts.release_all_under(scratch)  # what a stopped mmdebstrap left mounted in its chroot
        shutil.rmtree(scratch, ignore_errors=True)
    return tag


@pytest.fixture
def set_up_on(request: pytest.FixtureRequest) -> Iterator[Callable[[str], tuple[int, str]]]:
    build_dir = Path(request.config.getoption("--visa-build-dir")).resolve()
    containers = []

    def set_up(host: str) -> tuple[int, str]:
        """Run SET_UP in a container of `host`; (exit code, output)."""
        ca_files = {os.environ[name] for name in CA_VARIABLES if os.path.isfile(os.environ.get(name, ""))}
        volumes = {
            "/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"},
            str(REPO): {"bind": "/src", "mode": "ro"},
            **{path: {"bind": f"/etc/visa-host-ca/{Path(path).name}", "mode": "ro"} for path in ca_files},
        }
        environment = {
            name: f"/etc/visa-host-ca/{Path(os.environ[name]).name}"
            for name in CA_VARIABLES
            if os.environ.get(name) in ca_files
        }
        container = docker_client().containers.run(
            host_image(host, build_dir),
            ["bash", "-c", SET_UP],
            detach=True,
            network_mode="host",
            volumes=volumes,
            environment={**environment, "NO_COLOR": "1"},
            labels={"visa-build.test": "hosts"},
        )
        containers.append(container)
        try:
            code = int(container.wait(timeout=SET_UP_TIMEOUT)["StatusCode"])
        except requests.exceptions.RequestException:  # no answer from the engine in time
            pytest.fail(f"the set-up on a {host} host took over {SET_UP_TIMEOUT} s:\n{_tail(container)}")
        return code, container.logs().decode(errors="replace")

    yield set_up
    client = docker_client()
    for container in containers:
        container.stop(timeout=60)  # visa-build in it removes its build network and containers
        made_by = _build_dir_id(container)
        container.remove(force=True)
        # The clone's images: once its build folder is gone, no run would ever remove them.
        for image in client.images.list(filters={"label": f"{BUILD_DIR_LABEL}={made_by}"}) if made_by else []:
            with contextlib.suppress(docker.errors.NotFound):  # gone with a child removed before it
                client.images.remove(image.id, force=True)


def _build_dir_id(container: Any) -> str | None:
    """The id of the build folder of the clone in `container` (runs.build_dir_id), if a build made one."""
    try:
        chunks, _ = container.get_archive(f"{CLONE}/build/runs/build-dir-id")
    except docker.errors.NotFound:
        return None
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
        member = archive.extractfile("build-dir-id")
        return member.read().decode().strip() if member else None


def _tail(container: Any) -> str:
    return "\n".join(container.logs(tail=40).decode(errors="replace").splitlines())


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_the_quick_start_sets_up_and_builds_on(host: str, set_up_on: Callable[[str], tuple[int, str]]) -> None:
    code, output = set_up_on(host)
    tail = "\n".join(output.splitlines()[-40:])
    assert code == 0, f"the set-up on a {host} host failed (exit code {code}):\n{tail}"
    fetched = re.search(r"packer: /root/visa-build/build/tools/packer/\S+/packer \(1\.6\.6\)", output)
    assert fetched, f"the doctor did not fetch Debian 12's Packer into the clone's build/tools:\n{output}"
    assert re.search(r"^\d+ passed", output, re.MULTILINE), f"the Packer templates were not validated:\n{output}"
    assert "compiling bytecode" not in output, f"a {host} host's Python compiled bytecode for bookworm's 3.11"
    assert "visa-build/visa-ci:latest" in output.splitlines(), f"build-container printed no image tag:\n{tail}"
