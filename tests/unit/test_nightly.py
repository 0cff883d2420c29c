"""The nightly's failures (tests/nightly runs a whole night): every error of a spec's night becomes its failed
record and the other specs still run; a record holds its own run's logs; `--record-copy` never deletes what it
did not write."""

from __future__ import annotations

import contextlib
import errno
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from visa_build import archive_state, image_tests, jobs, nightly, qcow2, runs
from visa_build.errors import ConfigError, VisaBuildError
from visa_build.image_spec import ImageSpec, load_image_spec
from visa_build.process import run
from visa_build.release import build_json, record
from visa_build.resources import workspace
from visa_build.settings import Settings, make_publishing, make_settings

STATE = (archive_state.SuiteState("bookworm", "http://mirror/InRelease", "Thu, 26 Nov 2026", "ab" * 32),)


@pytest.fixture
def spec() -> ImageSpec:
    return load_image_spec(workspace() / "images" / "visa-jupyter")


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings under tmp_path; the night's tool versions are not asked for (no packer or QEMU here)."""
    monkeypatch.setattr(build_json, "_tool_versions", lambda build_dir: {})
    return make_settings(build_dir=str(tmp_path / "build"))


def full_disk(*args: Any, **kwargs: Any) -> Any:
    raise OSError(errno.ENOSPC, "No space left on device", "/build/cache/images")


def mirror_outage(*args: Any, **kwargs: Any) -> Any:
    raise VisaBuildError("the mirror did not answer for http://mirror/InRelease", tip="check visa.mirror")


def no_build_yet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The archive's state as read from a mirror, and the qcow2 it would build (nothing built yet)."""
    monkeypatch.setattr(archive_state, "read_state", lambda sources: STATE)
    monkeypatch.setattr(qcow2, "expected_path", lambda spec, settings, state: tmp_path / "visa-jupyter-k.qcow2")


@pytest.mark.parametrize(
    ("fault", "shown"),
    [("mirror outage", "the mirror did not answer"), ("full disk", "No space left on device")],
)
def test_every_error_of_a_night_becomes_its_failed_record(
    spec: ImageSpec, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str, shown: str
) -> None:
    if fault == "mirror outage":
        monkeypatch.setattr(archive_state, "read_state", mirror_outage)
    else:
        no_build_yet(monkeypatch, tmp_path)
        monkeypatch.setattr(qcow2, "build_qcow2", full_disk)
    earlier = settings.build_dir / "nightly" / spec.name / "junit-vm.xml"  # an earlier night's
    earlier.parent.mkdir(parents=True)
    earlier.write_text("<testsuites/>")
    night = nightly.run_nightly(spec, settings)
    assert night.verdict == "failed" and shown in night.summary, night
    assert night.folder is not None and night.folder.name.endswith("-failed"), night
    assert not (night.folder / "junit").exists(), "the record holds an earlier night's JUnit file"
    error = (night.folder / "ERROR.txt").read_text()
    assert shown in error and "\nTIP " in error, error
    assert json.loads((night.folder / "build.json").read_text())["verdict"] == "failed"
    assert record.latest(settings.release_dir / spec.name) is None


