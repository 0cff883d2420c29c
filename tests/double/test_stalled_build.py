"""A docker build that hangs is stopped with its log's tail, and the engine ends the hung step: a RUN that
sleeps, and a RUN that asks a server which accepts the connection and never answers (a stalled wheelhouse)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from visa_build import runs
from visa_build.docker_engine import build_image, build_network, docker_client
from visa_build.errors import VisaBuildError

MARK = "visa-build-stall-test"


@pytest.fixture
def network() -> Iterator[tuple[str, str]]:
    """A build network of this test's own: its name and gateway address."""
    with build_network("stall-test", runs.RUN_ID) as made:
        yield made


@pytest.fixture
def silent_server(network: tuple[str, str]) -> Iterator[str]:
    """host:port on the build network's gateway whose listener takes connections (the kernel's backlog) and never
    answers."""
    with socket.socket() as listener:
        listener.bind((network[1], 0))
        listener.listen(8)
        yield f"{network[1]}:{listener.getsockname()[1]}"


def stall_containers() -> list[str]:
    """Build containers still running a step of this test."""
    client = docker_client()
    return [c.name for c in client.containers.list() if MARK in " ".join(c.attrs["Config"]["Cmd"] or [])]


@pytest.mark.parametrize("stall", ["sleep 600", "server"])
def test_a_silent_build_is_stopped_with_its_tail(
    pytestconfig: pytest.Config, tmp_path: Path, network: tuple[str, str], silent_server: str, stall: str
) -> None:
    fetch = f"python3 -c 'import urllib.request; urllib.request.urlopen(\"http://{silent_server}/\")'"
    step = fetch if stall == "server" else stall
    image = pytestconfig.getoption("--visa-image")
    nonce = time.time()  # the step is never in Docker's cache
    (tmp_path / "Dockerfile").write_text(f"FROM {image}\nRUN echo {MARK} {nonce} && {step}\n")
    with pytest.raises(VisaBuildError, match="printed nothing for 5 s and was stopped") as error:
        build_image(
            tmp_path,
            f"{MARK}:latest",
            {},
            network=network[0],
            hosts={},
            log_path=tmp_path / "build.log",
            dockerfile="Dockerfile",
            silence=5,
        )
    assert MARK in str(error.value), f"the error does not show the build's last output:\n{error.value}"
    deadline = time.monotonic() + 60
    while stall_containers() and time.monotonic() < deadline:
        time.sleep(1)
    assert stall_containers() == [], "the engine kept running the hung step after the build was stopped"
