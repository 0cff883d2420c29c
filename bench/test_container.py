"""Benchmark: test-container cold (no Docker images, empty build folder) and warm (everything cached).

Usage (as root): .venv/bin/python bench/test_container.py [--image images/visa-jupyter]
Cold removes the Docker base image (by the tag the build computes) and the double of the spec (they are rebuilt by
the run) and uses a scratch build folder under build/bench/ (removed at the end). The last lines are the figures.
"""

from __future__ import annotations

import argparse
import shutil
import time

from visa_build import base_docker, double_build, image_inputs, image_tests, progress
from visa_build.docker_engine import docker_client, image_exists
from visa_build.image_spec import load_image_spec
from visa_build.resources import workspace
from visa_build.settings import make_settings

MIRROR = "http://deb.debian.org/debian"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="images/visa-jupyter", help="image spec (default: images/visa-jupyter)")
    args = parser.parse_args()
    spec = load_image_spec((workspace() / args.image).resolve())
    scratch = workspace() / "build" / "bench" / f"test-container-{spec.name}"
    shutil.rmtree(scratch, ignore_errors=True)
    settings = make_settings(
        image=args.image, build_dir=str(scratch), installer="uv", base_image="", mirror=MIRROR, wheelhouse_port=8765
    )
    client = docker_client()
    for tag in (
        double_build.container_tag(spec),
        double_build.filesystem_tag(spec),
        base_docker.base_tag(image_inputs.sources(spec, settings)),
    ):
        if image_exists(client, tag):
            progress.note(f"bench: removing {tag} for the cold run")
            client.images.remove(tag, force=True)
    client.images.prune(filters={"dangling": True})
    runs: list[tuple[float, image_tests.TestReport]] = []
    try:
        for label in ("cold", "warm"):
            started = time.monotonic()
            report = image_tests.test_container(spec, settings, pytest_args=["-q"])
            runs.append((time.monotonic() - started, report))
            progress.note(f"bench: {label} test-container {runs[-1][0]:.0f} s")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    (cold, cold_report), (warm, warm_report) = runs
    print(
        f"spec {spec.name}: test-container cold {cold:.0f} s, warm {warm:.0f} s ({100 * warm / cold:.0f} % of cold)\n"
        f"server answered /jupyter/{{id}}/api/status {cold_report.seconds_to_status:.0f} s (cold run) and "
        f"{warm_report.seconds_to_status:.0f} s (warm run) after the container started"
    )


if __name__ == "__main__":
    main()