def test_a_record_holds_the_logs_of_its_own_run_only(
    spec: ImageSpec, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as other_run:  # a run side by side, writing its log as this night runs
        other_run.setattr(runs, "RUN_ID", "0ther0ne")
        theirs = settings.log_dir
    no_build_yet(monkeypatch, tmp_path)

    def build_then_fail(*args: Any, **kwargs: Any) -> Any:
        for folder, name in ((settings.log_dir, "packer-mine.log"), (theirs, "packer-theirs.log")):
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text("...\n")
        raise VisaBuildError("packer build failed (exit code 1)", tip="see the logs")

    monkeypatch.setattr(qcow2, "build_qcow2", build_then_fail)
    night = nightly.run_nightly(spec, settings)
    assert night.folder is not None, night
    logs = sorted(p.name for p in (night.folder / "logs").iterdir())
    assert logs == ["packer-mine.log"], f"the record holds the logs {logs}"


SYNCED = (archive_state.SuiteState("bookworm", "http://mirror/InRelease", "Fri, 27 Nov 2026", "cd" * 32),)


@pytest.mark.parametrize("archive", ["changed during the night", "unchanged"])
def test_a_night_that_fails_goes_once_more_only_when_the_archive_changed_meanwhile(
    spec: ImageSpec, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, archive: str
) -> None:
    reads = iter([STATE, SYNCED if archive == "changed during the night" else STATE])
    monkeypatch.setattr(archive_state, "read_state", lambda sources: next(reads))
    monkeypatch.setattr(qcow2, "expected_path", lambda spec, settings, state: tmp_path / "visa-jupyter-k.qcow2")
    built: list[str] = []

    def build_qcow2(spec: ImageSpec, settings: Settings, *, state: str) -> Any:
        built.append(state)
        if len(built) == 1:  # the first attempt builds; its double's suite fails
            first = tmp_path / "visa-jupyter-first.qcow2"
            run(["qemu-img", "create", "-q", "-f", "qcow2", str(first), "1M"], timeout=60)
            return SimpleNamespace(path=first)
        raise VisaBuildError("attempt 2 failed: 45-debian-updates.sh: apt read another state")

    def test_container(spec: ImageSpec, settings: Settings, *, pytest_args: list[str], state: str) -> None:
        (settings.build_dir / "nightly" / spec.name / "junit-container.xml").write_text("<testsuites/>")
        raise VisaBuildError("attempt 1 failed: 3 updates of bookworm-security are pending")

    monkeypatch.setattr(qcow2, "build_qcow2", build_qcow2)
    monkeypatch.setattr(image_tests, "test_container", test_container)
    night = nightly.run_nightly(spec, settings)
    first, second = archive_state.state_key(STATE), archive_state.state_key(SYNCED)
    assert night.verdict == "failed" and night.folder is not None, night
    if archive == "unchanged":
        assert built == [first], f"the night built {built}: a failure on an unchanged archive is its verdict"
        assert night.folder.name.endswith(f"-{first[:12]}-failed"), night.folder
    else:
        assert built == [first, second], f"the night built {built}, not once more on the archive's new state"
        assert night.folder.name.endswith(f"-{second[:12]}-failed"), f"{night.folder} names the stale state"
        build = json.loads((night.folder / "build.json").read_text())
        assert build["keys"]["debian_state"] == second, build["keys"]
        assert not (night.folder / "junit").exists(), "the record holds the first attempt's JUnit file"
        assert set(build["steps_seconds"]) == {"mirror check"}, f"steps of the first attempt: {build['steps_seconds']}"
        assert "qcow2" not in build.get("keys", {}), f"the first attempt's qcow2 in the record: {build['keys']}"
        error = (night.folder / "ERROR.txt").read_text()
        assert "attempt 2 failed" in error and "attempt 1 failed" in error, f"the record names not both: {error}"


def test_a_failing_spec_does_not_stop_the_next(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    nights = []

    @contextlib.contextmanager
    def image_run(settings: Settings, *, auto_fix: bool) -> Iterator[Any]:
        if settings.image_dir.name == "full":
            full_disk()
        yield SimpleNamespace(name=settings.image_dir.name)

    def run_nightly(spec: Any, settings: Settings) -> nightly.Night:
        nights.append(spec.name)
        return nightly.Night(spec.name, "unchanged", f"{spec.name}: nothing changed")

    monkeypatch.setattr(jobs, "image_run", image_run)
    monkeypatch.setattr(nightly, "run_nightly", run_nightly)
    failed = jobs.nightly_of(
        ["images/full", "images/fine"],
        lambda folder: make_settings(build_dir=str(settings.build_dir), image=folder),
        make_publishing(),
        auto_fix=False,
        record_copy=None,
    )
    assert failed == ["images/full"]
    assert nights == ["fine"], "the spec after the failing one did not run"


@pytest.mark.parametrize("folder", ["current folder", "project", "build folder", "build's parent", "releases", "in"])
def test_a_record_copy_into_a_folder_visa_build_needs_is_refused(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: str
) -> None:
    monkeypatch.chdir(tmp_path)
    given = {
        "current folder": Path("."),
        "project": workspace(),
        "build folder": settings.build_dir,
        "build's parent": settings.build_dir.parent.parent,
        "releases": settings.release_dir,
        "in": settings.release_dir / "visa-jupyter",
    }[folder]
    with pytest.raises(ConfigError, match="--record-copy") as refused:
        jobs.check_record_copy(given, settings)
    assert refused.value.tip
    jobs.check_record_copy(tmp_path / "record", settings)  # a folder of its own is fine


def test_a_record_copy_replaces_only_what_it_wrote(tmp_path: Path) -> None:
    night = record.write(
        tmp_path / "releases" / "visa-jupyter",
        "20261126T010000Z-k-failed",
        {"build.json": "{}\n", "ERROR.txt": "failed\n", "logs/packer.log": "...\n", "visa.qcow2": "QFI"},
    )
    copy = tmp_path / "work"
    (copy / "mine").mkdir(parents=True)
    (copy / "notes.txt").write_text("the user's\n")
    record.copy_without_image(night, copy)
    assert sorted(p.name for p in copy.iterdir()) == [
        ".visa-record-copy",
        "ERROR.txt",
        "build.json",
        "logs",
        "mine",
        "notes.txt",
    ]
    record.copy_without_image(None, copy, no_change="visa-jupyter: nothing changed")
    assert sorted(p.name for p in copy.iterdir()) == [".visa-record-copy", "NO-CHANGE.txt", "mine", "notes.txt"]
    assert (copy / "notes.txt").read_text() == "the user's\n"


def test_a_record_copy_never_overwrites_a_file_it_did_not_write(tmp_path: Path) -> None:
    night = record.write(tmp_path / "releases" / "visa-jupyter", "20261126T010000Z-k-failed", {"build.json": "{}\n"})
    copy = tmp_path / "work"
    copy.mkdir()
    (copy / "build.json").write_text("the user's\n")
    with pytest.raises(ConfigError, match="build.json"):
        record.copy_without_image(night, copy)
    assert (copy / "build.json").read_text() == "the user's\n"
