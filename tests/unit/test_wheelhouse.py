"""Wheelhouse helpers: platform tags, lock splitting, pip argv, and cache verification."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from tests.helpers import IMAGES
from visa_build import bytecode, sdists, wheelhouse
from visa_build.errors import CommandError, VisaBuildError
from visa_build.image_spec import FromSource, ImageSpec, load_image_spec
from visa_build.process import Result
from visa_build.wheelhouse import (
    UV_VERSION,
    UV_WHEEL_SHA256,
    _download,
    bytecode_tag,
    carries_bytecode,
    damaged_files,
    download_argv,
    ensure_wheelhouse,
    lock_entries,
    platform_tags,
    wheel_store,
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
    _download(spec, dest, tmp_path / "store", set(), runner, lambda: pytest.fail("nothing is built from source here"))
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
            tmp_path / "store",
            set(),
            without_a_wheel("ufit"),  # type: ignore[arg-type]
            lambda: pytest.fail("nothing may be built"),
        )
    assert "ufit (locked) has no wheel" in str(error.value) and "does not allow building it from source" in str(
        error.value
    ), str(error.value)
    assert "build_from_source" in (error.value.tip or "")


def test_an_allowed_package_without_a_wheel_is_built_from_source_in_the_base_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sdist is built in the image's base; the next wheelhouse with the same sources and build tools (a pin
    change elsewhere) takes the built wheel from the store, and a damaged stored build is built again."""
    spec = load_image_spec(IMAGES / "visa-jupyter")
    built: list[tuple[str, Path, str]] = []

    def build_wheels(
        requirements: str, tools_lock: Path, dest: Path, *, python: str, image: str, runner: object
    ) -> list[str]:
        built.append((requirements, tools_lock, image))
        (dest / "ufit-1.11.1-py3-none-any.whl").write_bytes(b"built wheel")
        return ["ufit-1.11.1-py3-none-any.whl"]

    monkeypatch.setattr(sdists, "build_wheels", build_wheels)
    store, no_ufit_wheel = tmp_path / "store", without_a_wheel("ufit")
    for house in ("first", "second"):
        (tmp_path / house).mkdir()
        _download(spec, tmp_path / house, store, set(), no_ufit_wheel, lambda: "visa-build/base:bookworm-test")  # type: ignore[arg-type]
        assert (tmp_path / house / "ufit-1.11.1-py3-none-any.whl").read_bytes() == b"built wheel", house
    assert len(built) == 1, f"built again although sources and tools did not change: {built}"
    requirements, tools_lock, image = built[0]
    assert requirements.startswith("ufit==1.11.1 \\\n    --hash=sha256:"), requirements
    assert tools_lock == spec.from_source.tools_lock and image == "visa-build/base:bookworm-test"
    next(store.glob("built/*/ufit-1.11.1-py3-none-any.whl")).write_bytes(b"damaged")
    (tmp_path / "third").mkdir()
    _download(spec, tmp_path / "third", store, set(), no_ufit_wheel, lambda: "visa-build/base:bookworm-test")  # type: ignore[arg-type]
    assert len(built) == 2, "a stored build whose wheel changed was used"


