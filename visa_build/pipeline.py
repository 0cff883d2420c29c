"""The jobs users run: build the container double, test it; composed from the modules beside this one."""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import artefact, base, base_disk, context, host, packer, progress, render, stages, timings, vm, wheelhouse
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
    if settings.installer == "pip-index":
        raise ConfigError("the pip-index installer is for qcow2 builds; the container double installs from the "
                          "wheelhouse", tip="use --installer uv (or pip) for the container")  # fmt: skip
    base_image = settings.base_image or base.ensure_base_image(spec.debian, settings.mirror, settings.cache_dir)
    houses = ensure_wheelhouse(spec, settings.cache_dir)
    build_context = context.prepare(spec, settings.build_dir / "context" / spec.name)
    tag = container_tag(spec)
    with (
        serving(houses, port=settings.wheelhouse_port) as url,
        progress.step(f"Building container image {tag}"),
    ):
        env = render.provision_env(spec, target="container", wheelhouse_url=url, installer=settings.installer,
                                   wheel_bytecode=wheelhouse.carries_bytecode(spec))  # fmt: skip
        build_image(build_context, tag, {"BASE_IMAGE": base_image, **env},
                    log_path=settings.log_dir / f"docker-build-{spec.name}.log")  # fmt: skip
    return tag


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
            suite = _suite(target, ["tests/infra", "tests/boot"], logs, spec, url, pytest_args)
    return TestReport(tag, instance_id, owner, waited, suite)


@dataclass(frozen=True)
class Qcow2:
    path: Path
    build_public_key: Path  # the key the build logged in with, so tests can prove it is gone
    cached: bool
    stage_seconds: dict[str, float] = field(default_factory=dict)  # Packer time of each stage built now


def _base(spec: ImageSpec, settings: Settings) -> tuple[str, str]:
    """(path or URL, checksum) of the base qcow2: the site's, or one built from the Debian mirror."""
    if settings.base_qcow2:
        if not settings.base_qcow2_checksum:
            raise ConfigError("visa.base_qcow2 is set but visa.base_qcow2_checksum is empty",
                              tip="give its checksum, e.g. sha256:<hex> or file:<URL of SHA256SUMS>")  # fmt: skip
        return settings.base_qcow2, settings.base_qcow2_checksum
    path = base_disk.ensure_base_qcow2(spec.debian, settings.mirror, settings.cache_dir)
    return str(path), _checksum(path)


def _checksum(path: Path) -> str:
    return "sha256:" + artefact.sidecar(path).read_text().split()[0]


def qcow2_path(spec: ImageSpec, settings: Settings, key: str) -> Path:
    return settings.build_dir / "images" / spec.name / f"{spec.name}-{key}.qcow2"


def stage_path(settings: Settings, stage: stages.Stage, key: str) -> Path:
    """Where an intermediate stage's qcow2 is cached (the last stage's is the published image). Its key holds
    every input, not the spec's name: specs with the same JupyterLab (images/ci and images/visa-jupyter)
    share the entry."""
    return settings.cache_dir / "stages" / f"{stage.name}-{key}.qcow2"


def qcow2_context(spec: ImageSpec, settings: Settings) -> Path:
    """The build context the qcow2's stages upload (with the index's CA bundle for pip-index)."""
    return context.prepare(spec, settings.build_dir / "context" / spec.name, index_ca_bundle=settings.index_ca_bundle)


def stage_keys(spec: ImageSpec, settings: Settings, build_context: Path, base: tuple[str, str]) -> list[str]:
    """Key of each stage's qcow2, in order. The first stage depends on the base image, the build settings,
    the templates and the JupyterLab lock; each later one on the previous key and its own inputs."""
    base_url, base_checksum = base
    common = (base_url if settings.base_qcow2 else "", base_checksum, stages.tree_digest(REPO, ("packer",)),
              settings.installer, settings.index_url if settings.installer == "pip-index" else "",
              settings.disk_size, BUILD_USER, wheelhouse.UV_VERSION)  # fmt: skip
    env = _vm_env(spec, settings, wheelhouse_url="")
    lab = stages.JUPYTERLAB.key(
        build_context, *common, spec.python, spec.jupyterlab.lock.read_text(), env["VISA_WHEEL_BYTECODE"]
    )
    image = stages.IMAGE.key(build_context, lab, spec.data_analysis.lock.read_text(), repr(sorted(env.items())))
    return [lab, image]


