"""The nightly: for each image spec, read the Debian archive's state, build the qcow2 and its double (cached by
content), run both suites (JUnit XML), read the image's manifest from the booted VM and compare it with the
spec's last release. Nothing changed: one line, no release. A change that passes: a release. A failure: a
record marked failed, with the logs; `latest` stays where it was."""

from __future__ import annotations

import json
import shutil
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

from . import artefact, host, pipeline, progress, qcow2, upstream
from .config import ImageSpec
from .double import base_image, image_sources
from .errors import VisaBuildError
from .process import run
from .release import changes, manifest, record, sbom
from .settings import Settings
from .wheelhouse import ensure_wheelhouse

Verdict = Literal["unchanged", "released", "failed"]


@dataclass(frozen=True)
class Night:
    image: str
    verdict: Verdict
    detail: str  # the one line the user reads
    folder: Path | None = None  # the release or failed record written, if any


def junit_counts(path: Path) -> dict[str, int]:
    """tests, failures, errors and skipped of a pytest JUnit XML file (zeros when it is missing)."""
    counts = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    if path.is_file():
        for suite in ET.parse(path).getroot().iter("testsuite"):
            for name in counts:
                counts[name] += int(suite.get(name, 0))
    return counts


def _tool_versions() -> dict[str, str]:
    def first_line(argv: list[str]) -> str:
        result = run(argv, timeout=60, check=False)
        return result.lines[0].strip() if result.returncode == 0 and result.lines else "unknown"

    commit = first_line(["git", "-C", str(qcow2.REPO), "rev-parse", "--short", "HEAD"])
    return {"visa-build": f"{version('visa-build')} ({commit})", "packer": first_line(["packer", "version"]),
            "qemu": first_line(["qemu-system-x86_64", "--version"])}  # fmt: skip


def run_nightly(spec: ImageSpec, settings: Settings) -> Night:
    """One night of `spec` (see the module's docstring); failures come back as a Night, never raised."""
    started, clock = datetime.now(UTC), time.monotonic()
    root = settings.release_dir / spec.name
    _prune(root, spec, settings)
    steps: dict[str, float] = {}
    sources = image_sources(spec, settings)
    mark = time.monotonic()
    states = upstream.read_state(sources)
    steps["mirror check"] = time.monotonic() - mark
    state = upstream.state_key(states)
    expected = qcow2.expected_path(spec, settings, state)
    last = record.read_last_check(root)
    if last.get("qcow2") == expected.name and last.get("verdict") in ("released", "unchanged"):
        return Night(spec.name, "unchanged", f"{spec.name}: nothing changed (Debian archive and spec as checked "
                     f"{last.get('checked')}; {last.get('release', 'no release')}): no new release")  # fmt: skip
    work = settings.build_dir / "nightly" / spec.name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    junit = {"container": work / "junit-container.xml", "vm": work / "junit-vm.xml"}
    facts_file = work / "facts.json"
    built = None
    try:
        mark = time.monotonic()
        built = qcow2.build_qcow2(spec, settings, state=state)
        steps["build-qcow2"] = time.monotonic() - mark
        mark = time.monotonic()
        pipeline.test_container(spec, settings, pytest_args=["-q", f"--junitxml={junit['container']}"], state=state)
        steps["test-container"] = time.monotonic() - mark
        mark = time.monotonic()
        vm_args = ["-q", f"--junitxml={junit['vm']}", f"--visa-facts-out={facts_file}"]
        pipeline.test_qcow2(spec, settings, qcow2=built.path, pytest_args=vm_args)
        steps["test-qcow2"] = time.monotonic() - mark
        image = manifest.from_facts(spec.name, spec.debian, json.loads(facts_file.read_text()),
                                    ensure_wheelhouse(spec, settings.cache_dir,
                                                      source_image=lambda: base_image(spec, settings)))  # fmt: skip
    except VisaBuildError as error:
        name = record.folder_name(started, state, failed=True)
        build = _build_json(spec, settings, states, built, steps, junit, verdict="failed", error=str(error))
        files: dict[str, str | Path] = {"build.json": build, "ERROR.txt": f"{error}\nTIP {error.tip or ''}\n"}
        files |= {f"junit/{target}.xml": path for target, path in junit.items() if path.is_file()}
        files |= {f"logs/{log.name}": log for log in _logs_since(settings.log_dir, clock)}
        folder = record.write(root, name, files)
        return Night(spec.name, "failed", f"{spec.name}: FAILED ({error}); record {folder}", folder)
    previous, why = record.previous_manifest(root)
    check = {"qcow2": built.path.name, "checked": started.isoformat(timespec="seconds")}
    if previous == image:
        record.write_last_check(root, {**check, "verdict": "unchanged", "release": why})
        return Night(spec.name, "unchanged", f"{spec.name}: the image holds what its last release holds ({why}): "
                     "no new release")  # fmt: skip
    try:
        security = upstream.security_versions(sources)
    except VisaBuildError as error:  # the release stands; only the (security) marks are missing
        progress.note(f"{spec.name}: CHANGES.md without security marks: {error}")
        security = {}
    name = record.folder_name(started, state, failed=False)
    title = f"Changes of {spec.name} {name} ({why})"
    files = {
        built.path.name: built.path,
        f"{built.path.name}.sha256": artefact.sidecar(built.path).read_text(),
        "build.json": _build_json(spec, settings, states, built, steps, junit, verdict="passed"),
        "manifest.json": manifest.to_json(image),
        "manifest.md": manifest.to_markdown(image),
        "sbom.cdx.json": sbom.to_json(image),
        "CHANGES.md": changes.to_markdown(title, changes.between(previous, image) if previous else None, security),
        **{f"junit/{target}.xml": path for target, path in junit.items()},
        **{f"logs/{log.name}": log for log in _logs_since(settings.log_dir, clock)},
    }
    folder = record.write(root, name, files)
    record.set_latest(root, name)
    record.write_last_check(root, {**check, "verdict": "released", "release": f"release {name}"})
    _prune(root, spec, settings)
    return Night(spec.name, "released", f"{spec.name}: released {folder} ({why})", folder)