def test_a_package_without_a_wheel_in_one_lock_is_downloaded_at_the_other_locks_pin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ufit 1.11.1 (JupyterLab's lock) has only an sdist, ufit 1.12.0 (data analysis's) a wheel: the first is built,
    the second downloaded, not skipped as "the package without a wheel"."""
    base = load_image_spec(IMAGES / "visa-jupyter")
    locks = {
        "jupyterlab": "ufit==1.11.1 \\\n    --hash=sha256:aaa\n",
        "data": "ufit==1.12.0 \\\n    --hash=sha256:bbb\n",
    }
    for name, text in locks.items():
        (tmp_path / f"{name}.lock").write_text(text)
    spec = replace(
        base,
        jupyterlab=replace(base.jupyterlab, lock=tmp_path / "jupyterlab.lock"),
        data_analysis=replace(base.data_analysis, lock=tmp_path / "data.lock"),
    )
    asked: list[str] = []
    built: list[str] = []

    def runner(argv: list[str], **_: object) -> Result:
        pins = Path(argv[argv.index("-r") + 1]).read_text()
        asked.append(pins)
        if "ufit==1.11.1" in pins:
            raise CommandError(argv, 1, ["ERROR: No matching distribution found for ufit==1.11.1"])
        return Result(argv, 0, [])

    def build_wheels(requirements: str, tools_lock: Path, dest: Path, **_: object) -> list[str]:
        built.append(requirements)
        return []

    monkeypatch.setattr(sdists, "build_wheels", build_wheels)
    (tmp_path / "house").mkdir()
    _download(spec, tmp_path / "house", tmp_path / "store", set(), runner, lambda: "visa-build/base:bookworm-test")
    assert any("ufit==1.12.0" in pins for pins in asked), f"data analysis's ufit was never downloaded: {asked}"
    assert built == [locks["jupyterlab"]], f"built from source: {built}"


def test_source_builds_are_one_unless_the_locks_pin_a_package_differently() -> None:
    ufit, nglview, ufit_other = (
        "ufit==1.11.1 --hash=sha256:a\n",
        "nglview==3.1 --hash=sha256:b\n",
        "ufit==1.12 --hash=sha256:c\n",
    )
    builds = wheelhouse._source_builds
    assert builds([{}, {}]) == []
    assert builds([{"ufit": ufit}, {"nglview": nglview, "ufit": ufit}]) == [ufit + nglview], "one build, each pin once"
    assert builds([{"ufit": ufit}, {"ufit": ufit_other}]) == [ufit, ufit_other], "two versions need two builds"


@pytest.mark.parametrize("folder", ["ci", "ci-trixie", "ci-noble"])
def test_bytecode_goes_into_the_wheels_when_the_hosts_python_has_the_images_series(folder: str) -> None:
    """A Debian 12 host (3.11) compiles for bookworm images, a Debian 13 host (3.13) for trixie's, an Ubuntu 24.04
    host (3.12) for noble's; the wheelhouse's key says which bytecode its wheels carry."""
    spec = load_image_spec(IMAGES / folder)
    same_series = spec.python.split(".")[:2] == [str(part) for part in sys.version_info[:2]]
    assert carries_bytecode(spec) is same_series, (spec.python, sys.version_info)
    assert bytecode_tag(spec) == (f"checked-hash:{sys.implementation.cache_tag}" if same_series else "none")


def test_a_pin_change_downloads_only_the_changed_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Wheels downloaded before are taken from the store when a lock still allows their sha256 and the image
    installs their tags; pip finds them in place and downloads only what changed. A stored wheel whose bytes no
    longer match its sha256, or one for another interpreter, is not taken."""
    index = {
        name: f"wheel {name}".encode()
        for name in (
            "attrs-25.1.0-py3-none-any.whl",
            "attrs-25.2.0-py3-none-any.whl",
            "idna-3.10-py3-none-any.whl",
            "idna-3.10-cp313-cp313-manylinux_2_17_x86_64.whl",
        )
    }
    digest = {name: hashlib.sha256(data).hexdigest() for name, data in index.items()}
    downloaded: list[str] = []
    monkeypatch.setattr(wheelhouse, "carries_bytecode", lambda spec: False)  # these wheels are not real zips

    def pip(argv: list[str], **_: object) -> Result:
        dest, pins = Path(argv[argv.index("-d") + 1]), Path(argv[argv.index("-r") + 1]).read_text()
        for name, data in index.items():
            wanted = digest[name] in pins and "cp313" not in name
            if wanted and not (dest / name).is_file():
                (dest / name).write_bytes(data)
                downloaded.append(name)
        return Result(argv, 0, [])

    def spec_with(attrs: str) -> ImageSpec:
        lock = tmp_path / f"attrs-{attrs}.lock"
        idna = [name for name in index if name.startswith("idna")]
        lock.write_text(
            f"attrs=={attrs} \\\n    --hash=sha256:{digest[f'attrs-{attrs}-py3-none-any.whl']}\n"
            f"idna==3.10 \\\n"
            + "".join(f"    --hash=sha256:{digest[name]} \\\n" for name in idna).rstrip(" \\\n")
            + "\n"
        )
        spec = load_image_spec(IMAGES / "ci")
        return replace(
            spec, jupyterlab=replace(spec.jupyterlab, lock=lock), data_analysis=replace(spec.data_analysis, lock=lock)
        )

    cache = tmp_path / "cache"
    ensure_wheelhouse(spec_with("25.1.0"), cache, source_image=lambda: "", runner=pip)
    assert sorted(downloaded) == ["attrs-25.1.0-py3-none-any.whl", "idna-3.10-py3-none-any.whl"]
    (wheel_store(cache) / digest["idna-3.10-cp313-cp313-manylinux_2_17_x86_64.whl"]).mkdir()
    cp313 = "idna-3.10-cp313-cp313-manylinux_2_17_x86_64.whl"
    (wheel_store(cache) / digest[cp313] / cp313).write_bytes(index[cp313])
    downloaded.clear()
    house = ensure_wheelhouse(spec_with("25.2.0"), cache, source_image=lambda: "", runner=pip)
    assert downloaded == ["attrs-25.2.0-py3-none-any.whl"], f"downloaded again: {downloaded}"
    assert not (house / cp313).exists(), "a wheel for another interpreter was taken into the wheelhouse"
    stored_idna = wheel_store(cache) / digest["idna-3.10-py3-none-any.whl"] / "idna-3.10-py3-none-any.whl"
    stored_idna.write_bytes(b"tampered")
    downloaded.clear()
    shutil.rmtree(wheelhouse.cache_path(cache, spec_with("25.1.0")))
    ensure_wheelhouse(spec_with("25.1.0"), cache, source_image=lambda: "", runner=pip)
    assert "idna-3.10-py3-none-any.whl" in downloaded, "a stored wheel whose bytes changed was taken"


