"""A build keeps its spec's newest visa.keep_images qcow2s under build/images, the one just built always among
them; older ones go with their files and, when nothing else uses them, the doubles they were filled beside."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from visa_build import kept_images, runs
from visa_build.errors import VisaBuildError

SIDECARS = (".qcow2", ".qcow2.sha256", ".build-key.pub", ".manifest.json", ".double")


def built(folder: Path, key: str, age: int, double: str) -> Path:
    """A qcow2 of spec visa-ci with the files beside it, built `age` hours ago beside the double `double`."""
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in SIDECARS:
        (folder / f"visa-ci-{key}{suffix}").write_text(f"{double}\n" if suffix == ".double" else key)
    qcow2 = folder / f"visa-ci-{key}.qcow2"
    os.utime(qcow2, (0, 1_000_000 - age * 3600))
    return qcow2


class Remover:
    def __init__(self) -> None:
        self.calls: list[tuple[list[str], str, set[str]]] = []

    def __call__(self, ids: list[str], *, build_dir_id: str, keep: set[str]) -> list[str]:
        self.calls.append((ids, build_dir_id, keep))
        return ids


def test_the_oldest_qcow2s_go_with_their_files_and_doubles(tmp_path: Path) -> None:
    folder = tmp_path / "images" / "visa-ci"
    old, older, oldest = (built(folder, key, age, f"sha256:{key}") for key, age in (("b", 2), ("c", 3), ("d", 4)))
    current = built(folder, "a", 5, "sha256:a")  # a cached build of older inputs: still the one in use
    other_spec = built(tmp_path / "images" / "visa-ci-noble", "e", 9, "sha256:e")
    remover = Remover()
    removed = kept_images.prune(current, 2, tmp_path, remove_images=remover)
    assert removed == [older, oldest], f"removed {removed}: the newest other qcow2 and the current one stay"
    left = sorted(p.name for p in folder.iterdir())
    assert left == sorted(f"visa-ci-{key}{suffix}" for key in "ab" for suffix in SIDECARS), left
    assert other_spec.is_file(), "another spec's qcow2 was removed"
    assert old.is_file()
    [(ids, build_dir_id, keep)] = remover.calls
    assert ids == ["sha256:c", "sha256:d"] and build_dir_id == runs.build_dir_id(tmp_path)
    assert {"sha256:a", "sha256:b", "sha256:e"} <= keep, f"the doubles of kept qcow2s are not kept: {keep}"


def test_keep_images_0_keeps_all_and_1_keeps_only_the_current(tmp_path: Path) -> None:
    folder = tmp_path / "images" / "visa-ci"
    current, old = built(folder, "a", 1, "sha256:a"), built(folder, "b", 2, "sha256:b")
    assert kept_images.prune(current, 0, tmp_path, remove_images=Remover()) == []
    assert kept_images.prune(current, 1, tmp_path, remove_images=Remover()) == [old]
    assert current.is_file() and not old.exists()


def test_an_engine_that_does_not_answer_leaves_the_files_removed_and_the_build_standing(tmp_path: Path) -> None:
    folder = tmp_path / "images" / "visa-ci"
    current, old = built(folder, "a", 1, "sha256:a"), built(folder, "b", 2, "sha256:b")

    def no_engine(*args: Any, **kwargs: Any) -> list[str]:
        raise VisaBuildError("the Docker engine does not answer")

    assert kept_images.prune(current, 1, tmp_path, remove_images=no_engine) == [old]
    assert not list(folder.glob("visa-ci-b*"))
