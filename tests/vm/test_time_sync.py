"""VM only: the image's chrony syncs with the NTP server its spec names by address ([site] ntp_servers), served by
a chronyd this test runs on the host (tests/vm/chrony_server.py).

The suite's VMs live on QEMU's restricted user network, which carries no UDP out of the guest. So this test boots
the qcow2 once more with a second NIC whose frames go to a relay of its own (tests/vm/ntp_relay.py): the relay
answers ARP for the server's address and passes NTP to the host's chronyd, and nothing else. The NIC gets an
address on the server's subnet from the seed's network-config, as a site's network would give one. The guest's
chrony is not touched: it asks the servers the image was built with."""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.helpers import image_spec
from tests.vm import chrony_server, ntp_relay, own_vm
from visa_build import vm
from visa_build.accelerator import Accel
from visa_build.process import run
from visa_build.seed import NETWORK_CONFIG, nocloud_seed, random_instance_id, visa_meta

pytestmark = [pytest.mark.vm_only, pytest.mark.slow]

#: The second NIC: its MAC, the name cloud-init gives it, and its prefix length on the server's subnet.
TIME_NIC_MAC, TIME_NIC_NAME, TIME_NIC_PREFIX = "52:54:00:12:34:57", "time0", 24


def _server_address(servers: tuple[str, ...]) -> str | None:
    """The first of the spec's NTP servers given as an IPv4 address (the relay answers for one such address)."""
    for server in servers:
        with contextlib.suppress(ValueError):
            return str(ipaddress.IPv4Address(server))
    return None


def _network_config(server: str) -> str:
    """The suite's network (DHCP on the first NIC) and a static address next to `server` on the second NIC."""
    interface = ipaddress.IPv4Interface(f"{server}/{TIME_NIC_PREFIX}")
    guest = next(host for host in interface.network.hosts() if host != interface.ip)
    config = yaml.safe_load(NETWORK_CONFIG)
    static = {"type": "static", "address": f"{guest}/{TIME_NIC_PREFIX}"}
    config["config"].append(
        {"type": "physical", "name": TIME_NIC_NAME, "mac_address": TIME_NIC_MAC, "subnets": [static]}
    )
    return yaml.safe_dump(config, sort_keys=False)


@dataclasses.dataclass(frozen=True)
class Synced:
    """What the guest's chrony said once synced (or at the deadline), and what the relay passed."""

    server: str
    tracking: str
    sources: str
    relayed: ntp_relay.Relayed
    waited: float


def _field(tracking: str, name: str) -> str:
    """The value of field `name` in what `chronyc tracking` printed ("" when it is not there)."""
    return next((line.split(":", 1)[1].strip() for line in tracking.splitlines() if line.startswith(name)), "")


def _tracking(guest: vm.BootedVM) -> tuple[str, str]:
    said = run(guest.ssh_argv("chronyc -n tracking; echo ===; chronyc -n sources"), timeout=60, check=False)
    tracking, _, sources = said.output.partition("===")
    return tracking.strip(), sources.strip()


@contextlib.contextmanager
def _booted_with_time_nic(
    pytestconfig: pytest.Config, server: str, server_port: int
) -> Iterator[tuple[vm.BootedVM, ntp_relay.Relayed]]:
    """The suite's qcow2 booted with VISA's metadata and a second NIC relayed to the host's NTP server."""
    sockets = Path(tempfile.mkdtemp(prefix="visa-ntp-"))  # short: a socket path holds at most 108 bytes
    try:
        with own_vm.scratch(pytestconfig, "time-sync-") as room:
            owner = "visauser"
            seed = nocloud_seed(visa_meta(random_instance_id(), owner), create_user=owner, login=room.login)
            seed = dataclasses.replace(seed, network_config=_network_config(server))
            nic = vm.DatagramNic(sockets / "vm.sock", sockets / "relay.sock", TIME_NIC_MAC)
            with (
                ntp_relay.relaying(nic.peer_socket, nic.vm_socket, server, server_port) as relayed,
                own_vm.booted(pytestconfig, room, "time-sync", seed, vm.Platform(second_nic=nic)) as guest,
            ):
                yield guest, relayed
    finally:
        shutil.rmtree(sockets, ignore_errors=True)


@pytest.fixture(scope="module")
def synced(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Synced:
    """The guest's chrony once it tracks the host's server (polled until the deadline)."""
    spec = image_spec(pytestconfig)
    server = _server_address(spec.site.ntp_servers)
    if server is None:
        pytest.skip(
            f"{spec.name}'s [site] ntp_servers name no IPv4 address for the test to serve: {spec.site.ntp_servers}"
        )
    accel = Accel(str(pytestconfig.getoption("--accelerator")))
    program = chrony_server.chronyd(
        Path(pytestconfig.getoption("--visa-build-dir")), pytestconfig.getoption("--debian-mirror")
    )
    with (
        chrony_server.serving(program, tmp_path_factory.mktemp("chronyd")) as port,
        _booted_with_time_nic(pytestconfig, server, port) as (guest, relayed),
    ):
        vm.wait_for_ssh(guest, timeout=300 * accel.slowdown)
        started = time.monotonic()
        deadline = started + 120 * accel.slowdown
        while True:
            tracking, sources = _tracking(guest)
            tracked = (
                _field(tracking, "Reference ID").endswith(f"({server})") and _field(tracking, "Leap status") == "Normal"
            )
            if tracked or time.monotonic() > deadline:
                # a copy: the relay lives on while the VM stops, when an answer may find QEMU gone
                passed = dataclasses.replace(relayed, errors=list(relayed.errors))
                return Synced(server, tracking, sources, passed, time.monotonic() - started)
            time.sleep(3)


def test_chrony_tracks_the_sites_server(synced: Synced) -> None:
    said = f"chronyc tracking after {synced.waited:.0f} s:\n{synced.tracking}\nsources:\n{synced.sources}"
    relayed = f"the relay passed {synced.relayed.requests} requests and {synced.relayed.answers} answers"
    assert not synced.relayed.errors, f"{synced.relayed.errors}; {relayed}"
    assert _field(synced.tracking, "Reference ID").endswith(f"({synced.server})"), (
        f"not synced with {synced.server}: {said}; {relayed}"
    )
    assert _field(synced.tracking, "Stratum") == str(chrony_server.STRATUM + 1), f"not the host's server: {said}"
    assert _field(synced.tracking, "Leap status") == "Normal", said


def test_the_sites_server_is_the_selected_source(synced: Synced) -> None:
    selected = [line for line in synced.sources.splitlines() if line.startswith("^*")]
    assert [line.split()[1] for line in selected] == [synced.server], f"chronyc sources:\n{synced.sources}"
