"""The Docker base image made from the Debian mirror (mmdebstrap + docker import), cached by content. It is
the VISA root filesystem (base_rootfs.py), kernel and boot packages included: the qcow2 is filled from it."""

from __future__ import annotations

import shutil
from pathlib import Path

from . import artefact, base_rootfs, interrupts, mounts, progress, runs
from .docker_engine import docker_client, image_exists
from .errors import VisaBuildError
from .process import Runner, run


def base_tag(sources: base_rootfs.Sources) -> str:
    """Docker tag of the base image, keyed by a hash of every input of its build."""
    return f"visa-build/base:{sources.suite}-{artefact.key_of(*base_rootfs.key_inputs(sources))[:12]}"


def ensure_base_image(sources: base_rootfs.Sources, cache_dir: Path, *, runner: Runner = run) -> str:
    """Tag of the local base image, building it from the mirror when absent (one run at a time builds it)."""
    tag = base_tag(sources)
    with runs.exclusive(cache_dir / "locks" / f"base-{tag.split(':')[1]}.lock", f"the base image {tag}"):
        return _ensure_base_image(sources, tag, cache_dir, runner)


def _ensure_base_image(sources: base_rootfs.Sources, tag: str, cache_dir: Path, runner: Runner) -> str:
    client = docker_client()
    if image_exists(client, tag):
        progress.note(f"base image {tag}: cached")
        return tag
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cache_dir / f"{tag.split(':')[1]}.partial.tar"  # only kept until it is imported
    # mmdebstrap's chroot, under build/: what it mounts there is released below, or by `clean` after a killed run.
    scratch = runs.scratch_dir(cache_dir, ".mmdebstrap-")
    with progress.step(f"Building base image {tag} from {sources.mirror} (mmdebstrap)"):
        try:
            base_rootfs.mmdebstrap(
                sources, partial, tar=True, runner=runner, timeout=1200, env={"TMPDIR": str(scratch)}
            )
            with partial.open("rb") as handle:
                client.api.import_image_from_data(handle.read(), repository=tag.split(":")[0], tag=tag.split(":")[1])
        finally:
            with interrupts.shielded():
                partial.unlink(missing_ok=True)
                mounts.release_all_under(scratch, runner=runner)
                shutil.rmtree(scratch, ignore_errors=True)
    if not image_exists(client, tag):
        raise VisaBuildError(f"docker import did not produce {tag}", tip="see the Docker daemon log")
    return tag