def _prune(root: Path, spec: ImageSpec, settings: Settings) -> None:
    for name in record.prune(root, settings.keep_releases):
        progress.note(f"{spec.name}: removed release {name} (visa.keep_releases = {settings.keep_releases})")


def _logs_since(log_dir: Path, clock: float) -> list[Path]:
    """The log files written during this run (the nightly started `clock` seconds of time.monotonic() ago)."""
    since = time.time() - (time.monotonic() - clock)
    return (
        sorted(p for p in log_dir.glob("*") if p.is_file() and p.stat().st_mtime >= since) if log_dir.is_dir() else []
    )


def _build_json(
    spec: ImageSpec, settings: Settings, states: tuple[upstream.SuiteState, ...], built: qcow2.Qcow2 | None,
    steps: dict[str, float], junit: dict[str, Path], *, verdict: str, error: str = "",
) -> str:  # fmt: skip
    """build.json (schema in README, Nightly releases)."""
    info: dict[str, Any] = {
        "schema": 1,
        "spec": {"name": spec.name, "directory": str(spec.directory), "debian": spec.debian, "python": spec.python},
        "built": datetime.now(UTC).isoformat(timespec="seconds"),
        "upstream": [{"suite": s.suite, "date": s.date, "inrelease_sha256": s.sha256} for s in states],
        "keys": {"debian_state": upstream.state_key(states)},
        "versions": _tool_versions(),
        "settings": {
            "fill": settings.fill,
            "compression": settings.compression,
            "installer": settings.installer,
            "disk_size": settings.disk_size,
            "accelerator": settings.accelerator,
        },  # fmt: skip
        "steps_seconds": {name: round(seconds, 1) for name, seconds in steps.items()},
        "tests": {target: junit_counts(path) for target, path in junit.items()},
        "verdict": verdict,
    }
    if error:
        info["error"] = error
    if built is not None:
        double = qcow2.double_record(built.path)
        info["keys"] |= {
            "qcow2": built.path.stem,
            "double_image": double.read_text().strip() if double.is_file() else "",
        }
        accel = host.resolve_accelerator(settings.accelerator, probe_disk=built.path, cache_dir=settings.cache_dir)
        info["accelerator"] = accel.name
        virtual = json.loads(run(["qemu-img", "info", "--output=json", str(built.path)], timeout=60).output)
        info["sizes"] = {"qcow2_bytes": built.path.stat().st_size, "virtual_bytes": virtual["virtual-size"]}
    return json.dumps(info, indent=1, sort_keys=True) + "\n"
