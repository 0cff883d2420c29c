"""Wheelhouse helpers: platform tags, lock splitting, pip argv, and cache verification."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from tests.helpers import IMAGES
from visa_build import sdists
from visa_build.errors import CommandError, VisaBuildError
from visa_build.image_spec import FromSource, load_image_spec
from visa_build.process import Result
from visa_build.wheelhouse import (
    UV_VERSION,
    UV_WHEEL_SHA256,
    _download,
    bytecode_tag,
    carries_bytecode,
    damaged_files,
    download_argv,
    lock_entries,
    platform_tags,
    write_manifest,
)

LOCK = """\
anyio==4.16.0 \\
    --hash=sha256:aaa \\
    --hash=sha256:bbb
    # via httpx
PeakUtils==1.3.5 \\
    --hash=sha256:ccc
"""


def test_platform_tags_cover_older_manylinux() -> None:
    tags = platform_tags("2.36")
    assert tags[0] == "manylinux_2_36_x86_64"
    assert {"manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"} <= set(tags)
    assert "manylinux_2_37_x86_64" not in tags


def test_lock_entries_keep_hash_lines_and_drop_comments() -> None:
    entries = lock_entries(LOCK)
    assert set(entries) == {"anyio", "peakutils"}
    assert entries["anyio"].count("--hash=") == 2 and "# via" not in entries["anyio"]


def test_download_argv_is_binary_only_for_the_image_python(tmp_path: Path) -> None:
    argv = download_argv(tmp_path / "r.txt", tmp_path / "w", python="3.11.2", glibc="2.36")
    for flag in ("--only-binary=:all:", "--require-hashes", "--no-deps"):
        assert flag in argv
    assert argv[argv.index("--python-version") + 1] == "3.11.2"
    assert argv.count("--platform") == len(platform_tags("2.36"))


def test_manifest_detects_damage(tmp_path: Path) -> None:
    (tmp_path / "a-1-py3-none-any.whl").write_bytes(b"one")
    (tmp_path / "b-1-py3-none-any.whl").write_bytes(b"two")
    write_manifest(tmp_path)
    assert damaged_files(tmp_path) == []
    (tmp_path / "b-1-py3-none-any.whl").write_bytes(b"tampered")
    (tmp_path / "a-1-py3-none-any.whl").unlink()
    assert sorted(damaged_files(tmp_path)) == ["a-1-py3-none-any.whl", "b-1-py3-none-any.whl"]
    (tmp_path / "SHA256SUMS").unlink()
    assert damaged_files(tmp_path) == ["SHA256SUMS (missing)"]


def test_a_planted_wheel_makes_the_wheelhouse_damaged(tmp_path: Path) -> None:
    (tmp_path / "a-1-py3-none-any.whl").write_bytes(b"one")
    write_manifest(tmp_path)
    (tmp_path / "evil-1.0-cp311-cp311-manylinux_2_36_x86_64.whl").write_bytes(b"planted")
    assert damaged_files(tmp_path) == ["evil-1.0-cp311-cp311-manylinux_2_36_x86_64.whl (not listed)"]


@pytest.mark.parametrize("kind", ["symlink", "FIFO"])
def test_a_listed_wheel_that_is_not_a_regular_file_is_damage(tmp_path: Path, kind: str) -> None:
    wheel, host_file = tmp_path / "house" / "a-1-py3-none-any.whl", tmp_path / "host-file"
    wheel.parent.mkdir()
    wheel.write_bytes(b"one")
    write_manifest(wheel.parent)
    wheel.unlink()
    if kind == "symlink":
        host_file.write_bytes(b"one")  # the listed content, in a file outside the wheelhouse
        wheel.symlink_to(host_file)
    else:
        os.mkfifo(wheel)  # never opened: hashing it would block
    assert damaged_files(wheel.parent) == ["a-1-py3-none-any.whl"]
    write_manifest(wheel.parent)
    assert "a-1-py3-none-any.whl (not listed)" in damaged_files(wheel.parent), "a manifest listed a " + kind


@pytest.mark.parametrize(
    ("text", "finding"),
    [
        ("", "SHA256SUMS (lists no wheel)"),
        ("0123", "SHA256SUMS (line 1 is damaged)"),
        ("a" * 64 + "  ../a-1-py3-none-any.whl\n", "SHA256SUMS (line 1 is damaged)"),
    ],
)
def test_a_truncated_or_garbled_manifest_is_damage_not_a_crash(tmp_path: Path, text: str, finding: str) -> None:
    (tmp_path / "a-1-py3-none-any.whl").write_bytes(b"one")
    write_manifest(tmp_path)
    (tmp_path / "SHA256SUMS").write_text(text)
    assert finding in damaged_files(tmp_path)


def test_each_lock_is_downloaded_on_its_own(tmp_path: Path) -> None:
    """The JupyterLab venv and the data-analysis environment may pin a shared package differently (trixie's
    JupyterLab lock has numpy 2.5.5, its data-analysis lock numpy 2.4.6): both versions must be fetched."""
    spec = load_image_spec(IMAGES / "visa-jupyter-trixie")
    asked: list[str] = []

    def runner(argv: list[str], **_: object) -> Result:
        if "-r" in argv:
            asked.append(Path(argv[argv.index("-r") + 1]).read_text())
        return Result(argv, 0, [])

    dest = tmp_path / "house"
    dest.mkdir()
    _download(spec, dest, runner, source_image=lambda: pytest.fail("nothing is built from source here"))
    numpy = [[line for line in text.splitlines() if line.startswith("numpy==")] for text in asked]
    assert numpy == [["numpy==2.5.5 \\"], ["numpy==2.4.6 \\"], []], f"numpy pins asked for, per download: {numpy}"
    assert asked[-1] == f"uv=={UV_VERSION} --hash=sha256:{UV_WHEEL_SHA256}\n", "uv must be fetched pinned by hash"


def without_a_wheel(package: str) -> object:
    """A pip that finds no wheel for `package` (as for nglview and ufit, published only as sdists)."""

    def runner(argv: list[str], **_: object) -> Result:
        if "download" in argv and f"{package}==" in Path(argv[argv.index("-r") + 1]).read_text():
            raise CommandError(argv, 1, [f"ERROR: No matching distribution found for {package}==1.11.1"])
        return Result(argv, 0, [])

    return runner


def test_a_package_without_a_wheel_that_the_spec_does_not_allow_stops_the_build(tmp_path: Path) -> None:
    spec = replace(load_image_spec(IMAGES / "visa-jupyter"), from_source=FromSource(("nglview",), None))
    with pytest.raises(VisaBuildError) as error:
        _download(
            spec,
            tmp_path,
            without_a_wheel("ufit"),  # type: ignore[arg-type]
            source_image=lambda: pytest.fail("nothing may be built"),
        )
    assert "ufit (locked) has no wheel" in str(error.value) and "does not allow building it from source" in str(
        error.value
    ), str(error.value)
    assert "build_from_source" in (error.value.tip or "")


def test_an_allowed_package_without_a_wheel_is_built_from_source_in_the_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = load_image_spec(IMAGES / "visa-jupyter")
    built: list[tuple[str, Path, str]] = []

    def build_wheels(
        requirements: str, tools_lock: Path, dest: Path, *, python: str, image: str, runner: object
    ) -> list[str]:
        built.append((requirements, tools_lock, image))
        return ["ufit-1.11.1-py3-none-any.whl"]

    monkeypatch.setattr(sdists, "build_wheels", build_wheels)
    _download(spec, tmp_path, without_a_wheel("ufit"), source_image=lambda: "visa-build/base:bookworm-test")  # type: ignore[arg-type]
    assert len(built) == 1, built
    requirements, tools_lock, image = built[0]
    assert requirements.startswith("ufit==1.11.1 \\\n    --hash=sha256:"), requirements
    assert tools_lock == spec.from_source.tools_lock and image == "visa-build/base:bookworm-test"


@pytest.mark.parametrize("folder", ["ci", "ci-trixie", "ci-noble"])
def test_bytecode_goes_into_the_wheels_when_the_hosts_python_has_the_images_series(folder: str) -> None:
    """A Debian 12 host (3.11) compiles for bookworm images, a Debian 13 host (3.13) for trixie's, an Ubuntu 24.04
    host (3.12) for noble's; the wheelhouse's key says which bytecode its wheels carry."""
    spec = load_image_spec(IMAGES / folder)
    same_series = spec.python.split(".")[:2] == [str(part) for part in sys.version_info[:2]]
    assert carries_bytecode(spec) is same_series, (spec.python, sys.version_info)
    assert bytecode_tag(spec) == (f"checked-hash:{sys.implementation.cache_tag}" if same_series else "none")
