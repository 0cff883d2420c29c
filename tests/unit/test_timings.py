"""The previous stage durations behind the Packer steps' ETA."""

from __future__ import annotations

from pathlib import Path

from visa_build import timings


def test_previous_duration_is_remembered_per_key(tmp_path: Path) -> None:
    assert timings.previous(tmp_path, "visa-ci/image/tcg") is None
    timings.record(tmp_path, "visa-ci/image/tcg", 163.04)
    timings.record(tmp_path, "visa-ci/jupyterlab/tcg", 154)
    assert timings.previous(tmp_path, "visa-ci/image/tcg") == 163.0
    assert timings.previous(tmp_path, "visa-ci/jupyterlab/tcg") == 154
    assert timings.previous(tmp_path, "visa-jupyter/image/tcg") is None


def test_unreadable_record_means_no_eta(tmp_path: Path) -> None:
    (tmp_path / "stage-seconds.json").write_text("{not json")
    assert timings.previous(tmp_path, "visa-ci/image/tcg") is None
    timings.record(tmp_path, "visa-ci/image/tcg", 10)  # replaces the damaged record
    assert timings.previous(tmp_path, "visa-ci/image/tcg") == 10


def test_eta_shows_the_previous_duration_when_known() -> None:
    assert timings.eta(42.4, None) == "[   42s]"
    assert timings.eta(42.4, 150.2) == "[   42s of ~150s]"
