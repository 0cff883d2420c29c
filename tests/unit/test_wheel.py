"""The wheel built from pyproject.toml carries the whole package and the project's own files; installed into a
fresh venv, its `visa-build` command runs the tasks outside the checkout and `init` writes a site repository whose
spec loads, with every project file found inside the installed package."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.helpers import PROJECT_FILES, PROJECT_TREES, REPO

pytest_plugins = ("tests.installed",)  # the fixtures wheel and installed


def _tree_files(root: Path) -> dict[str, int]:
    """The project's files under `root` (laid out as this repository) and their modes."""
    files = [root / name for name in PROJECT_FILES]
    for tree in PROJECT_TREES:
        files += [p for p in (root / tree).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in files}


def test_the_wheel_holds_and_imports_every_module(wheel: Path, tmp_path: Path) -> None:
    in_wheel = {name for name in zipfile.ZipFile(wheel).namelist() if name.endswith(".py")}
    in_tree = {str(path.relative_to(REPO)) for path in (REPO / "visa_build").rglob("*.py")}
    assert in_tree <= in_wheel, f"modules missing from the wheel: {sorted(in_tree - in_wheel)}"
    package = {name for name in in_wheel if name.startswith("visa_build/") and "/_project/" not in name}
    modules = sorted(name.removesuffix(".py").removesuffix("/__init__").replace("/", ".") for name in package)
    # Import from the wheel alone: the checkout is neither the working directory nor on the path.
    script = (
        f"import importlib, sys; sys.path.insert(0, {str(wheel)!r}); "
        f"[importlib.import_module(m) for m in {modules!r}]; "
        f"import visa_build; assert visa_build.__file__.startswith({str(wheel)!r}), visa_build.__file__"
    )
    imported = subprocess.run(
        [sys.executable, "-I", "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert imported.returncode == 0, f"importing the wheel's modules failed:\n{imported.stderr[-3000:]}"


def test_the_wheel_carries_the_project_files_with_their_modes(wheel: Path) -> None:
    entries = {
        info.filename.removeprefix("visa_build/_project/"): stat.S_IMODE(info.external_attr >> 16)
        for info in zipfile.ZipFile(wheel).infolist()
        if info.filename.startswith("visa_build/_project/")
    }
    expected = _tree_files(REPO)
    missing = sorted(set(expected) - set(entries))
    assert not missing, f"project files missing from the wheel: {missing}"
    # The provisioning scripts run directly (Dockerfile RUN, Packer): their executable bits must survive.
    lost = sorted(name for name, mode in expected.items() if mode & 0o111 and not entries[name] & 0o111)
    assert not lost, f"executable bits lost in the wheel: {lost}"


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "NO_COLOR": "1"}  # no PYTHONPATH: nothing of the checkout
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


#: Run inside the scaffolded site repository with the installed package: where each lookup resolves.
_LOOKUPS = """
import json, sys
from pathlib import Path
from visa_build import build_context, jobs, packer, resources
from visa_build.image_spec import load_image_spec
from visa_build.image_tests import suite_argv
from visa_build.release.build_json import source_revision
from visa_build.settings import make_settings
spec = load_image_spec(Path("images/site"))
settings = make_settings(image="images/site")
json.dump({
    "name": spec.name, "inherits": spec.inherits, "release": spec.distro.codename,
    "lab_pins": len(spec.jupyterlab.pins), "lab_lock": str(spec.jupyterlab.lock), "desktop": spec.desktop is not None,
    "project_files": str(resources.project_files()), "templates": str(packer.TEMPLATES),
    "packages_file": str(build_context.PACKAGES_FILE), "suites": suite_argv([], ["tests/infra"], settings, spec, "")[3],
    "build_dir": str(settings.build_dir), "spec_of_settings": jobs.load_spec(settings).name,
    "revision": source_revision(),
}, sys.stdout)
"""


def test_the_installed_command_runs_outside_the_checkout(installed: Path, tmp_path: Path) -> None:
    work = tmp_path / "empty"
    work.mkdir()
    command = str(installed / "bin" / "visa-build")

    listed = _run([command, "--list"], work)
    assert listed.returncode == 0, listed.stderr
    for name in ("build-qcow2", "test-qcow2", "test-container", "nightly", "init"):
        assert f"  {name} " in listed.stdout, listed.stdout

    made = _run([command, "init", "site"], work)
    assert made.returncode == 0, made.stderr
    site = work / "site"
    assert (site / "images/site/image.toml").is_file()
    assert "visa-build==0.1.0" in (site / "requirements.txt").read_text()

    looked = _run([str(installed / "bin" / "python"), "-c", _LOOKUPS], site)
    assert looked.returncode == 0, looked.stderr
    found = json.loads(looked.stdout)
    packaged = (installed / "lib").resolve()
    assert (found["name"], found["inherits"], found["release"]) == ("site", "visa-build:visa-jupyter-noble", "noble")
    assert found["lab_pins"] > 50 and found["desktop"]
    for key in ("lab_lock", "project_files", "templates", "packages_file", "suites"):
        path = Path(found[key])
        assert path.is_relative_to(packaged) and not path.is_relative_to(REPO), f"{key}: {path}"
        assert path.exists(), f"{key}: {path}"
    assert Path(found["suites"]) == Path(found["project_files"]) / "tests/infra"
    assert found["build_dir"] == str(site.resolve() / "build")  # the site's own folder, not site-packages
    assert found["spec_of_settings"] == "site"  # a relative spec folder is under the current folder
    assert found["revision"] == "installed"

    # The site's invoke.yaml is read (visa.image), and visa-build's own test tasks say they need its checkout.
    locked = _run([command, "lock-files"], site)
    assert locked.returncode == 1 and "site inherits visa-build:visa-jupyter-noble" in locked.stderr, locked.stderr
    unit = _run([command, "test-unit"], site)
    assert unit.returncode == 1 and "installed visa-build does not carry" in unit.stderr, unit.stderr


def test_the_installed_contract_suites_collect(installed: Path, tmp_path: Path) -> None:
    """The suites test-container and test-qcow2 run import all they need from the installed package, and their
    markers are declared without the checkout's pyproject.toml."""
    found = _run(
        [str(installed / "bin" / "python"), "-c", "from visa_build import resources as r; print(r.project_files())"],
        tmp_path,
    )
    root = Path(found.stdout.strip())
    argv = [str(installed / "bin" / "python"), "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    argv += ["-W", "error::pytest.PytestUnknownMarkWarning", f"--rootdir={root}"]
    collected = _run([*argv, *(str(root / suite) for suite in ("tests/infra", "tests/double", "tests/vm"))], tmp_path)
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-3000:]
    assert " tests collected" in collected.stdout
