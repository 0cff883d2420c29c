"""Benchmark: cold build-qcow2 (natively filled) against seed-style provisioning of the same spec, in one run,
plus the no-change and the data-analysis pin-change rebuilds.

Usage (as root): .venv/bin/python bench/build_qcow2.py [--image images/ci] [--no-seed] [--warm-base]
                 [--compression zlib|zstd]
Every build runs in its own scratch build folder under build/bench/ (removed at the end) and the spec's Docker
images (and, without --warm-base, the Docker base image, by the tag the build itself computes) are removed first,
so "cold" means cold: base from the mirror, wheelhouse download, KVM probe, every Docker layer, the fill and the
sealing boot. The bench checks it: each of those caches absent before the cold run (--warm-base: the Docker base
and the wheelhouse, built before the clock starts), present after it, and each step of the build run; it stops
when one is not. Seed-style is visa.fill = guest with the installer
pip-index: pip installs the same pins from the package index inside the guest, no wheelhouse, no cache (the
host's CA bundle is given to the guest when this machine's HTTPS needs it). The pin-change build leaves the
spec's Docker tags on the changed image. The last lines are the figures.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from visa_build import base_docker, double_build, fill, image_inputs, lock_files, progress, qcow2, wheelhouse
from visa_build.docker_engine import docker_client, image_exists
from visa_build.image_spec import ImageSpec, load_image_spec
from visa_build.process import run
from visa_build.resources import workspace
from visa_build.settings import Settings, make_settings

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
MIRROR = "http://deb.debian.org/debian"
#: The pin the pin-change rebuild moves (a data-analysis package every spec here has).
PIN_CHANGE = ("pip==26.3", "pip==26.2")
#: The steps a natively filled build that built everything reports (Qcow2.step_seconds).
COLD_STEPS = ("docker", "fill", "seal")
#: The caches --warm-base fills before the clock starts.
WARM_BASE = {"Docker base image", "wheelhouse"}
#: The Dockerfile step that installs the JupyterLab venv (found in the image's history).
LAB_STEP = "20-jupyterlab.sh &&"


def settings_for(image: Path, build_dir: Path, compression: str, installer: str = "uv") -> Settings:
    seed = installer == "pip-index"
    return make_settings(
        image=str(image),
        build_dir=str(build_dir),
        installer=installer,
        base_image="",
        mirror=MIRROR,
        wheelhouse_port=8765,
        fill="guest" if seed else "native",
        compression=compression,
        index_ca_bundle=str(HOST_CA_BUNDLE) if seed and HOST_CA_BUNDLE.is_file() else "",
    )


def timed(label: str, job: Callable[[], qcow2.Qcow2]) -> tuple[float, qcow2.Qcow2]:
    started = time.monotonic()
    built = job()
    seconds = time.monotonic() - started
    progress.note(f"bench: {label}: {seconds:.1f} s, steps {_steps(built)}")
    return seconds, built


def _steps(built: qcow2.Qcow2) -> str:
    return ", ".join(f"{name} {s:.0f} s" for name, s in built.step_seconds.items()) or "none"


def lab_layer(spec: ImageSpec) -> str:
    """Id of the filesystem image's layer that installed the JupyterLab venv."""
    history = docker_client().images.get(double_build.filesystem_tag(spec)).history()
    return next(str(entry["Id"]) for entry in history if LAB_STEP in entry["CreatedBy"])


def remove_images(spec: ImageSpec, settings: Settings, *, keep_base: bool) -> None:
    """The spec's Docker images, and unless `keep_base` its base image (by the tag the build computes)."""
    client = docker_client()
    tags = [double_build.container_tag(spec), double_build.filesystem_tag(spec)]
    tags += [] if keep_base else [base_docker.base_tag(image_inputs.sources(spec, settings))]
    for tag in tags:
        if image_exists(client, tag):
            progress.note(f"bench: removing {tag} for the cold run")
            client.images.remove(tag, force=True)
    client.images.prune(filters={"dangling": True})


def caches(spec: ImageSpec, settings: Settings) -> dict[str, bool]:
    """Whether each cache a cold build-qcow2 fills is there now, found where the build looks for it."""
    client = docker_client()
    filesystem = double_build.filesystem_tag(spec)
    image_id = client.images.get(filesystem).id if image_exists(client, filesystem) else ""
    filled = fill.cache_path(settings.cache_dir, spec.name, image_id, settings.disk_size)
    return {
        "Docker base image": image_exists(client, base_docker.base_tag(image_inputs.sources(spec, settings))),
        "wheelhouse": wheelhouse.cache_path(settings.cache_dir, spec).is_dir(),
        "Docker filesystem image": bool(image_id),
        "filled disk": bool(image_id) and filled.is_file(),
    }


