"""Read the root filesystem of a qcow2 without booting it: a raw copy, its largest partition mounted read-only."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .process import Runner, run


@contextlib.contextmanager
def mounted_root(qcow2: Path, *, scratch: Path, runner: Runner = run) -> Iterator[Path]:
    """Yield the mounted root filesystem of `qcow2` (never written); everything is undone afterwards."""
    scratch.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="image-", dir=scratch))
    raw, root = work / "disk.raw", work / "root"
    try:
        runner(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(qcow2), str(raw)], timeout=1800)
        table = json.loads(runner(["sfdisk", "--json", str(raw)], timeout=60).output)["partitiontable"]
        part = max(table["partitions"], key=lambda p: p["size"])  # the root filesystem
        loop = runner(["losetup", "--find", "--show", "--read-only", "--offset", str(part["start"] * 512),
                       "--sizelimit", str(part["size"] * 512), str(raw)], timeout=60).lines[-1].strip()  # fmt: skip
        root.mkdir()
        try:
            runner(["mount", "-o", "ro,noload", loop, str(root)], timeout=60)
            try:
                yield root
            finally:
                runner(["umount", str(root)], timeout=120, check=False)
        finally:
            runner(["losetup", "--detach", loop], timeout=60, check=False)
    finally:
        if not root.is_mount():
            shutil.rmtree(work, ignore_errors=True)
