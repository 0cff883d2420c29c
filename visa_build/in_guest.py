"""The in-guest build (visa.fill = guest): Packer boots the base qcow2 and provisions it stage by stage, each
stage's qcow2 cached by its own inputs (see stages.py). Also the VM's provisioning variables and the timed
Packer run that the natively filled build's sealing boot shares."""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from pathlib import Path

from . import (
    accelerator,
    artefact,
    base_qcow2,
    build_proxy,
    image_inputs,
    leftovers,
    packer_build,
    progress,
    render,
    runs,
    stages,
    timings,
    vm,
    wheelhouse,
)
from .errors import ConfigError
from .image_spec import ImageSpec
from .packer_build import BUILD_USER, PackerJob
from .resources import project_files
from .settings import Settings
from .wheelhouse import ensure_wheelhouse
from .wheelhouse_server import serving

#: The guest reaches the host's 127.0.0.1 at this address under QEMU's user networking.
HOST_FROM_GUEST = "10.0.2.2"


def vm_env(spec: ImageSpec, settings: Settings, *, wheelhouse_url: str, state: str) -> dict[str, str]:
    """The provisioning variables of a Packer build of `spec` (installs from `wheelhouse_url` unless pip-index)."""
    from_wheelhouse = settings.installer != "pip-index"
    provision = render.provision_env(
        spec,
        target="vm",
        wheelhouse_url=wheelhouse_url,
        installer=settings.installer,
        wheel_bytecode=from_wheelhouse and wheelhouse.carries_bytecode(spec),
        index_url=settings.index_url,
        index_ca=bool(settings.index_ca_bundle),
        debian_state=state,
    )
    return {**provision, **build_proxy.environment(settings.proxy, settings.no_proxy)}  # the proxy: a secret


def timed_packer(job: PackerJob, accel: accelerator.Accel, settings: Settings, *, timing_key: str) -> float:
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


def base_source(spec: ImageSpec, settings: Settings) -> tuple[str, str]:
    """(path or URL, checksum) of the base qcow2: the site's, or one built from the Debian mirror."""
    if settings.base_qcow2:
        if not settings.base_qcow2_checksum:
            raise ConfigError(
                "visa.base_qcow2 is set but visa.base_qcow2_checksum is empty",
                tip="give its checksum, e.g. sha256:<hex> or file:<URL of SHA256SUMS>",
            )
        if Path(settings.base_qcow2).is_file():
            vm.require_standalone(Path(settings.base_qcow2), "visa.base_qcow2")
        return settings.base_qcow2, settings.base_qcow2_checksum
    path = base_qcow2.ensure_base_qcow2(image_inputs.sources(spec, settings), settings.cache_dir)
    return str(path), artefact.checksum(path)


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
        stages.tree_digest(project_files(), ("packer",)),
        settings.installer,
        settings.index_url if settings.installer == "pip-index" else "",
        settings.disk_size,
        BUILD_USER,
        wheelhouse.UV_VERSION,
    )
    env = vm_env(spec, settings, wheelhouse_url="", state=state)
    lab = stages.JUPYTERLAB.key(
        context_dir, *common, spec.python, spec.jupyterlab.lock.read_text(), env["VISA_WHEEL_BYTECODE"]
    )
    image = stages.IMAGE.key(
        context_dir, lab, spec.data_analysis.lock.read_text(), repr(sorted(env.items())), settings.compression
    )
    return [lab, image]


def build_stages(
    spec: ImageSpec,
    settings: Settings,
    context_dir: Path,
    state: str,
    *,
    base: tuple[str, str],
    keys: list[str],
    final: Path,
) -> dict[str, float]:
    """Packer stage by stage from the `base` qcow2 into `final`; a stage whose inputs did not change is taken
    from its verified cache entry. Returns the seconds of each stage built now."""
    wheelhouses = (
        ensure_wheelhouse(spec, settings.cache_dir, source_image=lambda: image_inputs.base_image(spec, settings))
        if settings.installer != "pip-index"
        else None
    )
    probe_disk = Path(base[0]) if Path(base[0]).is_file() else None
    accel = accelerator.resolve_accelerator(settings.accelerator, probe_disk=probe_disk, cache_dir=settings.cache_dir)
    leftovers.reap(settings.build_dir)
    url = f"http://{HOST_FROM_GUEST}:{settings.wheelhouse_port}/" if wheelhouses else ""
    env = vm_env(spec, settings, wheelhouse_url=url, state=state)
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
                seconds[stage.name] = timed_packer(
                    job, accel, settings, timing_key=f"{spec.name}/{stage.name}/{accel.name}"
                )
            source = (str(output), artefact.checksum(output))
    return seconds
