"""A site's build proxy (visa.proxy), through a real tinyproxy on this host with its log: a build with the proxy
set succeeds and its mirror requests pass through it, so does the wheelhouse's pip download from the package
index, and a proxy that does not answer fails the build with one line naming it, leaving nothing behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.helpers import REPO
from visa_build import build_proxy, docker_engine, pip_download
from visa_build.ports import free_port
from visa_build.settings import DEFAULTS

#: How long a build of images/ci may take here: its layers are in Docker's cache after the doubles' step.
BUILD_TIMEOUT = 1800


def _host_address() -> str:
    """This host's own address towards the mirror: the build containers reach it too (127.0.0.1 is theirs)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((urlsplit(DEFAULTS["mirror"]).hostname or "", 80))
        return str(probe.getsockname()[0])


@pytest.fixture
def tinyproxy(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A tinyproxy for this host and its build containers: (its URL, its log)."""
    address, port = _host_address(), free_port()
    config, log = tmp_path / "tinyproxy.conf", tmp_path / "tinyproxy.log"
    config.write_text(
        f"Port {port}\nTimeout 600\nLogLevel Connect\nMaxClients 100\n"
        f"Allow 127.0.0.1\nAllow {address}\nAllow 172.16.0.0/12\nAllow 192.168.0.0/16\n"
    )
    with log.open("w") as out:
        proxy = subprocess.Popen(["tinyproxy", "-d", "-c", str(config)], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while proxy.poll() is None and time.monotonic() < deadline:
            with socket.socket() as client:
                if client.connect_ex((address, port)) == 0:
                    break
            time.sleep(0.2)
        assert proxy.poll() is None, f"tinyproxy did not start:\n{log.read_text()}"
        yield f"http://{address}:{port}", log
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)


def _build(pytestconfig: pytest.Config, proxy: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "INVOKE_VISA_BUILD_DIR": str(pytestconfig.getoption("--visa-build-dir")),
        "INVOKE_VISA_PROXY": proxy,
    }
    argv = [sys.executable, "-m", "invoke", "build-container", "--image", "images/ci"]
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT)


def test_a_build_with_the_sites_proxy_sends_its_mirror_requests_through_it(
    pytestconfig: pytest.Config, tinyproxy: tuple[str, Path]
) -> None:
    url, log = tinyproxy
    built = _build(pytestconfig, url)
    assert built.returncode == 0, f"the build through {url} failed:\n{built.stdout[-3000:]}\n{built.stderr[-3000:]}"
    mirror = urlsplit(DEFAULTS["mirror"]).hostname
    passed = log.read_text()
    assert f'Established connection to host "{mirror}"' in passed, f"no request to {mirror} went through:\n{passed}"


def _first_pin(lock: Path) -> str:
    """The lock's first requirement with its hash lines (those that follow it), as a requirements file."""
    lines = lock.read_text().splitlines()
    block = [lines[0]]
    for line in lines[1:]:
        if not line.startswith("    --hash="):
            break
        block.append(line)
    return "\n".join(block).rstrip(" \\") + "\n"


def test_the_wheelhouse_download_goes_through_the_proxy(tinyproxy: tuple[str, Path], tmp_path: Path) -> None:
    """The wheelhouse's own pip download (pip_download.wheels_argv), with the run's proxy variables, of one wheel
    of images/ci's lock, cache off: the package index and its files host are asked through the proxy."""
    url, log = tinyproxy
    requirements = tmp_path / "one.txt"
    requirements.write_text(_first_pin(REPO / "images/ci/data-analysis.lock"))
    env = {**os.environ, **build_proxy.environment(url, ""), "PIP_NO_CACHE_DIR": "1", "PIP_FIND_LINKS": ""}
    argv = pip_download.wheels_argv(requirements, tmp_path / "wheels")
    ran = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, f"pip download through {url} failed:\n{ran.stdout[-2000:]}\n{ran.stderr[-2000:]}"
    passed = log.read_text()
    assert "CONNECT pypi.org:443" in passed, f"the package index was not asked through the proxy:\n{passed}"


def test_a_dead_proxy_fails_the_build_with_one_line_naming_it(pytestconfig: pytest.Config) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    networks_before = {n.name for n in docker_engine.docker_client().networks.list()}
    built = _build(pytestconfig, dead)
    said = built.stdout + built.stderr
    assert built.returncode == 1, f"the build through a dead proxy exited {built.returncode}:\n{said[-3000:]}"
    errors = [line for line in said.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and f"the proxy {dead} (visa.proxy) did not pass the request" in errors[0], said[-3000:]
    assert {n.name for n in docker_engine.docker_client().networks.list()} == networks_before, "a network was left"
