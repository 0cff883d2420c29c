"""The nightly: for each image spec, read the Debian archive's state, build the qcow2 and its double (cached by
content), run both suites (JUnit XML), read the image's manifest from the booted VM and compare it with the
spec's last release. Nothing changed: one line, no release. A change that passes: a release. A failure: a
record marked failed, with the logs; `latest` stays where it was. A failure while the archive changed under the
night (a mirror sync) is tried once more on the archive's new state."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from . import archive_state, artefact, image_inputs, image_tests, mounts, progress, qcow2
from .errors import VisaBuildError
from .image_spec import ImageSpec
from .release import build_json, changes, fixes, manifest, record, sbom
from .settings import Settings
from .wheelhouse import ensure_wheelhouse

Verdict = Literal["unchanged", "released", "failed"]


@dataclass(frozen=True)
class Night:
    image: str
    verdict: Verdict
    summary: str  # the one line the user reads
    folder: Path | None = None  # the release or failed record written, if any


@dataclass
class _Tonight:
    """What a night has done so far: what its record holds when it fails at any step."""

    started: datetime
    clock: float  # time.monotonic() when it started
    work: Path
    states: tuple[archive_state.SuiteState, ...] = ()
    built: qcow2.Qcow2 | None = None
    steps: dict[str, float] = field(default_factory=dict)

    @property
    def junit(self) -> dict[str, Path]:
        return {"container": self.work / "junit-container.xml", "vm": self.work / "junit-vm.xml"}

    @property
    def facts(self) -> Path:  # what the booted VM said, for the manifest
        return self.work / "facts.json"


def run_nightly(spec: ImageSpec, settings: Settings) -> Night:
    """One night of `spec` (see the module's docstring). Any error of the night (a VisaBuildError, an OSError
    such as a full disk) comes back as a failed Night with its record, never raised."""
    tonight = _Tonight(datetime.now(UTC), time.monotonic(), settings.build_dir / "nightly" / spec.name)
    try:
        return _night(spec, settings, tonight)
    except (VisaBuildError, OSError) as error:
        return _failed(spec, settings, tonight, error)


def _night(spec: ImageSpec, settings: Settings, tonight: _Tonight) -> Night:
    root = settings.release_dir / spec.name
    _prune(root, spec, settings)
    # No JUnit file of an earlier night goes into this record; a killed night's changelog mount is released first.
    mounts.release_all_under(tonight.work)
    shutil.rmtree(tonight.work, ignore_errors=True)
    tonight.work.mkdir(parents=True, exist_ok=True)
    sources = image_inputs.sources(spec, settings)
    mark = time.monotonic()
    tonight.states = archive_state.read_state(sources)
    tonight.steps["mirror check"] = time.monotonic() - mark
    state = archive_state.state_key(tonight.states)
    expected = qcow2.expected_path(spec, settings, state)
    last = record.read_last_check(root)
    if last.get("qcow2") == expected.name and last.get("verdict") in ("released", "unchanged"):
        return Night(
            spec.name,
            "unchanged",
            f"{spec.name}: nothing changed (Debian archive and spec as checked "
            f"{last.get('checked')}; {last.get('release', 'no release')}): no new release",
        )
    junit = tonight.junit
    built = image_inputs.on_current_archive(
        spec, settings, lambda states: _build_and_test(spec, settings, tonight, states), states=tonight.states
    )
    state = archive_state.state_key(tonight.states)
    image = manifest.from_facts(
        spec.name,
        spec.distro,
        json.loads(tonight.facts.read_text()),
        ensure_wheelhouse(spec, settings.cache_dir, source_image=lambda: image_inputs.base_image(spec, settings)),
    )
    previous, why = record.previous_manifest(root)
    check = {"qcow2": built.path.name, "checked": tonight.started.isoformat(timespec="seconds")}
    if previous is not None and manifest.same_image(previous, image):
        record.write_last_check(root, {**check, "verdict": "unchanged", "release": why})
        return Night(
            spec.name, "unchanged", f"{spec.name}: the image holds what its last release holds ({why}): no new release"
        )
    try:
        security = archive_state.security_versions(sources)
    except VisaBuildError as error:  # the release stands; only the (security) marks are missing
        progress.note(f"{spec.name}: CHANGES.md without security marks: {error}")
        security = {}
    parts = changes.between(previous, image) if previous else None
    fixed = _security_fixes(built.path, changes.security_updates(parts, security), tonight.work, spec)
    name = record.folder_name(tonight.started, state, failed=False)
    title = f"Changes of {spec.name} {name} ({why})"
    files: dict[str, str | Path] = {
        built.path.name: built.path,
        f"{built.path.name}.sha256": artefact.sidecar(built.path).read_text(),
        "build.json": build_json.write(spec, settings, tonight.states, built, tonight.steps, junit, verdict="passed"),
        "manifest.json": manifest.to_json(image),
        "manifest.md": manifest.to_markdown(image),
        "sbom.cdx.json": sbom.to_json(image),
        "CHANGES.md": changes.to_markdown(title, parts, security, fixed),
        **{f"junit/{target}.xml": path for target, path in junit.items()},
        **{f"logs/{log.name}": log for log in _logs_since(settings.log_dir, tonight.clock)},
    }
    folder = record.write(root, name, files)
    record.set_latest(root, name)
    record.write_last_check(root, {**check, "verdict": "released", "release": f"release {name}"})
    _prune(root, spec, settings)
    return Night(spec.name, "released", f"{spec.name}: released {folder} ({why})", folder)


def _build_and_test(
    spec: ImageSpec, settings: Settings, tonight: _Tonight, states: tuple[archive_state.SuiteState, ...]
) -> qcow2.Qcow2:
    """The qcow2 of archive `states`, built, with its double's and its own suite passed (what an attempt before
    left is cleared, so the night's record holds this attempt's only)."""
    tonight.states, tonight.built = states, None
    for leftover in (*tonight.junit.values(), tonight.facts):
        leftover.unlink(missing_ok=True)
    for step in ("build-qcow2", "test-container", "test-qcow2"):
        tonight.steps.pop(step, None)
    state, junit, steps = archive_state.state_key(states), tonight.junit, tonight.steps
    mark = time.monotonic()
    built = tonight.built = qcow2.build_qcow2(spec, settings, state=state)
    steps["build-qcow2"] = time.monotonic() - mark
    mark = time.monotonic()
    image_tests.test_container(spec, settings, pytest_args=["-q", f"--junitxml={junit['container']}"], state=state)
    steps["test-container"] = time.monotonic() - mark
    mark = time.monotonic()
    vm_args = ["-q", f"--junitxml={junit['vm']}", f"--visa-facts-out={tonight.facts}"]
    image_tests.test_qcow2(spec, settings, qcow2=built.path, pytest_args=vm_args)
    steps["test-qcow2"] = time.monotonic() - mark
    return built


def _security_fixes(
    qcow2_path: Path, updates: list[tuple[str, str, str]], work: Path, spec: ImageSpec
) -> dict[str, list[str] | None]:
    """{package: CVE ids} of each security update, read from the changelogs in the image's own root filesystem."""
    if not updates:
        return {}
    try:
        with mounts.mounted_root(qcow2_path, scratch=work / "changelogs") as root:
            return fixes.read_fixes(root, updates)
    except VisaBuildError as error:  # the release stands; only the CVE ids are missing
        progress.note(f"{spec.name}: CHANGES.md without the CVEs its security updates fix: {error}")
        return {}


