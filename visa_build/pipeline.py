"""The jobs users run: build the container double, test it; composed from the modules beside this one."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import artefact, base, base_disk, context, host, packer, progress, render, vm, wheelhouse
from .config import ImageSpec
from .container import build_image, remove_leftovers, running_double, status_code, wait_for_status
from .errors import ConfigError, ImageTestError, VisaBuildError
from .process import run
from .proxy import reverse_proxy
from .seed import Login, build_seed, nocloud_seed, random_instance_id, visa_meta
from .settings import Settings
from .wheelhouse import ensure_wheelhouse, serving

REPO = context.REPO
#: How long the double may take from start to answering /jupyter/<id>/api/status.
SERVER_START_TIMEOUT = 300
#: Provisioning scripts of the VM, in order: the Dockerfile's, then image cleanup (99-seal.sh is Packer's
#: shutdown command).
VM_SCRIPTS = ("10-system-packages.sh", "20-jupyterlab.sh", "30-data-analysis.sh", "40-jupyter-service.sh",
              "50-target.sh", "90-image-cleanup.sh")  # fmt: skip
BUILD_USER = "visa-build"
#: The guest reaches the host's 127.0.0.1 at this address under QEMU's user networking.
HOST_FROM_GUEST = "10.0.2.2"


def check_buildable(spec: ImageSpec) -> None:
    blockers = spec.build_blockers()
    if blockers:
        raise ConfigError(
            f"the image spec {spec.directory} cannot be built here:\n" + "\n".join(f"  - {b}" for b in blockers),
            tip="build images/visa-jupyter, or adapt the spec (see README, Image specs)",
        )


def container_tag(spec: ImageSpec) -> str:
    return f"visa-build/{spec.name}:latest"


def build_container(spec: ImageSpec, settings: Settings) -> str:
    """Build the container double of `spec`; returns its tag. Unchanged stages come from Docker's cache."""
    check_buildable(spec)
    base_image = settings.base_image or base.ensure_base_image(spec.debian, settings.mirror, settings.cache_dir)
    wheelhouse = ensure_wheelhouse(spec, settings.cache_dir)
    build_context = context.prepare(spec, settings.build_dir / "context" / spec.name)
    tag = container_tag(spec)
    with (
        serving(wheelhouse, port=settings.wheelhouse_port) as url,
        progress.step(f"Building container image {tag}"),
    ):
        env = render.provision_env(spec, target="container", wheelhouse_url=url, installer=settings.installer)
        build_image(build_context, tag, {"BASE_IMAGE": base_image, **env},
                    log_path=settings.log_dir / f"docker-build-{spec.name}.log")  # fmt: skip
    return tag


@dataclass(frozen=True)
class TestReport:
    tag: str
    instance_id: str
    owner: str
    seconds_to_status: float
    seconds_to_ssh: float = 0.0


def test_container(spec: ImageSpec, settings: Settings, *, pytest_args: list[str]) -> TestReport:
    """Build the double, boot it with VISA-shaped metadata and run tests/infra and tests/boot against it."""
    tag = build_container(spec, settings)
    stale = remove_leftovers()
    if stale:
        progress.note(f"removed {stale} container(s) left by an interrupted run")
    instance_id, owner = random_instance_id(), "visauser"
    seed = nocloud_seed(visa_meta(instance_id, owner), create_user=owner)
    logs = settings.log_dir
    with running_double(tag, seed, log_dir=logs, purpose="suite") as double:
        status_url = f"http://{double.address}:{spec.service.port}/jupyter/{instance_id}/api/status"
        with progress.step(f"Booting {double.name} (id {instance_id}, owner {owner} created late) until {status_url}"):
            waited = wait_for_status(status_url, timeout=SERVER_START_TIMEOUT)
        with reverse_proxy(f"{double.address}:{spec.service.port}", workdir=settings.build_dir / "proxy") as url:
            target = [f"--hosts=docker://{double.name}", f"--visa-image={tag}", "--visa-target=container"]
            _suite(target, ["tests/infra", "tests/boot"], logs, spec, url, pytest_args)
    return TestReport(tag, instance_id, owner, waited)