def _vm_env(spec: ImageSpec, settings: Settings, *, wheelhouse_url: str) -> dict[str, str]:
    from_wheelhouse = settings.installer != "pip-index"
    return render.provision_env(spec, target="vm", wheelhouse_url=wheelhouse_url, installer=settings.installer,
                                wheel_bytecode=from_wheelhouse and wheelhouse.carries_bytecode(spec),
                                index_url=settings.index_url, index_ca=bool(settings.index_ca_bundle))  # fmt: skip


def build_qcow2(spec: ImageSpec, settings: Settings) -> Qcow2:
    """Build the VISA qcow2 of `spec` with Packer and QEMU, stage by stage; a stage whose inputs did not
    change is taken from its verified cache entry."""
    check_buildable(spec)
    if settings.index_ca_bundle and settings.installer != "pip-index":
        raise ConfigError("visa.index_ca_bundle is set but the installer is not pip-index",
                          tip="set INVOKE_VISA_INSTALLER=pip-index, or leave visa.index_ca_bundle empty")  # fmt: skip
    base = _base(spec, settings)
    houses = None if settings.installer == "pip-index" else ensure_wheelhouse(spec, settings.cache_dir)
    build_context = qcow2_context(spec, settings)
    keys = stage_keys(spec, settings, build_context, base)
    final = qcow2_path(spec, settings, keys[-1])
    public_key = final.with_name(f"{final.stem}.build-key.pub")
    if artefact.is_intact(final) and public_key.is_file():
        progress.note(f"qcow2 {final.name}: inputs unchanged, checksum verified: nothing to build")
        return Qcow2(final, public_key, cached=True)
    probe_disk = Path(base[0]) if Path(base[0]).is_file() else None
    accel = host.resolve_accelerator(settings.accelerator, probe_disk=probe_disk, cache_dir=settings.cache_dir)
    _stop_strays()
    with serving(houses, port=settings.wheelhouse_port) if houses else contextlib.nullcontext():
        env = _vm_env(
            spec, settings, wheelhouse_url=f"http://{HOST_FROM_GUEST}:{settings.wheelhouse_port}/" if houses else ""
        )
        source, seconds = base, {}
        for number, (stage, key) in enumerate(zip(stages.STAGES, keys, strict=True), start=1):
            last = stage is stages.STAGES[-1]
            output = final if last else stage_path(settings, stage, key)
            title = f"stage {number}/{len(keys)} {stage.name} of {spec.name}"
            if not last and artefact.is_intact(output):
                progress.note(f"{title}: {output.name} inputs unchanged, checksum verified: reused")
            else:
                progress.note(f"{title}: building {output.name} from {Path(source[0]).name}")
                timing_key = f"{spec.name}/{stage.name}/{accel.name}"
                expected = timings.previous(settings.cache_dir, timing_key)
                started = time.monotonic()
                _build_stage(spec, settings, stage, source, output, build_context, env, accel, compress=last,
                             title=title, expected=expected)  # fmt: skip
                seconds[stage.name] = time.monotonic() - started
                timings.record(settings.cache_dir, timing_key, seconds[stage.name])
            source = (str(output), _checksum(output))
    return Qcow2(final, public_key, cached=False, stage_seconds=seconds)


