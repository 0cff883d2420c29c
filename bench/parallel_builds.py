"""Benchmark: build-qcow2 of two specs one after the other, then side by side (two runs started at once in one
checkout and one build folder), with the ratio.

Usage (as root): .venv/bin/python bench/parallel_builds.py [--image images/ci --image images/ci-trixie]
Both modes run in one scratch build folder under build/bench/ (removed at the end). The Docker base images and
the wheelhouses are made before any clock starts (shared downloads, not build work); before each mode the specs'
Docker images, filled disks and qcow2s are removed, so each mode builds every Docker layer, fills and seals both
images. The last lines are the figures.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import subprocess
import time
from pathlib import Path

from build_qcow2 import MIRROR, remove_images  # bench/ is the script folder

from visa_build import image_inputs, progress
from visa_build.image_spec import load_image_spec
from visa_build.resources import workspace
from visa_build.settings import Settings, make_settings
from visa_build.wheelhouse import ensure_wheelhouse


def build(images: list[str], build_dir: Path) -> dict[str, float]:
    """Start build-qcow2 of every spec in `images` at once; seconds each took until it ended."""
    env = {**os.environ, "INVOKE_VISA_BUILD_DIR": str(build_dir)}
    started, procs, seconds = time.monotonic(), {}, {}
    for image in images:
        log = (build_dir / f"bench-{Path(image).name}.log").open("w")
        procs[image] = subprocess.Popen(
            ["./visa-build", "build-qcow2", "--image", image],
            cwd=workspace(),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    while procs:
        for image, proc in list(procs.items()):
            if proc.poll() is not None:
                if proc.returncode != 0:
                    raise SystemExit(f"build-qcow2 {image} failed; see {build_dir}/bench-{Path(image).name}.log")
                seconds[image] = time.monotonic() - started
                del procs[image]
        time.sleep(1)
    return seconds


def settings_of(image: str, build_dir: Path) -> Settings:
    return make_settings(
        image=image, build_dir=str(build_dir), installer="uv", base_image="", mirror=MIRROR, wheelhouse_port=8765
    )


def cold(images: list[str], build_dir: Path) -> None:
    for image in images:
        remove_images(load_image_spec(workspace() / image), settings_of(image, build_dir), keep_base=True)
    for folder in (build_dir / "images", build_dir / "cache" / "filled"):
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", action="append", help="spec folder (twice); default images/ci, images/ci-trixie")
    images = parser.parse_args().image or ["images/ci", "images/ci-trixie"]
    build_dir = workspace() / "build" / "bench" / "parallel"
    shutil.rmtree(build_dir, ignore_errors=True)
    build_dir.mkdir(parents=True)
    try:
        for image in images:
            spec = load_image_spec(workspace() / image)
            settings = settings_of(image, build_dir)
            base = image_inputs.base_image(spec, settings)
            ensure_wheelhouse(spec, settings.cache_dir, source_image=functools.partial(str, base))
        cold(images, build_dir)
        one_by_one: dict[str, float] = {}
        for image in images:
            one_by_one |= build([image], build_dir)
        cold(images, build_dir)
        side_by_side = build(images, build_dir)
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    sequential, parallel = sum(one_by_one.values()), max(side_by_side.values())
    for image in images:
        progress.result(f"{image}: alone {one_by_one[image]:.0f} s, beside the other {side_by_side[image]:.0f} s")
    progress.result(
        f"one after the other: {sequential:.0f} s; side by side: {parallel:.0f} s; "
        f"ratio {sequential / parallel:.2f} (2 cores, {os.cpu_count()} CPUs seen)"
    )


if __name__ == "__main__":
    main()