@dataclass(frozen=True)
class Qcow2:
    path: Path
    build_public_key: Path  # the key the build logged in with, so tests can prove it is gone
    cached: bool


def _tree_digest(root: Path, folders: tuple[str, ...]) -> str:
    parts: list[str | bytes] = []
    for folder in folders:
        for path in sorted((root / folder).rglob("*")):
            if path.is_file():
                parts += [str(path.relative_to(root)), path.read_bytes(), str(path.stat().st_mode & 0o111)]
    return artefact.key_of(*parts)


def _base(spec: ImageSpec, settings: Settings) -> tuple[str, str]:
    """(path or URL, checksum) of the base qcow2: the site's, or one built from the Debian mirror."""
    if settings.base_qcow2:
        if not settings.base_qcow2_checksum:
            raise ConfigError("visa.base_qcow2 is set but visa.base_qcow2_checksum is empty",
                              tip="give its checksum, e.g. sha256:<hex> or file:<URL of SHA256SUMS>")  # fmt: skip
        return settings.base_qcow2, settings.base_qcow2_checksum
    path = base_disk.ensure_base_qcow2(spec.debian, settings.mirror, settings.cache_dir)
    return str(path), "sha256:" + artefact.sidecar(path).read_text().split()[0]


def qcow2_path(spec: ImageSpec, settings: Settings, key: str) -> Path:
    return settings.build_dir / "images" / spec.name / f"{spec.name}-{key}.qcow2"


