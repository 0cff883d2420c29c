"""The test jobs users run: boot the container double or the qcow2 with VISA metadata and run the suites."""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import accelerator, archive_proxy, leftovers, packer_build, progress, vm
from .double_boot import running_double, status_code, wait_for_status
from .double_build import build_container
from .errors import ConfigError, ImageTestError
from .image_inputs import mirrors
from .image_spec import ImageSpec
from .process import run
from .proxy import reverse_proxy
from .qcow2 import build_qcow2, double_image_file
from .resources import project_files
from .seed import Login, nocloud_seed, pam_keypair, random_instance_id, visa_meta
from .settings import Settings

#: How long the double may take from start to answering /jupyter/<id>/api/status.
SERVER_START_TIMEOUT = 300


@dataclass(frozen=True)
class SuiteRun:
    seconds: float
    summary: str  # pytest's closing line, e.g. "330 passed, 4 skipped in 27.91s"


@dataclass(frozen=True)
class TestReport:
    tag: str
    instance_id: str
    owner: str
    seconds_to_status: float
    suite: SuiteRun
    seconds_to_ssh: float = 0.0


def test_container(
    spec: ImageSpec, settings: Settings, *, pytest_args: list[str], state: str | None = None
) -> TestReport:
    """Build the double (with Debian's updates of archive `state`, read from the mirrors when not given), boot it
    with VISA-shaped metadata and run tests/infra and tests/double against it."""
    tag = build_container(spec, settings, state=state).tag
    leftovers.reap(settings.build_dir)
    instance_id, owner = random_instance_id(), "visauser"
    logs = settings.log_dir
    with _key_folder(settings) as keys:
        meta, desktop_args = _desktop_meta(spec, keys)
        seed = nocloud_seed(visa_meta(instance_id, owner, **meta), create_user=owner)
        with running_double(tag, seed, log_dir=logs, purpose="suite") as double:
            status_url = f"http://{double.address}:{spec.service.port}/jupyter/{instance_id}/api/status"
            with progress.step(
                f"Booting {double.name} (id {instance_id}, owner {owner} created late) until {status_url}"
            ):
                waited = wait_for_status(status_url, timeout=SERVER_START_TIMEOUT)
            with reverse_proxy(f"{double.address}:{spec.service.port}", workdir=settings.build_dir / "proxy") as url:
                target = [f"--hosts=docker://{double.name}", f"--visa-image={tag}", "--visa-target=container"]
                if desktop_args:
                    target += [*desktop_args, f"--guacd-address={double.address}:{vm.GUACD_PORT}"]
                suite = _suite(target, ["tests/infra", "tests/double"], settings, spec, url, pytest_args)
    return TestReport(tag, instance_id, owner, waited, suite)


def _desktop_meta(spec: ImageSpec, keys: Path) -> tuple[dict[str, str], list[str]]:
    """For a spec with a [desktop]: a fresh key for VISA's desktop tokens in `keys`, as metadata (pamPublicKey,
    and a keyboardLayout other than the default) and as the suite's option; nothing otherwise."""
    if spec.desktop is None:
        return {}, []
    private, public = pam_keypair(keys)
    return {"pam_public_key": public, "keyboard_layout": DESKTOP_TEST_LAYOUT}, [f"--visa-pam-key={private}"]


@contextlib.contextmanager
def _key_folder(settings: Settings) -> Iterator[Path]:
    """A private folder under build_dir for a test instance's keys, removed afterwards."""
    settings.build_dir.mkdir(parents=True, exist_ok=True)
    keys = Path(tempfile.mkdtemp(prefix="pam-key-", dir=settings.build_dir))
    try:
        yield keys
    finally:
        shutil.rmtree(keys, ignore_errors=True)


TEST_USER = "visa-test"
#: The keyboard layout test instances with a desktop get (not VISA's default, so the suite can tell it arrived).
DESKTOP_TEST_LAYOUT = "fr-fr-azerty"
#: Seconds a stopped test suite has to tear down its VMs, doubles and servers before it is killed (its conftest
#: turns the SIGTERM it gets into a KeyboardInterrupt, so pytest runs every fixture's teardown).
SUITE_STOP_GRACE = 120.0


