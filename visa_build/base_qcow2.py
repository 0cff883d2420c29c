"""The base qcow2 of in-guest builds (visa.fill = guest): the VISA root filesystem from the Debian mirror,
bootable and cloud-init ready, cached by a hash of its inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

from . import artefact, base_rootfs, disk, interrupts, progress, runs
from .process import Runner, run

DISK_BYTES = 3 * 2**30  # grown by Packer (disk_size) and by cloud-init's growpart at first boot


def cache_key(sources: base_rootfs.Sources) -> str:
    return artefact.key_of(*base_rootfs.key_inputs(sources), str(DISK_BYTES), *disk.layout_inputs())


def ensure_base_qcow2(sources: base_rootfs.Sources, cache_dir: Path, *, runner: Runner = run) -> Path:
    """Path of the verified base qcow2 of `sources`, building it from the mirrors when absent or damaged (one run
    at a time)."""
    final = cache_dir / "base" / f"{sources.distro.distribution}-{sources.suite}-{cache_key(sources)}.qcow2"
    with runs.exclusive(final.with_suffix(".lock"), f"the base qcow2 {final.name}"):
        return _ensure_base_qcow2(sources, final, runner)


def _ensure_base_qcow2(sources: base_rootfs.Sources, final: Path, runner: Runner) -> Path:
    if artefact.is_intact(final):
        progress.note(f"base qcow2 {final.name}: cached, checksum verified")
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with progress.step(f"Building base qcow2 {final.name} from {sources.mirror} (mmdebstrap, extlinux)"):
        work = runs.scratch_dir(final.parent, ".base-")
        try:
            raw, partial = work / "disk.raw", work / "disk.qcow2"
            with disk.root_filesystem(raw, DISK_BYTES, work / "root", runner=runner) as root:
                base_rootfs.mmdebstrap(sources, root, tar=False, runner=runner, timeout=1800)
            runner(disk.convert_argv(raw, partial), timeout=600)
            artefact.store(partial, final)
        finally:
            with interrupts.shielded():
                if not (work / "root").is_mount():  # never delete through a mount that failed to go
                    shutil.rmtree(work, ignore_errors=True)
    return final
