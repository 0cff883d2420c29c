"""The Docker base image made from the Debian mirror (mmdebstrap + docker import), cached by content. It is
the VISA root filesystem (base_rootfs.py), kernel and boot packages included: the qcow2 is filled from it.
Each base is labelled with its line (every input but the rebuild period) and its period (visa.rebase_days), so
a new period's base untags those of its line two or more periods older: no build uses them any more."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import docker

from . import artefact, base_rootfs, interrupts, mounts, progress, runs
from .docker_engine import docker_client, image_exists
from .errors import VisaBuildError
from .process import Runner, run

REPOSITORY = "visa-build/base"


def base_tag(sources: base_rootfs.Sources) -> str:
    """Docker tag of the base image, keyed by a hash of every input of its build."""
    return f"{REPOSITORY}:{sources.suite}-{artefact.key_of(*base_rootfs.key_inputs(sources))[:12]}"


LINE_LABEL = "org.visa-build.base-line"  # the key of every input of the base but its rebuild period
PERIOD_LABEL = "org.visa-build.base-period"  # its rebuild period (base_rootfs.generation)


def base_labels(sources: base_rootfs.Sources) -> dict[str, str]:
    """The labels of the base of `sources`: its line and its rebuild period."""
    line = artefact.key_of(*base_rootfs.key_inputs(dataclasses.replace(sources, generation="")))[:16]
    return {LINE_LABEL: line, PERIOD_LABEL: sources.generation}


def untag_superseded_bases(sources: base_rootfs.Sources, client: Any) -> list[str]:
    """Untag the bases of the line of `sources` two or more rebuild periods older than its own (the one before
    stays, for a run that straddles the turn); Docker frees each once no image built on it is left. Returns
    the tags removed. Bases never rebuilt by age (visa.rebase_days = 0) have no periods: none is untagged."""
    ours = _period(sources.generation)
    if ours is None:
        return []
    labels = base_labels(sources)
    untagged = []
    for image in client.images.list(filters={"label": f"{LINE_LABEL}={labels[LINE_LABEL]}"}):
        theirs = _period(image.labels.get(PERIOD_LABEL, ""))
        if theirs is None or theirs[1] != ours[1] or theirs[0] >= ours[0] - 1:
            continue
        # the images built on a base inherit its labels: only its own tags, in the bases' repository, are untagged
        for tag in (t for t in image.tags if t.rpartition(":")[0] == REPOSITORY):
            try:
                client.images.remove(tag)  # not forced: an image built on it keeps its layers
            except docker.errors.DockerException as exc:
                progress.note(f"kept the base {tag} of an earlier period: {exc}")
                continue
            untagged.append(tag)
    return untagged


def _period(generation: str) -> tuple[int, int] | None:
    """(period, days) of a generation "<period>x<days>d"; None for "" (never rebuilt by age) or another form."""
    period, _, days = generation.removesuffix("d").partition("x")
    return (int(period), int(days)) if period.isdigit() and days.isdigit() else None


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
            changes = [f"LABEL {name}={value}" for name, value in base_labels(sources).items()]
            with partial.open("rb") as handle:
                client.api.import_image_from_data(
                    handle.read(), repository=tag.split(":")[0], tag=tag.split(":")[1], changes=changes
                )
        finally:
            with interrupts.shielded():
                partial.unlink(missing_ok=True)
                mounts.release_all_under(scratch, runner=runner)
                shutil.rmtree(scratch, ignore_errors=True)
    if not image_exists(client, tag):
        raise VisaBuildError(f"docker import did not produce {tag}", tip="see the Docker daemon log")
    try:
        untagged = untag_superseded_bases(sources, client)
    except docker.errors.DockerException as exc:  # only disk space is at stake
        progress.note(f"the bases of earlier periods were not looked at: {exc}")
    else:
        if untagged:
            progress.note(f"untagged the bases of earlier periods (visa.rebase_days): {', '.join(untagged)}")
    return tag