def not_cold(before: dict[str, bool], after: dict[str, bool], steps: dict[str, float], *, warm: set[str]) -> list[str]:
    """Why a cold run was not cold: a cache there before it (but those in `warm`), one missing after it, a step of
    the build that did not run."""
    faults = [f"{name} was there before the cold run" for name, there in before.items() if there and name not in warm]
    faults += [f"{name} is missing after the cold run" for name, there in after.items() if not there]
    return faults + [f"step {step} did not run" for step in COLD_STEPS if step not in steps]


def pin_changed_copy(spec: ImageSpec, scratch: Path) -> ImageSpec:
    """A copy of the spec's images/ folder with one data-analysis pin moved and that lock re-resolved."""
    images = scratch / "images"
    shutil.copytree(spec.directory.parent, images)
    copy = images / spec.directory.name
    environment = copy / spec.data_analysis.environment.name
    old, new = PIN_CHANGE
    if old not in environment.read_text():
        raise SystemExit(f"{environment} does not pin {old}: adapt PIN_CHANGE in {__file__}")
    environment.write_text(environment.read_text().replace(old, new))
    requirements = scratch / "data-analysis.in"
    requirements.write_text("".join(f"{pin}\n" for pin in spec.data_analysis.top_level).replace(old, new))
    glibc = spec.distro.glibc
    run(
        lock_files.compile_argv(requirements, copy / spec.data_analysis.lock.name, python=spec.python, glibc=glibc),
        timeout=600,
    )
    return load_image_spec(copy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="images/ci", help="image spec folder (default: images/ci)")
    parser.add_argument("--no-seed", action="store_true", help="skip the seed-style build")
    parser.add_argument("--warm-base", action="store_true", help="Docker base and wheelhouse built before timing")
    parser.add_argument("--compression", default="zlib", choices=("zlib", "zstd"), help="visa.compression")
    args = parser.parse_args()
    image = (workspace() / args.image).resolve()
    spec = load_image_spec(image)
    scratch = workspace() / "build" / "bench" / f"build-qcow2-{spec.name}"
    shutil.rmtree(scratch, ignore_errors=True)
    fast = settings_for(image, scratch / "native", args.compression)
    remove_images(spec, fast, keep_base=args.warm_base)
    try:
        if args.warm_base:
            base = image_inputs.base_image(spec, fast)
            wheelhouse.ensure_wheelhouse(spec, fast.cache_dir, source_image=lambda: base)
        before = caches(spec, fast)
        cold, built = timed("cold build-qcow2", lambda: qcow2.build_qcow2(spec, fast))
        if faults := not_cold(
            before, caches(spec, fast), built.step_seconds, warm=WARM_BASE if args.warm_base else set()
        ):
            raise SystemExit("bench: the cold run was not cold: " + "; ".join(faults))
        built_caches = ", ".join(name for name, there in before.items() if not there)
        lab = lab_layer(spec)
        unchanged, _ = timed("no-change rebuild", lambda: qcow2.build_qcow2(spec, fast))
        changed_spec = pin_changed_copy(spec, scratch)
        changed_settings = settings_for(changed_spec.directory, scratch / "native", args.compression)
        changed, rebuilt = timed(
            f"pin change {PIN_CHANGE[0]} -> {PIN_CHANGE[1]}", lambda: qcow2.build_qcow2(changed_spec, changed_settings)
        )
        lab_reused = lab_layer(changed_spec) == lab
        seed = 0.0
        if not args.no_seed:
            seed_settings = settings_for(image, scratch / "seed", args.compression, "pip-index")
            seed, seeded = timed("seed-style (pip-index)", lambda: qcow2.build_qcow2(spec, seed_settings))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    warm = " (Docker base and wheelhouse cached)" if args.warm_base else ""
    lines = [
        f"spec {spec.name}, compression {args.compression}: cold build-qcow2{warm} {cold:.0f} s "
        f"(steps: {_steps(built)})",
        f"cold run checked: it built {built_caches} and ran every step ({', '.join(COLD_STEPS)})",
        f"no-change rebuild: {unchanged:.1f} s = {100 * unchanged / cold:.1f} % of cold (target < 5 %)",
        f"data-analysis pin change: {changed:.0f} s = {100 * changed / cold:.0f} % of cold "
        f"(steps: {_steps(rebuilt)}; JupyterLab layer reused: {'yes' if lab_reused else 'NO'})",
    ]
    if seed:
        lines += [
            f"seed-style (pip from the index in the guest): {seed:.0f} s (stages: {_steps(seeded)})",
            f"cold build-qcow2 is {seed / cold:.2f}x faster than seed-style (target >= 5x)",
        ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