def _failed(spec: ImageSpec, settings: Settings, tonight: _Tonight, error: VisaBuildError | OSError) -> Night:
    """The failed night's record (build.json, ERROR.txt, the JUnit files and this run's logs), when it can be
    written; the Night says why it failed either way."""
    tip = error.tip if isinstance(error, VisaBuildError) else "free space or fix the permissions of the path named"
    state = archive_state.state_key(tonight.states) if tonight.states else "no-state"
    try:
        build = build_json.write(
            spec,
            settings,
            tonight.states,
            tonight.built,
            tonight.steps,
            tonight.junit,
            verdict="failed",
            error=str(error),
        )
        files: dict[str, str | Path] = {"build.json": build, "ERROR.txt": f"{error}\nTIP {tip or ''}\n"}
        files |= {f"junit/{target}.xml": path for target, path in tonight.junit.items() if path.is_file()}
        files |= {f"logs/{log.name}": log for log in _logs_since(settings.log_dir, tonight.clock)}
        folder = record.write(
            settings.release_dir / spec.name, record.folder_name(tonight.started, state, failed=True), files
        )
    except (VisaBuildError, OSError) as unwritten:
        return Night(spec.name, "failed", f"{spec.name}: FAILED ({error}); no record could be written: {unwritten}")
    return Night(spec.name, "failed", f"{spec.name}: FAILED ({error}); record {folder}", folder)


def _prune(root: Path, spec: ImageSpec, settings: Settings) -> None:
    for name in record.prune(root, settings.keep_releases):
        progress.note(f"{spec.name}: removed release {name} (visa.keep_releases = {settings.keep_releases})")


def _logs_since(log_dir: Path, clock: float) -> list[Path]:
    """The log files written during this run (the nightly started `clock` seconds of time.monotonic() ago)."""
    since = time.time() - (time.monotonic() - clock)
    return (
        sorted(p for p in log_dir.glob("*") if p.is_file() and p.stat().st_mtime >= since) if log_dir.is_dir() else []
    )
