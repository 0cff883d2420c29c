"""VM only: the qcow2 boots as VISA's clouds boot it, once per way the metadata reaches the instance.

- `nova`: Nova's metadata service at 169.254.169.254 (QEMU's SMBIOS says OpenStack Nova); it answers 500 to
  everything for its first 30 s, as a busy service does at boot, and the instance still gets its metadata.
- `config-drive`: the same openstack/ tree on an ISO labelled config-2.
- `nocloud-net`: VISA's Proxmox provider: `ds=nocloud-net;s=<server>/<vmid>/` in the SMBIOS serial.
- `nova-without-owner`: Nova's service with no `owner` in the metadata: the server says why and does not start,
  the desktop comes up all the same.

Each boot gets VISA's whole metadata set (seed.visa_meta, as Nova takes it for the OpenStack paths: the
desktop key as its base64 body) and VISA's boot command as user data; the test's ssh login comes as the
cloud's vendor data. One ssh round trip gathers what the tests assert. Runs with --datasource-boots (all four
by default); `./visa-build test` runs them for one image, see docs/testing.md."""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import image_spec
from tests.vm import metadata_service
from visa_build import vm
from visa_build.accelerator import Accel
from visa_build.double_boot import wait_for_status
from visa_build.image_spec import ImageSpec
from visa_build.image_tests import TEST_USER
from visa_build.process import run
from visa_build.seed import Login, cloud_user, pam_keypair, pem_body, random_instance_id, visa_meta

pytestmark = [pytest.mark.vm_only, pytest.mark.slow]

PATHS = ("nova", "config-drive", "nocloud-net")
#: What a boot gives its tests: what the guest said, the metadata sent, the spec.
Booted = tuple[dict[str, Any], dict[str, str], ImageSpec]
OWNER = "visauser"
#: Comma lists, one with an empty entry, as VISA joins an instance's proposals and instruments.
PROPOSALS, INSTRUMENTS = "9-12-345,,9-13-1", "D11,D22,IN5"
RUNS_FILE = "/var/lib/visa-test-boot-command.runs"
#: VISA's boot command (the image's bootCommand): the owner's account appears late, and each run is counted.
BOOT_COMMAND = f"sleep 5; useradd -m -s /bin/bash {OWNER}; echo ran >>{RUNS_FILE}"
#: Seconds Nova's metadata service answers 500 at first.
NOVA_FAILING_SECONDS = 30
#: Booted from the host: 10.0.2.2 is the host's loopback on QEMU's default user network.
HOST_FROM_GUEST = "10.0.2.2"

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
            seed_from = f"http://{HOST_FROM_GUEST}:{service.port}/{vmid}/"
            yield vm.Platform(smbios=f"serial=ds=nocloud-net;s={seed_from}")
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


def _wanted(pytestconfig: pytest.Config, boot: str) -> None:
    wanted = [name for name in str(pytestconfig.getoption("--datasource-boots")).split(",") if name]
    if boot not in wanted:
        pytest.skip(f"the {boot} boot is not in --datasource-boots={','.join(wanted)}")


@contextlib.contextmanager
def _booted_through(
    path: str, pytestconfig: pytest.Config, *, without: str = "", failing_seconds: float = NOVA_FAILING_SECONDS
) -> Iterator[tuple[vm.BootedVM, dict[str, str], ImageSpec, Accel]]:
    """The suite's qcow2 booted through `path` with VISA's metadata (less the key `without`), once ssh answers."""
    spec = image_spec(pytestconfig)
    accel = Accel(str(pytestconfig.getoption("--accelerator")))
    build = Path(pytestconfig.getoption("--visa-build-dir"))
    (build / "vm").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"datasource-{path}-", dir=build / "vm"))
    try:
        private_key, public = vm.keypair(work)
        login = Login(TEST_USER, public)
        meta = visa_meta(random_instance_id(), OWNER, pam_public_key=pam_keypair(work)[1])
        meta |= {"proposals": PROPOSALS, "instruments": INSTRUMENTS}
        meta.pop(without, None)
        with (
            _platform(path, meta, login, work, failing_seconds=failing_seconds) as platform,
            vm.booted_vm(
                Path(pytestconfig.getoption("--qcow2")),
                None,
                (login, private_key),
                accel=accel,
                name=f"datasource-{path}",
                work_root=work,
                log_dir=Path(pytestconfig.getoption("--visa-log-dir")),
                guest_http_port=spec.service.port,
                platform=platform,
            ) as guest,
        ):
            vm.wait_for_ssh(guest, timeout=300 * accel.slowdown)
            yield guest, meta, spec, accel
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _gather(guest: vm.BootedVM) -> dict[str, Any]:
    """What the guest says (GATHER), in one ssh round trip."""
    script = base64.b64encode(GATHER.encode()).decode()
    said = run(guest.ssh_argv(f"sudo python3 -c 'import base64; exec(base64.b64decode(\"{script}\"))'"), timeout=120)
    facts: dict[str, Any] = json.loads(said.lines[-1])
    return facts


@pytest.fixture(scope="module")
def booted(path: str, pytestconfig: pytest.Config) -> Iterator[Booted]:
    """Boot the suite's qcow2 through `path` until JupyterLab answers; what the guest says, the metadata sent,
    and the spec."""
    _wanted(pytestconfig, path)
    with _booted_through(path, pytestconfig) as (guest, meta, spec, accel):
        wait_for_status(
            f"http://127.0.0.1:{guest.http_port}/jupyter/{meta['id']}/api/status", timeout=300 * accel.slowdown
        )
        yield _gather(guest), meta, spec


EXPECTED = {  # path: (v1.platform, the datasource class cloud-init chose, part of v1.subplatform)
    "nova": ("openstack", "DataSourceOpenStack", metadata_service.NOVA_ADDRESS),
    "config-drive": ("configdrive", "DataSourceConfigDrive", "config-disk"),
    "nocloud-net": ("nocloud", "DataSourceNoCloudNet", f"http://{HOST_FROM_GUEST}:"),
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


def test_without_an_owner_jupyterlab_says_why_and_the_desktop_comes_up(pytestconfig: pytest.Config) -> None:
    """Nova's meta_data.json without `owner`: the server does not start, its journal says why, and the rest of
    the instance (the remote desktop on a desktop image) comes up all the same."""
    _wanted(pytestconfig, "nova-without-owner")
    with _booted_through("nova", pytestconfig, without="owner", failing_seconds=0) as (guest, _, spec, accel):
        desktop = {"3389", "4822"} if spec.desktop is not None else set()  # xrdp, guacd
        deadline = time.monotonic() + 120 * accel.slowdown
        while True:
            said = _gather(guest)
            ports = {line.split()[3].rsplit(":", 1)[1] for line in (said["listening"] or "").splitlines()}
            if (said["server_state"] == "failed" and desktop <= ports) or time.monotonic() > deadline:
                break
            time.sleep(5)
    assert said["server_state"] == "failed", f"visa-jupyter.service is {said['server_state']} without an owner"
    assert "metadata has no owner" in (said["server_journal"] or ""), f"its journal:\n{said['server_journal']}"
    assert desktop <= ports, f"the desktop is not listening (xrdp 3389, guacd 4822): {sorted(ports)}"
