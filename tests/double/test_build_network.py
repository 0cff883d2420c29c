"""A docker build runs on a bridge network of its run's own: it reaches the wheelhouse, served on that network's
gateway under the build's fixed host name, and not the services this host keeps on its loopback address."""

from __future__ import annotations

import functools
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from visa_build import runs
from visa_build.docker_engine import build_image, build_network, docker_client
from visa_build.wheelhouse_server import DOCKER_WHEELHOUSE_HOST, serving_to_docker

PROBE = """import urllib.request
def answer(url):
    try:
        return urllib.request.urlopen(url, timeout=5).read().decode().strip()
    except OSError as error:
        return f"unreachable ({{error}})"
print("wheelhouse:", answer("{wheelhouse}probe.txt"))
print("loopback:", answer("http://127.0.0.1:{loopback}/probe.txt"))
"""


@pytest.fixture
def loopback_port(tmp_path: Path) -> Iterator[int]:
    """A host service on 127.0.0.1 only, as Glance or a site's local proxy would be."""
    (tmp_path / "loopback").mkdir()
    (tmp_path / "loopback" / "probe.txt").write_text("the host's loopback answered\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "loopback"))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield int(server.server_address[1])
        server.shutdown()


def test_a_build_reaches_the_wheelhouse_and_not_the_hosts_loopback(
    pytestconfig: pytest.Config, tmp_path: Path, loopback_port: int
) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "probe.txt").write_text("the wheelhouse answered\n")
    nonce = time.time()  # the step is never in Docker's cache
    tag = "visa-build-network-test:latest"
    with (
        build_network("network-test", runs.RUN_ID) as (network, gateway),
        serving_to_docker(wheels, port=0, address=gateway) as url,
    ):
        script = PROBE.format(wheelhouse=url, loopback=loopback_port)
        (tmp_path / "probe.py").write_text(script)
        (tmp_path / "Dockerfile").write_text(
            f"FROM {pytestconfig.getoption('--visa-image')}\nCOPY probe.py /probe.py\n"
            f"RUN echo {nonce} && python3 /probe.py\n"
        )
        build_image(
            tmp_path,
            tag,
            {},
            network=network,
            hosts={DOCKER_WHEELHOUSE_HOST: gateway},
            log_path=tmp_path / "build.log",
            dockerfile="Dockerfile",
        )
    docker_client().images.remove(tag, force=True)
    said = (tmp_path / "build.log").read_text()
    assert "wheelhouse: the wheelhouse answered" in said, f"the build did not reach the wheelhouse:\n{said}"
    assert "loopback: unreachable" in said, f"the build reached a service on the host's 127.0.0.1:\n{said}"
