"""Disk images' filesystems from the host: loop devices at a partition's offset, mounts, and the root
filesystem of a qcow2 read without booting it (a raw copy, its largest partition mounted read-only)."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

from . import interrupts, runs
from .errors import VisaBuildError
from .process import Runner, run


@contextlib.contextmanager
def loop_device(raw: Path, *, offset: int, size: int, read_only: bool, runner: Runner = run) -> Iterator[str]:
    """A loop device over `size` bytes of `raw` from `offset` (partition device nodes do not appear in every
    sandbox); always detached afterwards."""
    argv = [
        "losetup",
        "--find",
        "--show",
        *(["--read-only"] if read_only else []),
        "--offset",
        str(offset),
        "--sizelimit",
        str(size),
        str(raw),
    ]
    loop = runner(argv, timeout=60).lines[-1].strip()
    try:
        yield loop
    finally:
        with interrupts.shielded():
            runner(["losetup", "--detach", loop], timeout=60, check=False)


@contextlib.contextmanager
def mounted(
    device: str, mountpoint: Path, *, options: str, fstype: str | None = None, runner: Runner = run
) -> Iterator[Path]:
    """`device` mounted at `mountpoint` for the block; always unmounted (with anything below it) afterwards. When
    the block succeeded, a failed unmount fails it: what was written may not be on the device."""
    runner(["mount", *(["-t", fstype] if fstype else []), "-o", options, device, str(mountpoint)], timeout=60)
    umount = ["umount", "--recursive", str(mountpoint)]
    try:
        yield mountpoint
    except BaseException:
        with interrupts.shielded():
            runner(umount, timeout=120, check=False)  # the block's error is the one to report
        raise
    with interrupts.shielded():
        runner(umount, timeout=120, tip=f"see what still uses it: fuser -vm {mountpoint}")


@contextlib.contextmanager
def mounted_root(qcow2: Path, *, scratch: Path, runner: Runner = run) -> Iterator[Path]:
    """Yield the mounted root filesystem of `qcow2` (never written); everything is undone afterwards."""
    scratch.mkdir(parents=True, exist_ok=True)
    work = runs.scratch_dir(scratch, "image-")
    raw, root = work / "disk.raw", work / "root"
    try:
        runner(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(qcow2), str(raw)], timeout=1800)
        table = json.loads(runner(["sfdisk", "--json", str(raw)], timeout=60).output)["partitiontable"]
        part = max(table["partitions"], key=lambda p: p["size"])  # the root filesystem
        root.mkdir()
        with (
            loop_device(
                raw, offset=part["start"] * 512, size=part["size"] * 512, read_only=True, runner=runner
            ) as loop,
            mounted(loop, root, options="ro,noload", runner=runner),
        ):
            yield root
    finally:
        if not root.is_mount():
            shutil.rmtree(work, ignore_errors=True)


def _under(path: str, directory: Path) -> bool:
    return path == str(directory) or path.startswith(f"{directory}/")


def _mounts_under(directory: Path, runner: Runner) -> list[str]:
    targets = runner(["findmnt", "--list", "--noheadings", "--output", "TARGET"], timeout=60).lines
    return [target for target in targets if _under(target, directory)]


def release_all_under(directory: Path, *, runner: Runner = run) -> list[str]:
    """Unmount everything mounted under `directory` (deepest first) and detach every loop device whose file lies
    under it: what a killed run left. Returns what was released; VisaBuildError when something stays."""
    mounts = sorted(_mounts_under(directory, runner), key=lambda target: target.count("/"), reverse=True)
    for target in mounts:
        runner(["umount", "--recursive", target], timeout=120, check=False)
    listing = runner(["losetup", "--list", "--json", "--output", "NAME,BACK-FILE"], timeout=60).output
    devices = json.loads(listing)["loopdevices"] if listing.strip() else []  # no loop device: no output at all
    loops = [d["name"] for d in devices if _under(d.get("back-file") or "", directory)]
    for loop in loops:
        runner(["losetup", "--detach", loop], timeout=60, check=False)
    left = _mounts_under(directory, runner)
    if left:
        raise VisaBuildError(f"cannot unmount {', '.join(left)}", tip=f"see what uses it: fuser -vm {left[0]}")
    return mounts + loops
