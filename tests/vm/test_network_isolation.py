"""A test VM runs whatever the image holds, so its network is restricted: it reaches neither the host's loopback
services (Glance, the wheelhouse, Docker's API over TCP) nor any other address, only the forwards its test run
gives it. Its one way out is the archives' proxy, which serves the image's mirrors and nothing else."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.helpers import Facts
from visa_build import archive_proxy
from visa_build.image_spec import ImageSpec
from visa_build.in_guest import HOST_FROM_GUEST  # without `restrict`, the host's 127.0.0.1

pytestmark = pytest.mark.vm_only


#: Connect from the guest with its own python3 (cloud-init's); prints the outcome as JSON.
CONNECT = """import json, socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10).close()
    print(json.dumps("connected"))
except OSError as exc:
    print(json.dumps(type(exc).__name__ + ": " + str(exc)))
"""
#: GET a URL through the archives' proxy from the guest; prints the HTTP status.
FETCH = """import json, sys, urllib.error, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": sys.argv[2]}))
try:
    print(json.dumps(opener.open(sys.argv[1], timeout=60).status))
except urllib.error.HTTPError as exc:
    print(json.dumps(exc.code))
"""


@pytest.fixture
def host_listener() -> Iterator[int]:
    """A TCP service on the host's 127.0.0.1 (its port), as Glance or the wheelhouse server would be."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.listen()
        yield server.getsockname()[1]


def _in_guest(host: Any, program: str, *args: str) -> Any:
    result = host.run("python3 -c %s " + " ".join(["%s"] * len(args)), program, *args)
    assert result.rc == 0, f"python3 in the guest failed (exit {result.rc}): {result.stderr[-2000:]}"
    return json.loads(result.stdout)


def _mirror(facts: Facts) -> str:
    """The URL of the image's first archive (its apt sources)."""
    urls: list[str] = [word for line in facts["apt_sources"] for word in line.split() if word.startswith("http")]
    assert urls, f"the image's apt sources name no http archive: {facts['apt_sources']}"
    return urls[0]


def test_the_guest_cannot_reach_the_hosts_loopback_services(host: Any, host_listener: int) -> None:
    outcome = _in_guest(host, CONNECT, HOST_FROM_GUEST, str(host_listener))
    assert outcome != "connected", (
        f"the test VM connected to the host's 127.0.0.1:{host_listener} through {HOST_FROM_GUEST}: its QEMU network "
        "is not restricted"
    )


def test_the_guest_cannot_reach_the_archive_directly(host: Any, facts: Facts) -> None:
    """Even the mirror is out of reach but through the proxy: no address beyond the VM answers."""
    netloc = urlsplit(_mirror(facts))
    address = socket.gethostbyname(netloc.hostname or "")
    outcome = _in_guest(host, CONNECT, address, str(netloc.port or 80))
    assert outcome != "connected", f"the test VM connected to the mirror at {address} without the archives' proxy"


def test_the_archives_proxy_serves_the_images_archive_and_nothing_else(
    host: Any, facts: Facts, spec: ImageSpec
) -> None:
    release = f"{_mirror(facts).rstrip('/')}/dists/{spec.distro.suites[0]}/InRelease"
    served = _in_guest(host, FETCH, release, archive_proxy.GUEST_URL)
    assert served == 200, f"the archives' proxy answered {served} for the image's own {release}"
    refused = _in_guest(host, FETCH, "http://pypi.org/simple/", archive_proxy.GUEST_URL)
    assert refused == 403, f"the archives' proxy answered {refused} for pypi.org, which is not an archive of the image"
