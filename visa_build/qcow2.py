"""build_qcow2: the VISA qcow2 of an image spec, keyed by every input so unchanged work is never redone.

Filled natively (visa.fill = native, the default): the Docker image of the container double's provisioning is
copied onto a bootable disk on the host, then Packer boots it once to apply the VM's difference, clean up,
seal and compress. In the guest (visa.fill = guest): Packer stages install from a base qcow2 under QEMU."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from . import (
    accelerator,
    archive_state,
    artefact,
    build_context,
    disk,
    fill,
    image_inputs,
    in_guest,
    kept_images,
    leftovers,
    progress,
    render,
    stages,
    wheelhouse,
)
from .base_docker import base_tag
from .double_build import DOUBLE_RECORD_SUFFIX, build_container
from .errors import ConfigError
from .image_spec import ImageSpec, require_buildable
from .in_guest import timed_packer, vm_env
from .packer_build import BUILD_USER, PackerJob, build_key_file
from .resources import project_files
from .settings import Settings

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
    return qcow2.with_name(f"{qcow2.stem}{DOUBLE_RECORD_SUFFIX}")


def qcow2_context(spec: ImageSpec, settings: Settings) -> Path:
    """The build context the qcow2's Packer builds upload (with the index's CA bundle for pip-index)."""
    return build_context.prepare(
        spec, settings.build_dir / "context" / spec.name, index_ca_bundle=settings.index_ca_bundle
    )


def _cached(final: Path) -> Qcow2 | None:
    """The published qcow2 at `final` when it and the key it was built with are there and verified."""
    if not (artefact.is_intact(final) and build_key_file(final).is_file()):
        return None
    progress.note(f"qcow2 {final.name}: inputs unchanged, checksum verified: nothing to build")
    return Qcow2(final, build_key_file(final), cached=True)


def build_qcow2(spec: ImageSpec, settings: Settings, *, state: str | None = None) -> Qcow2:
    """Build the VISA qcow2 of `spec` (natively filled, or provisioned in the guest, as visa.fill says), with
    Debian's updates of archive `state` (read from the mirrors when not given, and read again once when the build
    fails after a mirror sync changed it: image_inputs.on_current_archive)."""
    require_buildable(spec)
    if settings.index_ca_bundle and settings.installer != "pip-index":
        raise ConfigError(
            "visa.index_ca_bundle is set but the installer is not pip-index",
            tip="set INVOKE_VISA_INSTALLER=pip-index, or leave visa.index_ca_bundle empty",
        )
    if state is None:
        return image_inputs.on_current_archive(
            spec, settings, lambda states: build_qcow2(spec, settings, state=archive_state.state_key(states))
        )
    context_dir = qcow2_context(spec, settings)
    if settings.fill == "native":
        built = _build_native(spec, settings, context_dir, state)
    else:
        built = _build_in_guest(spec, settings, context_dir, state)
    kept_images.prune(built.path, settings.keep_images, settings.build_dir)
    return built


def _build_in_guest(spec: ImageSpec, settings: Settings, context_dir: Path, state: str) -> Qcow2:
    base = in_guest.base_source(spec, settings)
    keys = in_guest.stage_keys(spec, settings, context_dir, base, state)
    final = qcow2_path(spec, settings, keys[-1])
    if cached := _cached(final):
        return cached
    seconds = in_guest.build_stages(spec, settings, context_dir, state, base=base, keys=keys, final=final)
    return Qcow2(final, build_key_file(final), cached=False, step_seconds=seconds)


def expected_path(spec: ImageSpec, settings: Settings, state: str) -> Path:
    """Where build_qcow2 puts the qcow2 of `spec` for Debian archive `state` (nothing is built, but an in-guest
    build's base qcow2 is made when missing: its checksum is part of the key)."""
    context_dir = qcow2_context(spec, settings)
    if settings.fill == "native":
        return qcow2_path(spec, settings, native_key(spec, settings, context_dir, state))
    keys = in_guest.stage_keys(spec, settings, context_dir, in_guest.base_source(spec, settings), state)
    return qcow2_path(spec, settings, keys[-1])


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
        stages.tree_digest(project_files(), ("packer",)),
        repr(sorted(double_env.items())),
        repr(sorted(vm_env(spec, settings, wheelhouse_url="", state=state).items())),
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
        source=(str(filled), artefact.checksum(filled)),
        output=final,
        scripts=SEAL_SCRIPTS,
        context_dir=context_dir,
        env=vm_env(spec, settings, wheelhouse_url="", state=state),
        compression=settings.compression,
        title=f"the sealing boot of {spec.name} (VM difference, cleanup, seal)",
    )
    seconds["seal"] = timed_packer(job, accel, settings, timing_key=f"{spec.name}/seal/{accel.name}")
    double_image_file(final).write_text(images.double_id + "\n")
    return Qcow2(final, build_key_file(final), cached=False, step_seconds=seconds)