def _module_wheel(name: str, version: str) -> bytes:
    """A real wheel of one module, `name`, as an index publishes it (no bytecode)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        wheel.writestr(f"{name}/__init__.py", f"VERSION = {version!r}\n")
        wheel.writestr(f"{name}-{version}.dist-info/RECORD", f"{name}/__init__.py,,\n")
    return buffer.getvalue()


def test_a_pin_change_compiles_only_the_changed_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With bytecode in the wheels, the store keeps each wheel compiled too: the next wheelhouse asks pip only for
    the changed pin, compiles only it, and takes the others with their bytecode. A compiled copy whose bytes no
    longer match its .sha256 is compiled again."""
    index = {
        f"{name}-{version}-py3-none-any.whl": _module_wheel(name, version)
        for name, version in (("attrs", "25.1.0"), ("attrs", "25.2.0"), ("idna", "3.10"))
    }
    digest = {name: hashlib.sha256(data).hexdigest() for name, data in index.items()}
    asked: list[str] = []
    compiled: list[str] = []
    compile_for_real = bytecode.add_bytecode_to_all
    monkeypatch.setattr(wheelhouse, "carries_bytecode", lambda spec: True)

    def add_bytecode_to_all(wheels: list[Path]) -> int:
        compiled.extend(wheel.name for wheel in wheels)
        return compile_for_real(wheels)

    monkeypatch.setattr(wheelhouse, "add_bytecode_to_all", add_bytecode_to_all)

    def pip(argv: list[str], **_: object) -> Result:
        dest, pins = Path(argv[argv.index("-d") + 1]), Path(argv[argv.index("-r") + 1]).read_text()
        asked.extend(line.split(" ")[0] for line in pins.splitlines() if "==" in line)
        for name, data in index.items():
            if digest[name] in pins:
                (dest / name).write_bytes(data)
        return Result(argv, 0, [])

    def spec_with(attrs: str) -> ImageSpec:
        lock = tmp_path / f"attrs-{attrs}.lock"
        lock.write_text(
            f"attrs=={attrs} \\\n    --hash=sha256:{digest[f'attrs-{attrs}-py3-none-any.whl']}\n"
            f"idna==3.10 \\\n    --hash=sha256:{digest['idna-3.10-py3-none-any.whl']}\n"
        )
        spec = load_image_spec(IMAGES / "ci")
        return replace(
            spec, jupyterlab=replace(spec.jupyterlab, lock=lock), data_analysis=replace(spec.data_analysis, lock=lock)
        )

    cache = tmp_path / "cache"
    ensure_wheelhouse(spec_with("25.1.0"), cache, source_image=lambda: "", runner=pip)
    assert sorted(compiled) == ["attrs-25.1.0-py3-none-any.whl", "idna-3.10-py3-none-any.whl"], compiled
    asked.clear()
    compiled.clear()
    house = ensure_wheelhouse(spec_with("25.2.0"), cache, source_image=lambda: "", runner=pip)
    assert {pin for pin in asked if not pin.startswith("uv==")} == {"attrs==25.2.0"}, f"pip asked for: {asked}"
    assert compiled == ["attrs-25.2.0-py3-none-any.whl"], f"compiled again: {compiled}"
    with zipfile.ZipFile(house / "idna-3.10-py3-none-any.whl") as idna:
        assert any(name.endswith(".pyc") for name in idna.namelist()), "idna was taken without its bytecode"
    stored = next(wheel_store(cache).glob(f"{digest['idna-3.10-py3-none-any.whl']}/*/idna-3.10-py3-none-any.whl"))
    stored.write_bytes(index["idna-3.10-py3-none-any.whl"])
    compiled.clear()
    shutil.rmtree(house)
    ensure_wheelhouse(spec_with("25.2.0"), cache, source_image=lambda: "", runner=pip)
    assert compiled == ["idna-3.10-py3-none-any.whl"], f"a damaged compiled copy was taken: {compiled}"
