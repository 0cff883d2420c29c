"""build_qcow2: the VISA qcow2 of an image spec, keyed by every input so unchanged work is never redone.

Filled natively (visa.fill = native, the default): the Docker image of the container double's provisioning is
copied onto a bootable disk on the host, then Packer boots it once to apply the VM's difference, clean up,
seal and compress. In the guest (visa.fill = guest): Packer stages install from a base qcow2 under QEMU."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import (
    accelerator,
    artefact,
    base_qcow2,
    build_context,
    disk,
    fill,
    image_inputs,
    leftovers,
    packer_build,
    progress,
    render,
    runs,
    stages,
    timings,
    wheelhouse,
)
from .base_docker import base_tag
from .double_build import build_container
from .errors import ConfigError
from .image_spec import ImageSpec, require_buildable
from .packer_build import BUILD_USER, PackerJob, build_key_file
from .process import Runner, run
from .settings import Settings
from .wheelhouse import ensure_wheelhouse
from .wheelhouse_server import serving

REPO = build_context.REPO
#: The guest reaches the host's 127.0.0.1 at this address under QEMU's user networking.
HOST_FROM_GUEST = "10.0.2.2"
#: What the one boot of a natively filled disk runs: the VM's difference, then image cleanup (99-seal.sh is
#: Packer's shutdown command).
SEAL_SCRIPTS = ("50-target.sh", stages.CLEANUP)


@dataclass(frozen=True)
class Qcow2:
    path: Path
    build_public_key: Path  # the key the build logged in with, so tests can prove it is gone
    cached: bool
    step_seconds: dict[str, float] = field(default_factory=dict)  # time of each step run now (docker, fill, ...)


def qcow2_path(spec: ImageSpec, settings: Settings, key: str) -> Path:
    return settings.build_dir / "images" / spec.name / f"{spec.name}-{key}.qcow2"


def double_image_file(qcow2: Path) -> Path:
    """Beside a natively filled qcow2: the id of the container double built from the same filesystem image."""
    return qcow2.with_name(f"{qcow2.stem}.double")


def qcow2_context(spec: ImageSpec, settings: Settings) -> Path:
    """The build context the qcow2's Packer builds upload (with the index's CA bundle for pip-index)."""
    return build_context.prepare(
        spec, settings.build_dir / "context" / spec.name, index_ca_bundle=settings.index_ca_bundle
    )


def _vm_env(spec: ImageSpec, settings: Settings, *, wheelhouse_url: str, state: str) -> dict[str, str]:
    from_wheelhouse = settings.installer != "pip-index"
    return render.provision_env(
        spec,
        target="vm",
        wheelhouse_url=wheelhouse_url,
        installer=settings.installer,
        wheel_bytecode=from_wheelhouse and wheelhouse.carries_bytecode(spec),
        index_url=settings.index_url,
        index_ca=bool(settings.index_ca_bundle),
        debian_state=state,
    )


def require_standalone(path: Path, *, runner: Runner = run) -> None:
    """Refuse a file that is not a qcow2 holding the whole image: an overlay (a backing file) or another format."""
    info = json.loads(runner(["qemu-img", "info", "--output=json", str(path)], timeout=60).output)
    if info.get("format") != "qcow2":
        raise ConfigError(f"{path} is a {info.get('format')} image, not a qcow2", tip="give the qcow2 build-qcow2 made")
    if info.get("backing-filename"):
        raise ConfigError(
            f"{path} is an overlay on {info['backing-filename']}, not a whole image: what is tested must be what "
            "VISA boots",
            tip=f"flatten it first: qemu-img convert -O qcow2 {path} <new file>",
        )


def _cached(final: Path) -> Qcow2 | None:
    """The published qcow2 at `final` when it and the key it was built with are there and verified."""
    if not (artefact.is_intact(final) and build_key_file(final).is_file()):
        return None
    progress.note(f"qcow2 {final.name}: inputs unchanged, checksum verified: nothing to build")
    return Qcow2(final, build_key_file(final), cached=True)


def _checksum(path: Path) -> str:
    return "sha256:" + artefact.sidecar(path).read_text().split()[0]


def build_qcow2(spec: ImageSpec, settings: Settings, *, state: str | None = None) -> Qcow2:
    """Build the VISA qcow2 of `spec` (natively filled, or provisioned in the guest, as visa.fill says), with
    Debian's updates of archive `state` (read from the mirrors when not given)."""
    require_buildable(spec)
    if settings.index_ca_bundle and settings.installer != "pip-index":
        raise ConfigError(
            "visa.index_ca_bundle is set but the installer is not pip-index",
            tip="set INVOKE_VISA_INSTALLER=pip-index, or leave visa.index_ca_bundle empty",
        )
    context_dir = qcow2_context(spec, settings)
    state = state if state is not None else image_inputs.archive_key(spec, settings)
    if settings.fill == "native":
        return _build_native(spec, settings, context_dir, state)
    return _build_in_guest(spec, settings, context_dir, state)


