"""VM only: the qcow2 boots as VISA's clouds boot it, once per way the metadata reaches the instance.

- `nova`: Nova's metadata service at 169.254.169.254 (QEMU's SMBIOS says OpenStack Nova); it answers 500 to
  everything for its first 30 s, as a busy service does at boot, and the instance still gets its metadata.
- `config-drive`: the same openstack/ tree on an ISO labelled config-2.
- `nocloud-net`: VISA's Proxmox provider: `ds=nocloud-net;s=<server>/<vmid>/` in the SMBIOS serial.
- `nova-without-owner`: Nova's service with no `owner` in the metadata: the server says why and does not start,
  the desktop comes up all the same.
- `<path>-bad-id`: each path with an instance id that is not a number: refused the same way.

Each boot gets VISA's whole metadata set (seed.visa_meta, as Nova takes it for the OpenStack paths: the
desktop key as its base64 body) and VISA's boot command as user data; the test's ssh login comes as the
cloud's vendor data. The VMs start at once, so their boots overlap; one ssh round trip each gathers what the
tests assert. Runs with --datasource-boots (all seven by default); `./visa-build test` runs them for one image,
see docs/testing.md."""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

from tests.helpers import image_spec
from tests.vm import metadata_service, own_vm
from visa_build import vm
from visa_build.accelerator import Accel
from visa_build.double_boot import wait_for_status
from visa_build.errors import VisaBuildError
from visa_build.image_spec import ImageSpec
from visa_build.process import run
from visa_build.seed import Login, cloud_user, pam_keypair, pem_body, random_instance_id, visa_meta

pytestmark = [pytest.mark.vm_only, pytest.mark.slow]

PATHS = ("nova", "config-drive", "nocloud-net")
#: What a boot gives its tests: what the guest said, the metadata sent, the spec.
Booted = tuple[dict[str, Any], dict[str, str], ImageSpec]
#: A started VM and the metadata it was given.
Started = tuple[vm.BootedVM, dict[str, str]]
#: What a desktop image listens on: xrdp and guacd.
DESKTOP_PORTS = {"3389", "4822"}
OWNER = "visauser"
#: Comma lists, one with an empty entry, as VISA joins an instance's proposals and instruments.
PROPOSALS, INSTRUMENTS = "9-12-345,,9-13-1", "D11,D22,IN5"
RUNS_FILE = "/var/lib/visa-test-boot-command.runs"
#: VISA's boot command (the image's bootCommand): the owner's account appears late, and each run is counted.
BOOT_COMMAND = f"sleep 5; useradd -m -s /bin/bash {OWNER}; echo ran >>{RUNS_FILE}"
#: Seconds Nova's metadata service answers 500 at first.
NOVA_FAILING_SECONDS = 30

GATHER = f"""
import json, os, subprocess
def out(*argv):
    done = subprocess.run(argv, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None
pid = out("systemctl", "show", "-p", "MainPID", "--value", "visa-jupyter.service") or "0"
runs = open("{RUNS_FILE}").read() if os.path.exists("{RUNS_FILE}") else ""
print(json.dumps({{
    "platform": out("cloud-init", "query", "v1.platform"),
    "subplatform": out("cloud-init", "query", "v1.subplatform"),
    "datasource": out("cat", "/var/lib/cloud/instance/datasource"),
    "proposals": out("cloud-init", "query", "ds.meta_data.meta.proposals"),
    "instruments": out("cloud-init", "query", "ds.meta_data.meta.instruments"),
    "boot_command_runs": runs.count("ran"),
    "public_pem": out("openssl", "pkey", "-pubin", "-in", "/etc/visa/public.pem"),
    "server_user": out("ps", "-o", "user=", "-p", pid),
    "server_state": out("systemctl", "show", "-p", "ActiveState", "--value", "visa-jupyter.service"),
    "server_journal": out("journalctl", "-b", "-u", "visa-jupyter.service", "-o", "cat", "--no-pager"),
    "listening": out("ss", "-Hltn"),
}}))
"""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "path" in metafunc.fixturenames:
        metafunc.parametrize("path", PATHS, scope="module")


def _vendor_data(login: Login) -> str:
    """The cloud's vendor data: the test's ssh login (VISA's own user data stays exactly VISA's)."""
    return "#cloud-config\n" + yaml.safe_dump({"users": [cloud_user(login)], "ssh_pwauth": False}, sort_keys=False)


