"""A site's own repository: its spec inherits one of visa-build's (bad inheritance is a one-line ConfigError),
`init` writes the repository, and visa_build/resources.py finds visa-build's own files and working folder."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers import IMAGES, REPO
from visa_build import resources
from visa_build.errors import ConfigError
from visa_build.image_spec import load_image_spec, project_specs
from visa_build.image_tests import suite_argv
from visa_build.lock_files import lock_image
from visa_build.settings import make_settings
from visa_build.site_repo import write_site_repository


def _site_spec(tmp_path: Path, toml: str) -> Path:
    folder = tmp_path / "images" / "site"
    folder.mkdir(parents=True)
    (folder / "image.toml").write_text(toml)
    return folder


def test_a_spec_inherits_the_project_spec_under_its_own_name(tmp_path: Path) -> None:
    folder = _site_spec(
        tmp_path,
        '[image]\nname = "ill-jupyter"\ninherits = "visa-build:visa-jupyter-noble"\n[service]\nmode = "dev"\n',
    )
    spec, base = load_image_spec(folder), load_image_spec(IMAGES / "visa-jupyter-noble")
    assert (spec.name, spec.directory, spec.inherits) == ("ill-jupyter", folder, "visa-build:visa-jupyter-noble")
    assert spec.jupyterlab == base.jupyterlab and spec.data_analysis == base.data_analysis
    assert (spec.distro, spec.desktop, spec.lab_settings) == (base.distro, base.desktop, base.lab_settings)
    assert spec.service.mode == "dev" and spec.service.port == base.service.port
    assert not spec.build_blockers()


@pytest.mark.parametrize("value", ["visa-build:nonesuch", "visa-jupyter-noble", "visa-build:../images/ci", "42"])
def test_inheriting_no_project_spec_lists_the_specs_there_are(tmp_path: Path, value: str) -> None:
    folder = _site_spec(tmp_path, f'[image]\nname = "site"\ninherits = "{value}"\n'.replace('"42"', "42"))
    with pytest.raises(ConfigError) as refused:
        load_image_spec(folder)
    message = str(refused.value)
    assert "[image] inherits" in message and "\n" not in message
    assert "visa-build:ci, visa-build:ci-noble" in message and "visa-build:visa-jupyter-noble" in message
    assert refused.value.tip


@pytest.mark.parametrize(
    ("table", "refused"),
    [
        ('[image]\nrelease = "bookworm"', "[image] release"),
        ('[jupyterlab]\nlock = "../../my.lock"', "[jupyterlab] lock"),
        ('[data_analysis]\nimports = ["os"]', "[data_analysis] imports"),
        ("[desktop]\nenabled = false", "[desktop] enabled"),
        ("[service]\nport2 = 1", "[service] port2"),
    ],
)
def test_a_spec_that_inherits_sets_only_its_name_and_service(tmp_path: Path, table: str, refused: str) -> None:
    toml = f'[image]\nname = "site"\ninherits = "visa-build:ci"\n{table}\n'.replace("\n[image]\n", "\n")
    with pytest.raises(ConfigError) as error:
        load_image_spec(_site_spec(tmp_path, toml))
    assert f"{refused} comes from the inherited spec visa-build:ci and cannot be set here" in str(error.value)
    assert refused in (error.value.tip or "")


def test_the_locks_of_an_inherited_spec_are_not_relocked(tmp_path: Path) -> None:
    spec = load_image_spec(_site_spec(tmp_path, '[image]\nname = "site"\ninherits = "visa-build:ci"\n'))
    with pytest.raises(ConfigError, match="site inherits visa-build:ci, whose lock files are visa-build's own"):
        lock_image(spec, runner=lambda *args, **kwargs: pytest.fail("nothing may be locked"))


def test_init_writes_a_site_repository_whose_spec_loads(tmp_path: Path) -> None:
    site = tmp_path / "ill"
    written = write_site_repository(site, name="ill-jupyter", base="ci-noble", version="1.2.3")
    assert {str(p.relative_to(site)) for p in written} >= {
        "images/ill-jupyter/image.toml",
        "requirements.txt",
        "invoke.yaml",
        "visa-build",
        "README.md",
        ".gitlab-ci.yml",
        ".github/workflows/visa-build-nightly.yml",
    }
    spec = load_image_spec(site / "images/ill-jupyter")
    assert (spec.name, spec.inherits) == ("ill-jupyter", "visa-build:ci-noble")
    assert "\nvisa-build==1.2.3\n" in (site / "requirements.txt").read_text()
    assert yaml.safe_load((site / "invoke.yaml").read_text())["visa"]["image"] == "images/ill-jupyter"
    assert (site / "visa-build").stat().st_mode & 0o111
    gitlab = yaml.safe_load((site / ".gitlab-ci.yml").read_text())
    assert gitlab[".visa-build-specs"]["parallel"]["matrix"] == [{"VISA_IMAGE": ["images/ill-jupyter"]}]
    github = yaml.safe_load((site / ".github/workflows/visa-build-nightly.yml").read_text())
    assert {str(job["strategy"]["matrix"]["image"]) for job in github["jobs"].values()} == {"['images/ill-jupyter']"}
    assert len((site / "README.md").read_text().splitlines()) <= 16


def test_the_site_wrapper_passes_shellcheck(tmp_path: Path) -> None:
    write_site_repository(tmp_path / "site", name="site", base="ci", version="1.2.3")
    checked = subprocess.run(["shellcheck", "visa-build"], cwd=tmp_path / "site", capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout


def test_init_refuses_a_folder_that_is_not_empty_or_a_file(tmp_path: Path) -> None:
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine\n")
    (tmp_path / "file").write_text("")
    for folder in (tmp_path / "used", tmp_path / "file"):
        with pytest.raises(ConfigError, match="already exists and is not an empty folder") as refused:
            write_site_repository(folder, name="site", base="ci", version="1.2.3")
        assert refused.value.tip
    assert (tmp_path / "used" / "notes.txt").read_text() == "mine\n"
    assert write_site_repository(tmp_path / "empty-is-fine", name="site", base="ci", version="1.2.3")


@pytest.mark.parametrize(
    ("name", "base", "complaint"),
    [
        ("Site Image", "ci", "'Site Image' is not an image name"),
        ("site", "nonesuch", "visa-build has no spec 'nonesuch' to inherit; its specs: ci, ci-noble"),
    ],
)
def test_init_refuses_a_bad_name_or_base_and_writes_nothing(
    tmp_path: Path, name: str, base: str, complaint: str
) -> None:
    with pytest.raises(ConfigError, match=complaint):
        write_site_repository(tmp_path / "site", name=name, base=base, version="1.2.3")
    assert not (tmp_path / "site").exists()


def test_project_specs_are_the_spec_folders_of_images() -> None:
    assert project_specs() == sorted(p.parent.name for p in IMAGES.glob("*/image.toml"))


def test_in_a_checkout_the_project_files_and_the_workspace_are_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert resources.project_files() == resources.checkout() == resources.workspace() == REPO
    assert make_settings(build_dir="build").build_dir == REPO / "build"  # not the current folder's


def test_the_suites_run_from_the_project_files_with_their_cache_in_the_build_folder(tmp_path: Path) -> None:
    settings = make_settings(build_dir=str(tmp_path / "build"))
    spec = load_image_spec(IMAGES / "ci")
    argv = suite_argv(["--hosts=docker://x"], ["tests/infra", "tests/double"], settings, spec, "http://proxy")
    assert argv[3:7] == [
        str(REPO / "tests/infra"),
        str(REPO / "tests/double"),
        f"--rootdir={REPO}",
        "-o",
    ]
    assert argv[7] == f"cache_dir={tmp_path / 'build' / 'pytest-cache'}"


def test_only_the_cli_module_imports_invoke() -> None:
    importers = []
    for module in (REPO / "visa_build").rglob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(name.split(".")[0] == "invoke" for name in names):
                importers.append(str(module.relative_to(REPO)))
    assert sorted(set(importers)) == ["visa_build/cli.py"]
