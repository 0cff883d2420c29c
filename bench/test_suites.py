"""Benchmark: how long the test suites take on their targets, the container double and the booted qcow2.

Usage (as root): .venv/bin/python bench/test_suites.py [--image images/ci] [--qcow2 FILE] [--container-only]
Builds (or takes from the cache under build/) the double and the qcow2 of the spec, then runs each suite once as
test-container and test-qcow2 do. Only the pytest run is timed: building and booting are not part of the figure.
The last lines are the figures.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from visa_build import image_tests
from visa_build.image_spec import load_image_spec
from visa_build.resources import workspace
from visa_build.settings import make_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="images/ci", help="image spec folder (default: images/ci)")
    parser.add_argument("--qcow2", help="test this qcow2 instead of the image's build")
    parser.add_argument("--container-only", action="store_true", help="time the container double's suite only")
    args = parser.parse_args()
    spec = load_image_spec((workspace() / args.image).resolve())
    settings = make_settings(
        image=args.image,
    )
    figures = []
    double = image_tests.test_container(spec, settings, pytest_args=["-q"])
    suite = double.suite
    figures.append(f"container suite (tests/infra + tests/double): {suite.seconds:.0f} s, {suite.summary}")
    if not args.container_only:
        qcow2 = Path(args.qcow2) if args.qcow2 else None
        vm = image_tests.test_qcow2(spec, settings, qcow2=qcow2, pytest_args=["-q"])
        figures.append(f"VM suite (tests/infra + tests/vm): {vm.suite.seconds:.0f} s, {vm.suite.summary}")
    print(f"spec {spec.name}:\n" + "\n".join(figures))


if __name__ == "__main__":
    main()