def _build_stage(
    spec: ImageSpec, settings: Settings, stage: stages.Stage, source: tuple[str, str], output: Path,
    build_context: Path, env: dict[str, str], accel: vm.Accel, *, compress: bool, title: str, expected: float | None,
) -> None:  # fmt: skip
    """One Packer build: boot `source`, run the stage's scripts and cleanup, seal, publish `output`."""
    name = f"{spec.name}-{stage.name}"
    work = settings.build_dir / "packer" / output.stem
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        private_key, public = vm.keypair(work)
        seed_dir = vm.write_seed(build_seed(Login(BUILD_USER, public), name=name), work / "seed")
        settings.log_dir.mkdir(parents=True, exist_ok=True)
        serial_log = settings.log_dir / f"packer-{name}-serial.log"
        packer_log = settings.log_dir / f"packer-{name}.log"
        serial_log.unlink(missing_ok=True)
        values: dict[str, packer.VarValue] = {
            "image_name": name, "base_image": source[0], "base_image_checksum": source[1],
            "accelerator": accel.name, "disk_size": settings.disk_size, "output_directory": str(work / "out"),
            "seed_dir": str(seed_dir), "build_user": BUILD_USER, "ssh_private_key_file": str(private_key),
            "ssh_timeout": f"{5 * accel.slowdown}m", "serial_log": str(serial_log), "compress": compress,
            "context_dir": str(build_context), "provision_scripts": [*stage.scripts, stages.CLEANUP],
            "provision_env": env,
        }  # fmt: skip
        var_path = work / f"{name}.pkrvars.hcl"
        var_path.write_text(packer.var_file(values))
        produced = _run_packer(_templates(work), var_path, accel, packer_log, serial_log, settings.cache_dir / "packer",
                               title=title, expected=expected)  # fmt: skip
        qcow2 = work / "out" / f"{name}.qcow2"
        if str(qcow2) not in produced or not qcow2.is_file():
            raise VisaBuildError(f"Packer finished but produced no qcow2 (artefacts: {produced or 'none'})",
                                 tip=f"see {packer_log} and {serial_log}")  # fmt: skip
        with progress.step(f"Publishing {output.name} (sha256 sidecar, Packer manifest)"):
            output.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(work / "out" / "packer-manifest.json", output.with_name(f"{output.stem}.manifest.json"))
            output.with_name(f"{output.stem}.build-key.pub").write_text(public + "\n")
            artefact.publish(qcow2, output)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the private key, the seed, a half-written qcow2
        vm.stop_strays()


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
    templates: Path, var_path: Path, accel: vm.Accel, packer_log: Path, serial_log: Path, cache: Path, *,
    title: str, expected: float | None,
) -> list[str]:  # fmt: skip
    """Run packer build with its steps shown as they come, each with the time elapsed (and the previous build's
    duration when known); returns the files of its artefacts."""
    started = time.monotonic()
    log = packer.BuildLog()
    handler = log.handler(
        on_step=lambda text: progress.note(f"{timings.eta(time.monotonic() - started, expected)} {text}"),
        on_message=lambda text: progress.line(f"{timings.eta(time.monotonic() - started, expected)} {text}"),
    )
    previously = f", about {expected:.0f} s last time" if expected is not None else ""
    with progress.step(f"Building {title} with Packer (QEMU {accel.name}{previously}; logs under {packer_log.parent})"):
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


def _suite(
    target_args: list[str], suites: list[str], logs: Path, spec: ImageSpec, url: str, extra: list[str]
) -> SuiteRun:
    argv = [sys.executable, "-m", "pytest", *(str(REPO / suite) for suite in suites), *target_args,
            f"--jupyter-url={url}", f"--image-spec={spec.directory}", f"--visa-log-dir={logs}", *extra]  # fmt: skip
    started = time.monotonic()
    with progress.step(f"Running the infra suite ({', '.join(suites)})"):
        result = run(argv, timeout=3600 * 3, cwd=str(REPO), on_line=progress.passthrough, check=False)
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


@dataclass(frozen=True)
class Instance:
    guest: vm.BootedVM
    accel: vm.Accel
    instance_id: str
    owner: str
    status_url: str
    seconds_to_ssh: float
    seconds_to_status: float
    keys: Path  # the test user's private key and ssh config live here (removed afterwards)


@contextlib.contextmanager
def booted_instance(spec: ImageSpec, settings: Settings, qcow2: Path) -> Iterator[Instance]:
    """Boot `qcow2` through an overlay as VISA does (metadata id and owner, the owner created late) with a
    visa-test ssh user, and wait until ssh answers and the server answers at /jupyter/<id>/api/status."""
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
            yield Instance(guest, accel, instance_id, owner, status_url, to_ssh, time.monotonic() - started, keys)
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
        build_key = qcow2.with_name(f"{qcow2.stem}.build-key.pub")
    with booted_instance(spec, settings, qcow2) as instance, vm.ssh_control_dir() as control:
        guest = instance.guest
        ssh_config = guest.ssh_config(instance.keys / "ssh_config", control)
        target = [f"--hosts=ssh://{TEST_USER}@127.0.0.1:{guest.ssh_port}", f"--ssh-config={ssh_config}",
                  f"--ssh-identity-file={guest.private_key}", "--sudo", "--visa-target=vm",
                  f"--build-public-key={build_key}", f"--qcow2={qcow2}",
                  f"--boot-timeout={300 * instance.accel.slowdown}"]  # fmt: skip
        with reverse_proxy(f"127.0.0.1:{guest.http_port}", workdir=settings.build_dir / "proxy") as url:
            suite = _suite(target, ["tests/infra", "tests/vm"], settings.log_dir, spec, url, pytest_args)
    return TestReport(qcow2.name, instance.instance_id, instance.owner, instance.seconds_to_status, suite,
                      instance.seconds_to_ssh)  # fmt: skip