@contextlib.contextmanager
def _platform(
    path: str, meta: dict[str, str], login: Login, work: Path, *, failing_seconds: float = NOVA_FAILING_SECONDS
) -> Iterator[vm.Platform]:
    """The QEMU platform of `path`, with its metadata server running while the block runs."""
    vendor = _vendor_data(login)
    if path == "nocloud-net":
        vmid = meta["id"]
        files = metadata_service.proxmox_files(vmid, meta, boot_command=BOOT_COMMAND, vendor_data=vendor)
        with metadata_service.serving(files) as service:
            # the guest's network is restricted: the server is reached through a forward of its own port
            seed_from = f"http://{vm.HOST_SERVICES_FROM_GUEST}:{service.port}/{vmid}/"
            forward = vm.guest_forward(vm.HOST_SERVICES_FROM_GUEST, service.port, service.port)
            yield vm.Platform(smbios=f"serial=ds=nocloud-net;s={seed_from}", network=forward)
        return
    nova_meta = {**meta, "pamPublicKey": pem_body(meta["pamPublicKey"])}
    user_data = f"#!/bin/sh\n{BOOT_COMMAND}\n"
    files = metadata_service.nova_files(nova_meta, user_data=user_data, vendor_data=vendor, name=f"visa-{meta['id']}")
    if path == "config-drive":
        yield vm.Platform(smbios=metadata_service.NOVA_SMBIOS, drive=metadata_service.config_drive(files, work))
        return
    with metadata_service.serving(files, failing_seconds=failing_seconds) as service:
        network = f"{metadata_service.NOVA_NETWORK},{service.guest_forward()}"
        yield vm.Platform(smbios=metadata_service.NOVA_SMBIOS, network=network)


class Boot(NamedTuple):
    """One boot: its metadata path, what is wrong with the metadata sent (a key left out, a key's bad value), and
    how long Nova's service answers 500 at first."""

    path: str
    without: str = ""
    bad: tuple[str, str] | None = None
    failing_seconds: float = 0.0

    @property
    def server_refuses(self) -> bool:
        return bool(self.without or self.bad)


#: An instance id that is not a number: the launcher refuses it, whatever path brought it.
BAD_ID = "4711x"
BOOTS = {
    "nova": Boot("nova", failing_seconds=NOVA_FAILING_SECONDS),
    "config-drive": Boot("config-drive"),
    "nocloud-net": Boot("nocloud-net"),
    "nova-without-owner": Boot("nova", without="owner"),
    **{f"{path}-bad-id": Boot(path, bad=("id", BAD_ID)) for path in PATHS},
}


@contextlib.contextmanager
def _started(boot: str, pytestconfig: pytest.Config) -> Iterator[Started]:
    """The suite's qcow2 started (not yet booted) as `boot` says, with VISA's metadata; stopped afterwards."""
    how = BOOTS[boot]
    with own_vm.scratch(pytestconfig, f"datasource-{boot}-") as room:
        meta = visa_meta(random_instance_id(), OWNER, pam_public_key=pam_keypair(room.work)[1])
        meta |= {"proposals": PROPOSALS, "instruments": INSTRUMENTS}
        meta.pop(how.without, None)
        if how.bad:
            meta[how.bad[0]] = how.bad[1]
        with (
            _platform(how.path, meta, room.login, room.work, failing_seconds=how.failing_seconds) as platform,
            own_vm.booted(pytestconfig, room, f"datasource-{boot}", None, platform) as guest,
        ):
            yield guest, meta


def _gather(guest: vm.BootedVM) -> dict[str, Any]:
    """What the guest says (GATHER), in one ssh round trip."""
    script = base64.b64encode(GATHER.encode()).decode()
    said = run(guest.ssh_argv(f"sudo python3 -c 'import base64; exec(base64.b64decode(\"{script}\"))'"), timeout=120)
    facts: dict[str, Any] = json.loads(said.lines[-1])
    return facts


def _settled(boot: str, guest: vm.BootedVM, meta: dict[str, str], spec: ImageSpec, accel: Accel) -> dict[str, Any]:
    """What the guest says once it is ready: JupyterLab answering; with metadata it refuses, the server given up
    and the desktop (on a desktop image) listening."""
    vm.wait_for_ssh(guest, timeout=300 * accel.slowdown)
    if not BOOTS[boot].server_refuses:
        status = f"http://127.0.0.1:{guest.http_port}/jupyter/{meta['id']}/api/status"
        wait_for_status(status, timeout=300 * accel.slowdown)
        return _gather(guest)
    desktop = DESKTOP_PORTS if spec.desktop is not None else set()
    deadline = time.monotonic() + 120 * accel.slowdown
    while True:
        said = _gather(guest)
        if (said["server_state"] == "failed" and desktop <= _ports(said)) or time.monotonic() > deadline:
            return said
        time.sleep(5)


def _ports(said: dict[str, Any]) -> set[str]:
    return {line.split()[3].rsplit(":", 1)[1] for line in (said["listening"] or "").splitlines()}


@pytest.fixture(scope="module")
def boots(pytestconfig: pytest.Config) -> dict[str, Booted | str]:
    """Every boot of --datasource-boots, their VMs started at once so the boots overlap, each gathered once
    ready, then all stopped: what each guest said and the metadata sent, or why the boot failed."""
    wanted = [name for name in str(pytestconfig.getoption("--datasource-boots")).split(",") if name]
    unknown = sorted(set(wanted) - set(BOOTS))
    if unknown:
        pytest.fail(f"--datasource-boots names {unknown}; known: {sorted(BOOTS)}")
    spec, accel = image_spec(pytestconfig), Accel(str(pytestconfig.getoption("--accelerator")))
    results: dict[str, Booted | str] = {}
    with contextlib.ExitStack() as stack:
        started = {boot: stack.enter_context(_started(boot, pytestconfig)) for boot in wanted}
        for boot, (guest, meta) in started.items():
            try:
                results[boot] = (_settled(boot, guest, meta, spec, accel), meta, spec)
            except VisaBuildError as error:  # this boot's tests fail with it; the others still run
                results[boot] = f"the {boot} boot failed: {error}"
    return results