def suite_argv(target_args: list[str], suites: list[str], settings: Settings, spec: ImageSpec, url: str) -> list[str]:
    """pytest of visa-build's own `suites` (tests/infra, ...) against a target: from the checkout or the installed
    wheel alike, with pytest's cache under the build folder (never in site-packages)."""
    root = project_files()
    return [
        sys.executable,
        "-m",
        "pytest",
        *(str(root / suite) for suite in suites),
        f"--rootdir={root}",
        "-o",
        f"cache_dir={settings.build_dir / 'pytest-cache'}",
        *target_args,
        f"--jupyter-url={url}",
        f"--image-spec={spec.directory}",
        f"--visa-log-dir={settings.log_dir}",
        f"--visa-build-dir={settings.build_dir}",  # tests/double's doubles are a run there; tests/vm's boots work there
        f"--debian-mirror={settings.mirror}",  # tests/vm's NTP server is Debian's chrony
    ]


def _suite(
    target_args: list[str], suites: list[str], settings: Settings, spec: ImageSpec, url: str, extra: list[str]
) -> SuiteRun:
    argv = [*suite_argv(target_args, suites, settings, spec, url), *extra]
    logs = settings.log_dir
    started = time.monotonic()
    with progress.step(f"Running the infra suite ({', '.join(suites)})"):
        result = run(
            argv,
            timeout=3600 * 3,
            cwd=str(project_files()),
            on_line=progress.passthrough,
            check=False,
            stop_grace=SUITE_STOP_GRACE,
        )
        if result.returncode != 0:
            raise ImageTestError(
                f"the infra suite failed (pytest exit code {result.returncode})",
                tip=f"logs of the failed target are kept under {logs}; rerun one test with --pytest-args='-k name'",
            )
    summary = next((line.strip("= ") for line in reversed(result.lines) if " in " in line), "")
    return SuiteRun(time.monotonic() - started, summary)


def _wait_for_server(guest: vm.BootedVM, status_url: str, *, timeout: float) -> None:
    """Wait for the server like wait_for_status, but fail at once when the unit will never serve it:
    not enabled, failed for good, or a server answering 404 there (a wrong base_url)."""
    deadline = time.monotonic() + timeout
    not_found_since: float | None = None
    unit_checked = 0.0
    while time.monotonic() < deadline:
        code = status_code(status_url)
        if code == 200:
            return
        now = time.monotonic()
        if code == 404:
            not_found_since = not_found_since or now
            if now - not_found_since > 30:
                raise ImageTestError(
                    f"the server answers, but {status_url} is 404 (a wrong base_url?)",
                    tip="journalctl -u visa-jupyter on the VM shows its base_url",
                )
        if now - unit_checked < 10:
            time.sleep(1)
            continue
        unit_checked = now
        shown = run(
            guest.ssh_argv("systemctl show -p UnitFileState -p ActiveState visa-jupyter.service"),
            timeout=60,
            check=False,
        )
        state = dict(line.strip().split("=", 1) for line in shown.lines if "=" in line)
        if shown.returncode == 0 and (state.get("UnitFileState") != "enabled" or state.get("ActiveState") == "failed"):
            raise ImageTestError(
                f"visa-jupyter.service will not serve {status_url}: {state}",
                tip="the image's service is not enabled or failed for good; see the kept serial log",
            )
    raise ImageTestError(
        f"{status_url} did not answer 200 within {timeout:.0f} s",
        tip="see the kept serial console log and journalctl -u visa-jupyter",
    )


@dataclass(frozen=True)
class Instance:
    guest: vm.BootedVM
    accel: accelerator.Accel
    instance_id: str
    owner: str
    status_url: str
    seconds_to_ssh: float
    seconds_to_status: float
    keys: Path  # the test user's private key and ssh config live here (removed afterwards)
    desktop_args: tuple[str, ...] = ()  # the suite's options for a [desktop] image (its token key)


def _archives_forward(proxy_port: int) -> str:
    return vm.guest_forward(vm.HOST_SERVICES_FROM_GUEST, archive_proxy.GUEST_PORT, proxy_port)


