"""Image specs load into frozen dataclasses; a bad spec is a ConfigError naming the key and the fix."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.helpers import IMAGES
from visa_build.errors import ConfigError
from visa_build.image_spec import load_image_spec, normalise


def test_visa_jupyter_spec_is_buildable() -> None:
    spec = load_image_spec(IMAGES / "visa-jupyter")
    assert spec.build_blockers() == []
    assert {p.name for p in spec.jupyterlab.top_level} >= {
        "jupyterlab",
        "ipywidgets",
        "jupyterlab-widgets",
        "ipympl",
    }
    assert spec.data_analysis.display_name == "Data Analysis"
    locked = {p.name for p in spec.data_analysis.pins}
    assert {"ipykernel", "rdkit", "pyqt5", "peakutils", "ufit", "jscatter"} <= locked


def test_seed_2020_parses_but_says_what_it_needs() -> None:
    spec = load_image_spec(IMAGES / "seed-2020")
    assert [str(p) for p in spec.jupyterlab.top_level] == ["jupyterlab==2.2.9", "ipywidgets==7.5.1"]
    blockers = "\n".join(spec.build_blockers())
    assert "3.6.9" in blockers and "conda" in blockers and "conda-forge" in blockers
    assert "jupyter-matplotlib@0.7.4" in blockers and "Node build" in blockers


def test_normalise_names() -> None:
    assert normalise("PeakUtils") == normalise("peakutils") == "peakutils"
    assert normalise("jupyterlab_widgets") == normalise("JupyterLab.Widgets") == "jupyterlab-widgets"


@pytest.fixture
def spec_copy(tmp_path: Path) -> Path:
    target = tmp_path / "visa-jupyter"
    shutil.copytree(IMAGES / "visa-jupyter", target)
    return target


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'release = "bookworm"',
            'release = "buster"',
            "[image] release = 'buster' is not a release visa-build knows; known: bookworm (debian 12), trixie",
        ),
        (
            'release = "bookworm"',
            'debian = "bookworm"',
            "[image] debian = 'bookworm' is not valid; write distribution = \"debian\" and release = 'bookworm'",
        ),
        ('distribution = "debian"', 'distribution = "ubuntu"', "[image] distribution = 'ubuntu' is not valid"),
        ('python = "3.11.2"', 'python = "3.11"', "[image] python = '3.11' is not valid"),
        ('name = "visa-jupyter"', 'name = "Visa Jupyter"', "[image] name = 'Visa Jupyter' is not valid"),
        ("port = 8888", "port = 70000", "[service] port = 70000 is not valid"),
        ("port = 8888", 'port = "8888"', "[service] port = '8888' is not valid; expected a int"),
        ('mode = "prod"', 'mode = "debug"', "[service] mode = 'debug' is not valid; allowed: prod, dev"),
        ('lock = "jupyterlab.lock"\n', "", "[jupyterlab] lock is missing"),
        ("[service]", "[services]", "[services] = '...' is not valid"),
        ('imports = ["Cython"', 'imports = ["import os"', "[data_analysis] imports = 'import os' is not valid"),
    ],
)
def test_bad_image_toml_names_the_key(spec_copy: Path, old: str, new: str, expected: str) -> None:
    toml = spec_copy / "image.toml"
    toml.write_text(toml.read_text().replace(old, new, 1))
    with pytest.raises(ConfigError) as error:
        load_image_spec(spec_copy)
    assert expected in str(error.value)
    assert error.value.tip


def test_unpinned_requirement_is_refused(spec_copy: Path) -> None:
    (spec_copy / "jupyterlab.in").write_text("jupyterlab>=4\n")
    with pytest.raises(ConfigError, match=r"jupyterlab.in:1: 'jupyterlab>=4' is not pinned"):
        load_image_spec(spec_copy)


def test_lock_out_of_date_is_refused(spec_copy: Path) -> None:
    requirements = spec_copy / "jupyterlab.in"
    requirements.write_text(requirements.read_text().replace("ipywidgets==8.1.9", "ipywidgets==8.1.5"))
    with pytest.raises(ConfigError, match=r"out of date: ipywidgets==8.1.5 is asked for but the lock has ipywidgets=="):
        load_image_spec(spec_copy)


def test_missing_environment_file(spec_copy: Path) -> None:
    (spec_copy / "environment.yml").unlink()
    with pytest.raises(ConfigError, match="environment.yml does not exist"):
        load_image_spec(spec_copy)


def test_conda_package_blocks_the_build(spec_copy: Path) -> None:
    env = spec_copy / "environment.yml"
    env.write_text(env.read_text().replace("  - pip\n", "  - pip\n  - hdf5\n", 1))
    blockers = load_image_spec(spec_copy).build_blockers()
    assert any("needs conda" in b and "hdf5" in b for b in blockers), blockers


def test_missing_lock_blocks_the_build(spec_copy: Path) -> None:
    (spec_copy / "data-analysis.lock").unlink()
    blockers = load_image_spec(spec_copy).build_blockers()
    assert any("data-analysis lock file" in b and "./visa-build lock-files" in b for b in blockers), blockers


def test_lab_settings_are_read_from_the_spec() -> None:
    spec = load_image_spec(IMAGES / "visa-jupyter")
    overrides = json.loads(spec.lab_settings.overrides)
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false", "news must be off"
    assert "@jupyterlab/extensionmanager-extension" in spec.lab_settings.disabled


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ('{"fetchNews": "false"', "jupyterlab-settings.json is not valid JSON"),
        ('["@jupyterlab/apputils-extension:notification"]', "must hold a JSON object"),
        ('{"fetchNews": {"x": 1}}', "'fetchNews' is not a JupyterLab settings plugin id"),
        (
            '{"@jupyterlab/apputils-extension": {"fetchNews": "false"}}',
            "'@jupyterlab/apputils-extension' is not a JupyterLab settings plugin id",
        ),
        ('{"@jupyterlab/apputils-extension:notification": "false"}', "must map to an object of settings"),
    ],
)
def test_bad_lab_settings_name_the_file_and_key(spec_copy: Path, settings: str, expected: str) -> None:
    (spec_copy / "jupyterlab-settings.json").write_text(settings)
    with pytest.raises(ConfigError, match=re.escape(expected)) as error:
        load_image_spec(spec_copy)
    assert str(spec_copy / "jupyterlab-settings.json") in str(error.value) and error.value.tip


def test_bad_disabled_extension_is_refused(spec_copy: Path) -> None:
    toml = spec_copy / "image.toml"
    toml.write_text(toml.read_text().replace('disabled_extensions = ["', 'disabled_extensions = ["rm -rf /', 1))
    with pytest.raises(ConfigError, match=r"\[jupyterlab\] disabled_extensions = 'rm -rf /@jupyterlab"):
        load_image_spec(spec_copy)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('environment = "environment.yml"', 'environment = "../../environment.yml"'),
        ('environment = "environment.yml"', 'environment = "/etc/passwd"'),
        ('requirements = "jupyterlab.in"', 'requirements = "../../../etc/hostname"'),
    ],
)
def test_spec_paths_must_stay_inside_the_folder_of_specs(spec_copy: Path, old: str, new: str) -> None:
    toml = spec_copy / "image.toml"
    assert old in toml.read_text()
    toml.write_text(toml.read_text().replace(old, new, 1))
    with pytest.raises(ConfigError, match=f"name a file inside {spec_copy.parent}"):
        load_image_spec(spec_copy)


def test_a_symlink_out_of_the_specs_folder_is_refused(
    spec_copy: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("elsewhere") / "outside.yml"
    shutil.copyfile(spec_copy / "environment.yml", outside)
    (spec_copy / "environment.yml").unlink()
    (spec_copy / "environment.yml").symlink_to(outside)
    with pytest.raises(ConfigError, match=r"\[data_analysis\] environment = 'environment.yml' is not valid"):
        load_image_spec(spec_copy)


@pytest.mark.parametrize("name", ["{{pwd}}", 'Data "Analysis"', "it's", "Data\nAnalysis", "${HOME}", "a\\b", " ", ""])
def test_a_display_name_that_would_be_read_differently_is_refused(spec_copy: Path, name: str) -> None:
    toml = spec_copy / "image.toml"
    toml.write_text(toml.read_text().replace('display_name = "Data Analysis"', f"display_name = {json.dumps(name)}"))
    with pytest.raises(ConfigError, match=r"\[data_analysis\] display_name"):
        load_image_spec(spec_copy)


def test_a_display_name_with_accents_and_emoji_is_accepted(spec_copy: Path) -> None:
    toml = spec_copy / "image.toml"
    toml.write_text(toml.read_text().replace('display_name = "Data Analysis"', 'display_name = "Données 🔬"'))
    assert load_image_spec(spec_copy).data_analysis.display_name == "Données 🔬"