def build_qcow2(spec: ImageSpec, settings: Settings) -> Qcow2:
    """Build the VISA qcow2 of `spec` with Packer and QEMU; unchanged inputs reuse the verified artefact."""
    check_buildable(spec)
    base_url, base_checksum = _base(spec, settings)
    houses = ensure_wheelhouse(spec, settings.cache_dir)
    build_context = context.prepare(spec, settings.build_dir / "context" / spec.name)
    key = artefact.key_of(base_url if settings.base_qcow2 else "", base_checksum, wheelhouse.cache_key(spec),
                          _tree_digest(build_context, ("provision", "spec")), _tree_digest(REPO, ("packer",)),
                          settings.installer, settings.disk_size, BUILD_USER, repr(VM_SCRIPTS))  # fmt: skip
    final = qcow2_path(spec, settings, key)
    public_key = final.with_name(f"{final.stem}.build-key.pub")
    if artefact.is_intact(final) and public_key.is_file():
        progress.note(f"qcow2 {final.name}: inputs unchanged, checksum verified: nothing to build")
        return Qcow2(final, public_key, cached=True)
    probe_disk = Path(base_url) if Path(base_url).is_file() else None
    accel = host.resolve_accelerator(settings.accelerator, probe_disk=probe_disk, cache_dir=settings.cache_dir)
    _stop_strays()
    work = settings.build_dir / "packer" / f"{spec.name}-{key}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        private_key, public = vm.keypair(work)
        seed_dir = vm.write_seed(build_seed(Login(BUILD_USER, public), name=spec.name), work / "seed")
        settings.log_dir.mkdir(parents=True, exist_ok=True)
        serial_log = settings.log_dir / f"packer-{spec.name}-serial.log"
        packer_log = settings.log_dir / f"packer-{spec.name}.log"
        serial_log.unlink(missing_ok=True)
        with serving(houses, port=settings.wheelhouse_port):
            guest_url = f"http://{HOST_FROM_GUEST}:{settings.wheelhouse_port}/"
            values: dict[str, packer.VarValue] = {
                "image_name": spec.name, "base_image": base_url, "base_image_checksum": base_checksum,
                "accelerator": accel.name, "disk_size": settings.disk_size, "output_directory": str(work / "out"),
                "seed_dir": str(seed_dir), "build_user": BUILD_USER, "ssh_private_key_file": str(private_key),
                "ssh_timeout": f"{5 * accel.slowdown}m", "serial_log": str(serial_log),
                "context_dir": str(build_context), "provision_scripts": list(VM_SCRIPTS),
                "provision_env": render.provision_env(spec, target="vm", wheelhouse_url=guest_url,
                                                      installer=settings.installer),
            }  # fmt: skip
            var_path = work / f"{spec.name}.pkrvars.hcl"
            var_path.write_text(packer.var_file(values))
            produced = _run_packer(
                _templates(work), var_path, accel, packer_log, serial_log, settings.cache_dir / "packer"
            )
        qcow2 = work / "out" / f"{spec.name}.qcow2"
        if str(qcow2) not in produced or not qcow2.is_file():
            raise VisaBuildError(f"Packer finished but produced no qcow2 (artefacts: {produced or 'none'})",
                                 tip=f"see {packer_log} and {serial_log}")  # fmt: skip
        with progress.step(f"Publishing {final.name} (sha256 sidecar, Packer manifest)"):
            final.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(work / "out" / "packer-manifest.json", final.with_name(f"{final.stem}.manifest.json"))
            public_key.write_text(public + "\n")
            artefact.publish(qcow2, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the private key, the seed, a half-written qcow2
        vm.stop_strays()
    return Qcow2(final, public_key, cached=False)


def _stop_strays() -> None:
    strays = vm.stop_strays()
    if strays:
        progress.note(f"stopped {strays} VM(s) left by an interrupted run")


def _templates(work: Path) -> Path:
    """The template folder to run: packer/ itself, or a copy with the plugin block for Packer >= 1.7."""
    version = packer.parse_version(run(["packer", "version"], timeout=60).output)
    if not packer.needs_plugin_block(version):
        return packer.TEMPLATES
    staged = work / "templates"
    staged.mkdir()
    for template in packer.TEMPLATES.glob("*.pkr.hcl"):
        shutil.copyfile(template, staged / template.name)
    shutil.copyfile(packer.PLUGINS_FILE, staged / packer.PLUGINS_FILE.name)
    run(packer.init_argv(staged), timeout=600, on_line=progress.line, tip="packer init needs the plugin registry")
    return staged


def _run_packer(
    templates: Path, var_path: Path, accel: vm.Accel, packer_log: Path, serial_log: Path, cache: Path
) -> list[str]:
    """Run packer build with its steps shown as they come; returns the files of its artefacts."""
    started = time.monotonic()
    log = packer.BuildLog()
    handler = log.handler(
        on_step=lambda text: progress.note(f"[{time.monotonic() - started:6.0f}s] {text}"),
        on_message=progress.line,
    )
    with progress.step(f"Building the qcow2 with Packer (QEMU {accel.name}; logs under {packer_log.parent})"):
        result = run(packer.build_argv(templates, var_path), timeout=2400 * accel.slowdown + 1200,
                     env={"PACKER_LOG": "1", "PACKER_LOG_PATH": str(packer_log), "CHECKPOINT_DISABLE": "1",
                          "PACKER_CACHE_DIR": str(cache)},
                     on_line=handler, check=False)  # fmt: skip
        if result.returncode != 0:
            shown = "\n".join(f"    {error}" for error in log.errors[-6:])
            raise VisaBuildError(
                f"packer build failed (exit code {result.returncode}):\n{shown}",
                tip=f"the VM was stopped; see {serial_log} (console) and {packer_log} (Packer)",
            )
    return log.files


TEST_USER = "visa-test"


def _suite(target_args: list[str], suites: list[str], logs: Path, spec: ImageSpec, url: str, extra: list[str]) -> None:
    argv = [sys.executable, "-m", "pytest", *(str(REPO / suite) for suite in suites), *target_args,
            f"--jupyter-url={url}", f"--image-spec={spec.directory}", f"--visa-log-dir={logs}", *extra]  # fmt: skip
    with progress.step(f"Running the infra suite ({', '.join(suites)})"):
        result = run(argv, timeout=3600 * 3, cwd=str(REPO), on_line=progress.passthrough, check=False)
        if result.returncode != 0:
            raise ImageTestError(
                f"the infra suite failed (pytest exit code {result.returncode})",
                tip=f"logs of the failed target are kept under {logs}; rerun one test with --pytest-args='-k name'",
            )


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
        shown = run(guest.ssh_argv("systemctl show -p UnitFileState -p ActiveState visa-jupyter.service"),
                    timeout=60, check=False)  # fmt: skip
        state = dict(line.strip().split("=", 1) for line in shown.lines if "=" in line)
        if shown.returncode == 0 and (state.get("UnitFileState") != "enabled" or state.get("ActiveState") == "failed"):
            raise ImageTestError(
                f"visa-jupyter.service will not serve {status_url}: {state}",
                tip="the image's service is not enabled or failed for good; see the kept serial log",
            )
    raise ImageTestError(f"{status_url} did not answer 200 within {timeout:.0f} s",
                         tip="see the kept serial console log and journalctl -u visa-jupyter")  # fmt: skip


def test_qcow2(spec: ImageSpec, settings: Settings, *, qcow2: Path | None, pytest_args: list[str]) -> TestReport:
    """Boot the qcow2 through an overlay with VISA metadata (owner created late), then run tests/infra and
    tests/vm over ssh. The VM is always stopped; its serial log is kept when something failed."""
    if qcow2 is None:
        built = build_qcow2(spec, settings)
        qcow2, build_key = built.path, built.build_public_key
    else:
        if not qcow2.is_file():
            raise ConfigError(f"--qcow2 {qcow2} does not exist", tip="give the path build-qcow2 printed")
        build_key = qcow2.with_name(f"{qcow2.stem}.build-key.pub")
    accel = host.resolve_accelerator(settings.accelerator, probe_disk=qcow2, cache_dir=settings.cache_dir)
    _stop_strays()
    instance_id, owner = random_instance_id(), "visauser"
    logs, work_root = settings.log_dir, settings.build_dir / "vm"
    work_root.mkdir(parents=True, exist_ok=True)
    keys = Path(tempfile.mkdtemp(prefix="keys-", dir=work_root))
    try:
        private_key, public = vm.keypair(keys)
        login = Login(TEST_USER, public)
        seed = nocloud_seed(visa_meta(instance_id, owner), create_user=owner, login=login)
        boot = vm.booted_vm(qcow2, seed, (login, private_key), accel=accel, name=f"test-{spec.name}",
                            work_root=work_root, log_dir=logs, guest_http_port=spec.service.port)  # fmt: skip
        with boot as guest:
            started = time.monotonic()
            with progress.step(f"Booting {qcow2.name} (QEMU {accel.name}) until ssh answers"):
                to_ssh = vm.wait_for_ssh(guest, timeout=300 * accel.slowdown)
            status_url = f"http://127.0.0.1:{guest.http_port}/jupyter/{instance_id}/api/status"
            with progress.step(f"Waiting for /jupyter/{instance_id}/api/status (owner {owner} created late)"):
                _wait_for_server(guest, status_url, timeout=SERVER_START_TIMEOUT * accel.slowdown)
            to_status = time.monotonic() - started
            ssh_config = guest.ssh_config(keys / "ssh_config")
            target = [f"--hosts=ssh://{TEST_USER}@127.0.0.1:{guest.ssh_port}", f"--ssh-config={ssh_config}",
                      f"--ssh-identity-file={private_key}", "--sudo", "--visa-target=vm",
                      f"--build-public-key={build_key}", f"--qcow2={qcow2}",
                      f"--boot-timeout={300 * accel.slowdown}"]  # fmt: skip
            with reverse_proxy(f"127.0.0.1:{guest.http_port}", workdir=settings.build_dir / "proxy") as url:
                _suite(target, ["tests/infra", "tests/vm"], logs, spec, url, pytest_args)
    finally:
        shutil.rmtree(keys, ignore_errors=True)
    return TestReport(qcow2.name, instance_id, owner, to_status, to_ssh)