@contextlib.contextmanager
def booted_instance(spec: ImageSpec, settings: Settings, qcow2: Path) -> Iterator[Instance]:
    """Boot `qcow2` through an overlay as VISA does (metadata id and owner, the owner created late) with a
    visa-test ssh user, and wait until ssh answers and the server answers at /jupyter/<id>/api/status."""
    accel = accelerator.resolve_accelerator(settings.accelerator, probe_disk=qcow2, cache_dir=settings.cache_dir)
    leftovers.reap(settings.build_dir)
    instance_id, owner = random_instance_id(), "visauser"
    logs, work_root = settings.log_dir, settings.build_dir / "vm"
    work_root.mkdir(parents=True, exist_ok=True)
    keys = Path(tempfile.mkdtemp(prefix="keys-", dir=work_root))
    try:
        private_key, public = vm.keypair(keys)
        login = Login(TEST_USER, public)
        meta, desktop_args = _desktop_meta(spec, keys)
        seed = nocloud_seed(visa_meta(instance_id, owner, **meta), create_user=owner, login=login)
        # the guest's network is restricted: the archives' proxy is all it reaches (the -security check's apt)
        proxy = archive_proxy.serving(archive_proxy.archive_hosts(*mirrors(spec, settings)))
        with (
            proxy as proxy_port,
            vm.booted_vm(
                qcow2,
                seed,
                (login, private_key),
                accel=accel,
                name=f"test-{spec.name}",
                work_root=work_root,
                log_dir=logs,
                guest_http_port=spec.service.port,
                platform=vm.Platform(network=_archives_forward(proxy_port)),
            ) as guest,
        ):
            started = time.monotonic()
            with progress.step(f"Booting {qcow2.name} (QEMU {accel.name}) until ssh answers"):
                to_ssh = vm.wait_for_ssh(guest, timeout=300 * accel.slowdown)
            status_url = f"http://127.0.0.1:{guest.http_port}/jupyter/{instance_id}/api/status"
            with progress.step(f"Waiting for /jupyter/{instance_id}/api/status (owner {owner} created late)"):
                _wait_for_server(guest, status_url, timeout=SERVER_START_TIMEOUT * accel.slowdown)
            seconds = time.monotonic() - started
            yield Instance(guest, accel, instance_id, owner, status_url, to_ssh, seconds, keys, tuple(desktop_args))
    finally:
        shutil.rmtree(keys, ignore_errors=True)


def test_qcow2(spec: ImageSpec, settings: Settings, *, qcow2: Path | None, pytest_args: list[str]) -> TestReport:
    """Boot the qcow2 through an overlay with VISA metadata (owner created late), then run tests/infra and
    tests/vm over ssh. The VM is always stopped; its serial log is kept when something failed."""
    if qcow2 is None:
        built = build_qcow2(spec, settings)
        qcow2, build_key = built.path, built.build_public_key
    else:
        if not qcow2.is_file():
            raise ConfigError(f"--qcow2 {qcow2} does not exist", tip="give the path build-qcow2 printed")
        vm.require_standalone(qcow2, "--qcow2")
        build_key = packer_build.build_key_file(qcow2)
    with booted_instance(spec, settings, qcow2) as instance, vm.ssh_control_dir() as control:
        guest = instance.guest
        ssh_config = guest.ssh_config(instance.keys / "ssh_config", control)
        target = [
            f"--hosts=ssh://{TEST_USER}@127.0.0.1:{guest.ssh_port}",
            f"--ssh-config={ssh_config}",
            f"--ssh-identity-file={guest.private_key}",
            "--sudo",
            "--visa-target=vm",
            f"--build-public-key={build_key}",
            f"--qcow2={qcow2}",
            f"--boot-timeout={300 * instance.accel.slowdown}",
            f"--accelerator={instance.accel.name}",
            f"--datasource-boots={','.join(settings.datasource_boots)}",
        ]
        if instance.desktop_args:
            target += [*instance.desktop_args, f"--guacd-address=127.0.0.1:{guest.guacd_port}"]
        record = double_image_file(qcow2)
        if record.is_file():  # natively filled: its container double can be compared with it
            target.append(f"--double-image={record.read_text().strip()}")
        with reverse_proxy(f"127.0.0.1:{guest.http_port}", workdir=settings.build_dir / "proxy") as url:
            suite = _suite(target, ["tests/infra", "tests/vm"], settings, spec, url, pytest_args)
    return TestReport(
        qcow2.name, instance.instance_id, instance.owner, instance.seconds_to_status, suite, instance.seconds_to_ssh
    )