def expected_path(spec: ImageSpec, settings: Settings, state: str) -> Path:
    """Where build_qcow2 puts the qcow2 of `spec` for Debian archive `state` (nothing is built, but an in-guest
    build's base qcow2 is made when missing: its checksum is part of the key)."""
    context_dir = qcow2_context(spec, settings)
    if settings.fill == "native":
        return qcow2_path(spec, settings, native_key(spec, settings, context_dir, state))
    return qcow2_path(spec, settings, stage_keys(spec, settings, context_dir, _base_qcow2(spec, settings), state)[-1])


def native_key(spec: ImageSpec, settings: Settings, context_dir: Path, state: str) -> str:
    """Key of a natively filled qcow2: the Docker base, the locks, the build context (provision/, spec/, docker/),
    the Debian archive's `state`, the templates and every build setting; Docker's layer cache decides which
    layers rebuild."""
    double_env = render.provision_env(
        spec,
        target="container",
        wheelhouse_url="",
        installer=settings.installer,
        wheel_bytecode=wheelhouse.carries_bytecode(spec),
        debian_state=state,
    )
    base = settings.base_image or base_tag(image_inputs.sources(spec, settings))
    return artefact.key_of(
        "native",
        base,
        settings.disk_size,
        settings.compression,
        spec.python,
        spec.jupyterlab.lock.read_text(),
        spec.data_analysis.lock.read_text(),
        stages.tree_digest(context_dir, ("provision", "spec", "docker")),
        stages.tree_digest(REPO, ("packer",)),
        repr(sorted(double_env.items())),
        repr(sorted(_vm_env(spec, settings, wheelhouse_url="", state=state).items())),
        BUILD_USER,
        wheelhouse.UV_VERSION,
        repr(SEAL_SCRIPTS),
        repr(fill.copy_argv(Path("a"), Path("b"))),
        *disk.layout_inputs(),
    )


def _build_native(spec: ImageSpec, settings: Settings, context_dir: Path, state: str) -> Qcow2:
    final = qcow2_path(spec, settings, native_key(spec, settings, context_dir, state))
    if cached := _cached(final):
        return cached
    seconds: dict[str, float] = {}
    started = time.monotonic()
    images = build_container(spec, settings, state=state, context_dir=context_dir)
    seconds["docker"] = time.monotonic() - started
    started = time.monotonic()
    layers = fill.layer_dirs(images.filesystem_id)
    filled = fill.ensure_filled_qcow2(
        spec.name, images.filesystem_id, layers, settings.cache_dir, size=settings.disk_size
    )
    seconds["fill"] = time.monotonic() - started
    accel = accelerator.resolve_accelerator(settings.accelerator, probe_disk=filled, cache_dir=settings.cache_dir)
    leftovers.reap(settings.build_dir)
    job = PackerJob(
        name=f"{spec.name}-image",
        source=(str(filled), _checksum(filled)),
        output=final,
        scripts=SEAL_SCRIPTS,
        context_dir=context_dir,
        env=_vm_env(spec, settings, wheelhouse_url="", state=state),
        compression=settings.compression,
        title=f"the sealing boot of {spec.name} (VM difference, cleanup, seal)",
    )
    seconds["seal"] = _packer(job, accel, settings, timing_key=f"{spec.name}/seal/{accel.name}")
    double_image_file(final).write_text(images.double_id + "\n")
    return Qcow2(final, build_key_file(final), cached=False, step_seconds=seconds)


def _packer(job: PackerJob, accel: accelerator.Accel, settings: Settings, *, timing_key: str) -> float:
    """Run `job` with the last duration of `timing_key` as its ETA; record and return how long it took."""
    started = time.monotonic()
    packer_build.build(
        replace(job, expected=timings.previous(settings.cache_dir, timing_key)),
        accel=accel,
        disk_size=settings.disk_size,
        build_dir=settings.build_dir,
        log_dir=settings.log_dir,
        cache_dir=settings.cache_dir,
    )
    seconds = time.monotonic() - started
    timings.record(settings.cache_dir, timing_key, seconds)
    return seconds


