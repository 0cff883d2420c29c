"""`clean` removes caches, images and logs, and keeps the release records, at the default place and elsewhere (and
the runs' locks: a run starting meanwhile waits on them); it removes the Docker images rebuilds left untagged, but
the doubles of the qcow2s it keeps."""

from __future__ import annotations

from pathlib import Path

import pytest

from visa_build import jobs
from visa_build.settings import make_settings


def _recorded(calls: list[set[str]]) -> jobs.ImageRemover:
    """A stand-in for removing Docker's untagged images that records which ids it was told to keep."""

    def remove(build_dir_id: str, *, keep: set[str]) -> list[str]:
        calls.append(keep)
        return []

    return remove


@pytest.mark.parametrize("release_dir", ["", "history/releases"])
def test_clean_keeps_the_release_records(tmp_path: Path, release_dir: str) -> None:
    build = tmp_path / "build"
    settings = make_settings(build_dir=str(build), release_dir=str(build / release_dir) if release_dir else "")
    record = settings.release_dir / "visa-ci" / "20261127T010000Z-abc" / "build.json"
    record.parent.mkdir(parents=True)
    record.write_text("{}")
    for generated in ("cache/base/disk.qcow2", "images/visa-ci/visa-ci-1.qcow2", "logs/build.log", "history/x.txt"):
        (build / generated).parent.mkdir(parents=True, exist_ok=True)
        (build / generated).write_text("x")
    kept_images: list[set[str]] = []
    jobs.clean(settings, remove_images=_recorded(kept_images))
    assert kept_images == [set()], "with the qcow2s gone, no untagged double is needed"
    assert record.read_text() == "{}", "clean removed a release record"
    left = sorted(str(p.relative_to(build)) for p in build.rglob("*") if p.is_file() and p.parent.name != "runs")
    kept_beside = ["history/x.txt"] if release_dir else []  # a folder holding the release folder is kept whole
    assert left == sorted([str(record.relative_to(build)), *kept_beside]), f"clean left {left}"


def test_clean_caches_only_keeps_images_and_logs(tmp_path: Path) -> None:
    build = tmp_path / "build"
    settings = make_settings(build_dir=str(build))
    for generated in ("cache/base/disk.qcow2", "images/visa-ci/visa-ci-1.qcow2", "logs/build.log"):
        (build / generated).parent.mkdir(parents=True, exist_ok=True)
        (build / generated).write_text("x")
    (build / "images/visa-ci/visa-ci-1.double").write_text("sha256:d0b1e\n")
    kept_images: list[set[str]] = []
    jobs.clean(settings, caches_only=True, remove_images=_recorded(kept_images))
    assert kept_images == [{"sha256:d0b1e"}], "the double a kept qcow2 was filled beside must stay"
    left = sorted(str(p.relative_to(build)) for p in build.rglob("*") if p.is_file() and p.parent.name != "runs")
    assert left == ["images/visa-ci/visa-ci-1.double", "images/visa-ci/visa-ci-1.qcow2", "logs/build.log"], (
        f"clean --caches-only left {left}"
    )
