"""Benchmark: cold build-qcow2 against seed-style provisioning of the same spec, in one run, plus the
no-change and the data-analysis pin-change rebuilds.

Usage (as root): .venv/bin/python bench/build_qcow2.py [--image images/ci] [--no-seed]
Every build runs in its own scratch build folder under build/bench/ (removed at the end), so "cold" means
cold: base qcow2 from the mirror, wheelhouse download, KVM probe, every stage. Seed-style is the installer
pip-index: pip installs the same pins from the package index inside the guest, no wheelhouse, no cache
(the host's CA bundle is given to the guest when this machine's HTTPS needs it). The last lines are the figures.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from visa_build import lock, pipeline, progress, stages
from visa_build.config import ImageSpec, load_image_spec
from visa_build.process import run
from visa_build.settings import Settings, make_settings

REPO = Path(__file__).resolve().parent.parent
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
#: The pin the pin-change rebuild moves (a data-analysis package every spec here has).
PIN_CHANGE = ("pip==26.3", "pip==26.2")


def settings_for(image: Path, build_dir: Path, installer: str = "uv") -> Settings:
    return make_settings(
        image=str(image), build_dir=str(build_dir), installer=installer, base_image="",
        mirror="http://deb.debian.org/debian", wheelhouse_port=8765,
        index_ca_bundle=str(HOST_CA_BUNDLE) if installer == "pip-index" and HOST_CA_BUNDLE.is_file() else "",
    )  # fmt: skip


def timed(label: str, job: Callable[[], pipeline.Qcow2]) -> tuple[float, pipeline.Qcow2]:
    started = time.monotonic()
    built = job()
    seconds = time.monotonic() - started
    progress.note(f"bench: {label}: {seconds:.1f} s, stages built {_stages(built)}")
    return seconds, built


def _stages(built: pipeline.Qcow2) -> str:
    return ", ".join(f"{name} {s:.0f} s" for name, s in built.stage_seconds.items()) or "none"


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
    glibc = lock.DEBIAN_GLIBC[spec.debian]
    run(lock.compile_argv(requirements, copy / spec.data_analysis.lock.name, python=spec.python, glibc=glibc),
        timeout=600)  # fmt: skip
    return load_image_spec(copy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="images/ci", help="image spec folder (default: images/ci)")
    parser.add_argument("--no-seed", action="store_true", help="skip the seed-style build")
    args = parser.parse_args()
    image = (REPO / args.image).resolve()
    spec = load_image_spec(image)
    scratch = REPO / "build" / "bench" / f"build-qcow2-{spec.name}"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        fast = settings_for(image, scratch / "uv")
        cold, built = timed("cold build-qcow2", lambda: pipeline.build_qcow2(spec, fast))
        lab = next((scratch / "uv").glob(f"cache/stages/{stages.JUPYTERLAB.name}-*.qcow2"))
        lab_mtime = lab.stat().st_mtime
        unchanged, _ = timed("no-change rebuild", lambda: pipeline.build_qcow2(spec, fast))
        changed_spec = pin_changed_copy(spec, scratch)
        changed_settings = settings_for(changed_spec.directory, scratch / "uv")
        changed, rebuilt = timed(f"pin change {PIN_CHANGE[0]} -> {PIN_CHANGE[1]}",
                                 lambda: pipeline.build_qcow2(changed_spec, changed_settings))  # fmt: skip
        lab_reused = stages.JUPYTERLAB.name not in rebuilt.stage_seconds and lab.stat().st_mtime == lab_mtime
        seed = 0.0
        if not args.no_seed:
            seed_settings = settings_for(image, scratch / "seed", "pip-index")
            seed, seeded = timed("seed-style (pip-index)", lambda: pipeline.build_qcow2(spec, seed_settings))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    lines = [
        f"spec {spec.name}: cold build-qcow2 {cold:.0f} s (stages: {_stages(built)})",
        f"no-change rebuild: {unchanged:.1f} s = {100 * unchanged / cold:.1f} % of cold (target < 5 %)",
        f"data-analysis pin change: {changed:.0f} s = {100 * changed / cold:.0f} % of cold "
        f"(stages: {_stages(rebuilt)}; JupyterLab stage reused: {'yes' if lab_reused else 'NO'})",
    ]
    if seed:
        lines += [
            f"seed-style (pip from the index in the guest): {seed:.0f} s (stages: {_stages(seeded)})",
            f"cold build-qcow2 is {seed / cold:.2f}x faster than seed-style (target >= 5x)",
        ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