def _booted(boots: dict[str, Booted | str], boot: str) -> Booted:
    if boot not in boots:
        pytest.skip(f"the {boot} boot is not in --datasource-boots")
    result = boots[boot]
    if isinstance(result, str):
        pytest.fail(result)
    return result


@pytest.fixture
def booted(path: str, boots: dict[str, Booted | str]) -> Booted:
    """The `path` boot: what the guest said, the metadata sent, the spec."""
    return _booted(boots, path)


EXPECTED = {  # path: (v1.platform, the datasource class cloud-init chose, part of v1.subplatform)
    "nova": ("openstack", "DataSourceOpenStack", metadata_service.NOVA_ADDRESS),
    "config-drive": ("configdrive", "DataSourceConfigDrive", "config-disk"),
    "nocloud-net": ("nocloud", "DataSourceNoCloudNet", f"http://{vm.HOST_SERVICES_FROM_GUEST}:"),
}


def test_cloud_init_chose_the_platforms_datasource(path: str, booted: Booted) -> None:
    said, _, _ = booted
    platform, datasource, source = EXPECTED[path]
    assert said["platform"] == platform, f"{path}: cloud-init says platform {said['platform']}, not {platform}"
    chosen = (said["datasource"] or "").split(":")[0]  # e.g. "DataSourceNoCloudNet: DataSourceNoCloudNet [...]"
    # cloud-init's local stage may already find it (its ...Local class: OpenStack brings up DHCP to ask).
    assert chosen in (datasource, f"{datasource}Local"), f"{path}: cloud-init chose {said['datasource']}"
    assert source in (said["subplatform"] or ""), f"{path}: the metadata came from {said['subplatform']}"


def test_jupyterlab_runs_as_the_owner(path: str, booted: Booted) -> None:
    said, _, _ = booted
    assert said["server_user"] == OWNER, f"{path}: the server runs as {said['server_user']}, not the owner {OWNER}"


def test_the_boot_command_ran_once(path: str, booted: Booted) -> None:
    said, _, _ = booted
    assert said["boot_command_runs"] == 1, f"{path}: VISA's boot command ran {said['boot_command_runs']} times"


def test_comma_lists_arrive_intact(path: str, booted: Booted) -> None:
    said, meta, _ = booted
    got = (said["proposals"], said["instruments"])
    assert got == (meta["proposals"], meta["instruments"]), f"{path}: proposals, instruments arrived as {got}"


def test_the_desktop_key_is_the_metadatas(path: str, booted: Booted) -> None:
    said, meta, spec = booted
    if spec.desktop is None:
        pytest.skip(f"{spec.name} has no [desktop]")
    assert said["public_pem"] == meta["pamPublicKey"].strip(), (
        f"{path}: /etc/visa/public.pem is not the metadata's pamPublicKey:\n{said['public_pem']}"
    )


def test_without_an_owner_jupyterlab_says_why_and_the_desktop_comes_up(boots: dict[str, Booted | str]) -> None:
    """Nova's meta_data.json without `owner`: the server does not start, its journal says why, and the rest of
    the instance (the remote desktop on a desktop image) comes up all the same."""
    said, _, spec = _booted(boots, "nova-without-owner")
    assert said["server_state"] == "failed", f"visa-jupyter.service is {said['server_state']} without an owner"
    assert "metadata has no owner" in (said["server_journal"] or ""), f"its journal:\n{said['server_journal']}"
    if spec.desktop is not None:
        listening = sorted(_ports(said))
        assert _ports(said) >= DESKTOP_PORTS, f"the desktop is not listening (xrdp 3389, guacd 4822): {listening}"


def test_a_non_numeric_id_is_refused(path: str, boots: dict[str, Booted | str]) -> None:
    """An instance id that is not a number, on each path: the launcher refuses it (it becomes the base URL), the
    journal says why, and the desktop comes up all the same."""
    said, _, spec = _booted(boots, f"{path}-bad-id")
    assert said["server_state"] == "failed", f"{path}: visa-jupyter.service is {said['server_state']} with id {BAD_ID}"
    refusal = f"instance id {BAD_ID} is not a number"
    assert refusal in (said["server_journal"] or ""), f"{path}: its journal:\n{said['server_journal']}"
    if spec.desktop is not None:
        listening = sorted(_ports(said))
        assert _ports(said) >= DESKTOP_PORTS, (
            f"{path}: the desktop is not listening (xrdp 3389, guacd 4822): {listening}"
        )
