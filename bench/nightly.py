"""Benchmark: the nightly of a spec when nothing changed, and the rebuild of a night when only Debian changed.

Usage (as root): .venv/bin/python bench/nightly.py [--image images/ci] [--cold-seconds S]
Runs in build/ (its caches are the point): one nightly to have a release (in a scratch release folder), then
a second, timed: nothing changed, so it reads the mirrors, finds the qcow2 it already checked and stops. Then
a Debian-only night: build-qcow2 with the archive's state tagged "-bench-<id>" (the layer checks the state's
digest only, and the tag makes it new, so only the thin Debian-updates layer, the fill and the sealing boot run;
apt finds nothing newer than the base here, so the download and install of real updates, usually seconds to a
minute, come on top). --cold-seconds: a cold
build-qcow2 of the same spec (bench/build_qcow2.py) for the ratio. The last lines are the figures.
"""

from __future__ import annotations

import argparse
import shutil
import time
import uuid

from visa_build import image_inputs, nightly, progress, qcow2
from visa_build.image_spec import load_image_spec
from visa_build.resources import workspace
from visa_build.settings import make_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="images/ci", help="image spec folder (default: images/ci)")
    parser.add_argument("--cold-seconds", type=float, default=0.0, help="a cold build-qcow2 of the spec, seconds")
    args = parser.parse_args()
    spec = load_image_spec((workspace() / args.image).resolve())
    releases = workspace() / "build" / "bench" / f"nightly-{spec.name}"
    shutil.rmtree(releases, ignore_errors=True)
    settings = make_settings(
        image=args.image,
        release_dir=str(releases),
    )
    try:
        first = nightly.run_nightly(spec, settings)
        progress.note(f"bench: first night: {first.summary}")
        started = time.monotonic()
        second = nightly.run_nightly(spec, settings)
        unchanged = time.monotonic() - started
        progress.note(f"bench: second night: {second.summary}")
    finally:
        shutil.rmtree(releases, ignore_errors=True)
    started = time.monotonic()
    state = f"{image_inputs.archive_key(spec, settings)}-bench-{uuid.uuid4().hex[:8]}"
    rebuilt = qcow2.build_qcow2(spec, settings, state=state)
    debian_only = time.monotonic() - started
    steps = ", ".join(f"{name} {s:.0f} s" for name, s in rebuilt.step_seconds.items())
    lines = [
        f"spec {spec.name}: no-change nightly {unchanged:.1f} s ({second.verdict}; target < 60 s)",
        f"Debian-only night (updates layer, fill, sealing boot): {debian_only:.0f} s (steps: {steps})",
    ]
    if args.cold_seconds:
        lines.append(
            f"= {100 * debian_only / args.cold_seconds:.0f} % of a cold build-qcow2 of "
            f"{args.cold_seconds:.0f} s (target <= 40 %)"
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