def _base_qcow2(spec: ImageSpec, settings: Settings) -> tuple[str, str]:
    """(path or URL, checksum) of the base qcow2: the site's, or one built from the Debian mirror."""
    if settings.base_qcow2:
        if not settings.base_qcow2_checksum:
            raise ConfigError(
                "visa.base_qcow2 is set but visa.base_qcow2_checksum is empty",
                tip="give its checksum, e.g. sha256:<hex> or file:<URL of SHA256SUMS>",
            )
        return settings.base_qcow2, settings.base_qcow2_checksum
    path = base_qcow2.ensure_base_qcow2(image_inputs.sources(spec, settings), settings.cache_dir)
    return str(path), _checksum(path)


def stage_path(settings: Settings, stage: stages.Stage, key: str) -> Path:
    """Where an intermediate stage's qcow2 is cached (the last stage's is the published image). Its key holds
    every input, not the spec's name: specs with the same JupyterLab (images/ci and images/visa-jupyter)
    share the entry."""
    return settings.cache_dir / "stages" / f"{stage.name}-{key}.qcow2"


def stage_keys(spec: ImageSpec, settings: Settings, context_dir: Path, base: tuple[str, str], state: str) -> list[str]:
    """Key of each in-guest stage's qcow2, in order. The first stage depends on the base image, the build
    settings, the templates and the JupyterLab lock; each later one on the previous key and its own inputs."""
    base_url, base_checksum = base
    common = (
        base_url if settings.base_qcow2 else "",
        base_checksum,
        stages.tree_digest(REPO, ("packer",)),
        settings.installer,
        settings.index_url if settings.installer == "pip-index" else "",
        settings.disk_size,
        BUILD_USER,
        wheelhouse.UV_VERSION,
    )
    env = _vm_env(spec, settings, wheelhouse_url="", state=state)
    lab = stages.JUPYTERLAB.key(
        context_dir, *common, spec.python, spec.jupyterlab.lock.read_text(), env["VISA_WHEEL_BYTECODE"]
    )
    image = stages.IMAGE.key(
        context_dir, lab, spec.data_analysis.lock.read_text(), repr(sorted(env.items())), settings.compression
    )
    return [lab, image]


def _build_in_guest(spec: ImageSpec, settings: Settings, context_dir: Path, state: str) -> Qcow2:
    """Packer stage by stage from the base qcow2; a stage whose inputs did not change is taken from its
    verified cache entry."""
    base = _base_qcow2(spec, settings)
    from_wheelhouse = settings.installer != "pip-index"
    wheelhouses = (
        ensure_wheelhouse(spec, settings.cache_dir, source_image=lambda: image_inputs.base_image(spec, settings))
        if from_wheelhouse
        else None
    )
    keys = stage_keys(spec, settings, context_dir, base, state)
    final = qcow2_path(spec, settings, keys[-1])
    if cached := _cached(final):
        return cached
    probe_disk = Path(base[0]) if Path(base[0]).is_file() else None
    accel = accelerator.resolve_accelerator(settings.accelerator, probe_disk=probe_disk, cache_dir=settings.cache_dir)
    leftovers.reap(settings.build_dir)
    url = f"http://{HOST_FROM_GUEST}:{settings.wheelhouse_port}/" if wheelhouses else ""
    env = _vm_env(spec, settings, wheelhouse_url=url, state=state)
    source, seconds = base, {}
    port_lock = settings.build_dir / "locks" / f"wheelhouse-port-{settings.wheelhouse_port}.lock"
    with (
        runs.exclusive(port_lock, f"the wheelhouse port {settings.wheelhouse_port} (in-guest builds share it)"),
        serving(wheelhouses, port=settings.wheelhouse_port) if wheelhouses else contextlib.nullcontext(),
    ):
        for number, (stage, key) in enumerate(zip(stages.STAGES, keys, strict=True), start=1):
            last = stage is stages.STAGES[-1]
            output = final if last else stage_path(settings, stage, key)
            title = f"stage {number}/{len(keys)} {stage.name} of {spec.name}"
            if not last and artefact.is_intact(output):
                progress.note(f"{title}: {output.name} inputs unchanged, checksum verified: reused")
            else:
                progress.note(f"{title}: building {output.name} from {Path(source[0]).name}")
                job = PackerJob(
                    name=f"{spec.name}-{stage.name}",
                    source=source,
                    output=output,
                    scripts=(*stage.scripts, stages.CLEANUP),
                    context_dir=context_dir,
                    env=env,
                    compression=settings.compression if last else "",
                    title=title,
                )
                seconds[stage.name] = _packer(job, accel, settings, timing_key=f"{spec.name}/{stage.name}/{accel.name}")
            source = (str(output), _checksum(output))
    return Qcow2(final, build_key_file(final), cached=False, step_seconds=seconds)
