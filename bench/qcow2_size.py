"""Benchmark: the built qcow2's size next to the bytes in use in its root filesystem.

Usage (as root, after build-qcow2): .venv/bin/python bench/qcow2_size.py [build/images/<name>/<file>.qcow2 ...]
Without arguments every qcow2 under build/images is measured. The last lines are the figures.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from visa_build.mounts import mounted_root
from visa_build.resources import workspace


def bytes_in_use(root: Path) -> int:
    stat = os.statvfs(root)
    return (stat.f_blocks - stat.f_bfree) * stat.f_frsize


def main(paths: list[str]) -> None:
    images = [Path(p) for p in paths] or sorted((workspace() / "build/images").glob("*/*.qcow2"))
    if not images:
        sys.exit("no qcow2 found: run ./visa-build build-qcow2 first")
    rows = []
    for qcow2 in images:
        with mounted_root(qcow2, scratch=workspace() / "build/bench") as root:
            used = bytes_in_use(root)
        rows.append(
            f"{qcow2.name}: qcow2 {qcow2.stat().st_size / 1e9:.2f} GB, in use {used / 1e9:.2f} GB, "
            f"ratio {qcow2.stat().st_size / used:.2f}x (target <= 1.15x)"
        )
    print("\n".join(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
