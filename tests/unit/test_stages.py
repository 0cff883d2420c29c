"""The qcow2's cache keys. In-guest builds: each stage is rebuilt exactly when one of its own inputs changed.
Native builds: one key over every input (Docker's layer cache decides which layers rebuild)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import IMAGES
from visa_build import in_guest, qcow2, stages
from visa_build.image_spec import ImageSpec, load_image_spec
from visa_build.settings import Settings, make_settings

BASE = ("/cache/debian-bookworm.qcow2", "sha256:" + "1" * 64)


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """Copies of images/ci and the images/visa-jupyter files it names."""
    for name in ("ci", "visa-jupyter"):
        shutil.copytree(IMAGES / name, tmp_path / "images" / name)
    return tmp_path / "images"


def _settings(tmp_path: Path, **overrides: str) -> Settings:
    values = {
        "image": "images/ci",
        "build_dir": str(tmp_path / "build"),
        "installer": "uv",
        "base_image": "",
        "mirror": "http://deb.debian.org/debian",
        "wheelhouse_port": 8765,
        "fill": "guest",
        **overrides,
    }
    return make_settings(**values)


def _keys(images: Path, settings: Settings, base: tuple[str, str] = BASE, state: str = "s1") -> dict[str, str]:
    spec: ImageSpec = load_image_spec(images / "ci")
    keys = in_guest.stage_keys(spec, settings, qcow2.qcow2_context(spec, settings), base, state)
    return dict(zip((stage.name for stage in stages.STAGES), keys, strict=True))


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_same_inputs_same_keys(images: Path, tmp_path: Path) -> None:
    assert _keys(images, _settings(tmp_path)) == _keys(images, _settings(tmp_path))


def test_data_analysis_pin_change_keeps_the_jupyterlab_stage(images: Path, tmp_path: Path) -> None:
    before = _keys(images, _settings(tmp_path))
    lock = images / "ci" / "data-analysis.lock"
    _edit(lock, "numpy==2.4.6", "numpy==2.4.5")
    _edit(images / "ci" / "environment.yml", "numpy==2.4.6", "numpy==2.4.5")
    after = _keys(images, _settings(tmp_path))
    assert after["jupyterlab"] == before["jupyterlab"], "a data-analysis pin change must not rebuild the venv stage"
    assert after["image"] != before["image"], "a data-analysis pin change must rebuild the image stage"


@pytest.mark.parametrize(
    ("file", "old", "new"),
    [
        ("visa-jupyter/jupyterlab.lock", "--hash=sha256:", "--hash=sha256:0"),  # same versions, other wheels
        ("ci/image.toml", 'python = "3.11.2"', 'python = "3.11.9"'),
    ],
)
def test_jupyterlab_inputs_rebuild_both_stages(images: Path, tmp_path: Path, file: str, old: str, new: str) -> None:
    before = _keys(images, _settings(tmp_path))
    _edit(images / file, old, new)
    after = _keys(images, _settings(tmp_path))
    assert after["jupyterlab"] != before["jupyterlab"] and after["image"] != before["image"]


def test_image_only_inputs_keep_the_jupyterlab_stage(images: Path, tmp_path: Path) -> None:
    before = _keys(images, _settings(tmp_path))
    _edit(images / "ci" / "image.toml", 'display_name = "Data Analysis"', 'display_name = "Analysis"')
    _edit(images / "ci" / "image.toml", "port = 8888", "port = 8890")
    after = _keys(images, _settings(tmp_path))
    assert after["jupyterlab"] == before["jupyterlab"]
    assert after["image"] != before["image"], "the kernel's display name and the port are the image stage's"


@pytest.mark.parametrize(
    ("overrides", "base"),
    [({"installer": "pip"}, BASE), ({"disk_size": "20G"}, BASE), ({}, (BASE[0], "sha256:" + "2" * 64))],
)
def test_build_settings_and_base_rebuild_both_stages(
    images: Path, tmp_path: Path, overrides: dict[str, str], base: tuple[str, str]
) -> None:
    before = _keys(images, _settings(tmp_path))
    after = _keys(images, _settings(tmp_path, **overrides), base)
    assert after["jupyterlab"] != before["jupyterlab"] and after["image"] != before["image"]


def test_index_ca_bundle_is_an_input_of_the_pip_index_build(images: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("one\n")
    before = _keys(images, _settings(tmp_path, installer="pip-index", index_ca_bundle=str(bundle)))
    bundle.write_text("two\n")
    after = _keys(images, _settings(tmp_path, installer="pip-index", index_ca_bundle=str(bundle)))
    assert after["jupyterlab"] != before["jupyterlab"]


def _native_key(images: Path, settings: Settings, state: str = "s1") -> str:
    spec = load_image_spec(images / "ci")
    return qcow2.native_key(spec, settings, qcow2.qcow2_context(spec, settings), state)


@pytest.mark.parametrize(
    ("edits", "overrides"),
    [
        (
            (
                ("ci/data-analysis.lock", "numpy==2.4.6", "numpy==2.4.5"),
                ("ci/environment.yml", "numpy==2.4.6", "numpy==2.4.5"),
            ),
            {},
        ),
        ((("visa-jupyter/jupyterlab.lock", "--hash=sha256:", "--hash=sha256:0"),), {}),
        ((("ci/image.toml", "port = 8888", "port = 8890"),), {}),
        ((), {"compression": "zstd"}),
        ((), {"disk_size": "20G"}),
        ((), {"installer": "pip"}),
    ],
)
def test_native_key_holds_every_input(
    images: Path, tmp_path: Path, edits: tuple[tuple[str, str, str], ...], overrides: dict[str, str]
) -> None:
    native = {"fill": "native"}
    before = _native_key(images, _settings(tmp_path, **native))
    assert _native_key(images, _settings(tmp_path, **native)) == before, "the same inputs must give the same key"
    for file, old, new in edits:
        _edit(images / file, old, new)
    after = _native_key(images, _settings(tmp_path, **native, **overrides))
    assert after != before, f"{edits or overrides} did not change the natively filled qcow2's key"


def test_a_debian_archive_change_rebuilds_the_image_but_not_the_jupyterlab_stage(images: Path, tmp_path: Path) -> None:
    before, after = _keys(images, _settings(tmp_path)), _keys(images, _settings(tmp_path), state="s2")
    assert after["jupyterlab"] == before["jupyterlab"] and after["image"] != before["image"]
    native = _settings(tmp_path, fill="native")
    assert _native_key(images, native, "s2") != _native_key(images, native), "new Debian updates must rebuild"
