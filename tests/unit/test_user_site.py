"""The data-analysis environment's startup hook and kernel launcher (provision/files/data-analysis), on a real
venv made here with this host's Python: the user's site first, the system's site out, shadowing named."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

FILES = Path(__file__).resolve().parents[2] / "provision" / "files" / "data-analysis"


def load(name: str) -> ModuleType:
    loaded = importlib.util.spec_from_file_location(name, FILES / f"{name}.py")
    assert loaded is not None and loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    return module


def dist(site: Path, name: str, version: str) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


@pytest.fixture
def environment(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """(python, its site-packages, env with a HOME that has a user site) of a venv set up as 30-data-analysis.sh
    sets up the data-analysis environment."""
    venv = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    site_packages = Path(purelib)
    shutil.copy(FILES / "visa_site.py", site_packages)
    (site_packages / "visa-site.pth").write_text("import visa_site\n")
    config = venv / "pyvenv.cfg"
    config.write_text(
        config.read_text().replace("include-system-site-packages = false", "include-system-site-packages = true")
    )
    home = tmp_path / "home"
    env = {"HOME": str(home), "PATH": os.environ["PATH"]}
    user_site = subprocess.run(
        [python, "-c", "import site; print(site.getusersitepackages())"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(user_site).mkdir(parents=True)
    return python, site_packages, env


def sys_path(python: Path, env: dict[str, str], *flags: str) -> list[str]:
    shown = subprocess.run(
        [python, *flags, "-c", "import json, sys; print(json.dumps(sys.path))"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return [str(Path(p)) for p in json.loads(shown.stdout) if p]


def test_user_site_comes_first_and_the_systems_is_left_out(environment: tuple[Path, Path, dict[str, str]]) -> None:
    python, site_packages, env = environment
    path = sys_path(python, env)
    system = {str(Path(p)) for p in site.getsitepackages([sys.base_prefix])}  # this host Python's own site
    user = [p for p in path if p.startswith(env["HOME"])]
    assert user, f"the user's site is not on sys.path: {path}"
    assert path.index(user[0]) < path.index(str(site_packages)), (
        f"the environment's packages precede the user's: {path}"
    )
    assert not system & set(path), f"the system's site leaked in: {sorted(system & set(path))}"


def test_no_user_site_with_python_s(environment: tuple[Path, Path, dict[str, str]]) -> None:
    python, site_packages, env = environment
    path = sys_path(python, env, "-s")
    assert not [p for p in path if p.startswith(env["HOME"])], f"python -s still sees the user's site: {path}"
    assert str(site_packages) in path


def test_shadow_warning_names_each_package_and_both_versions(tmp_path: Path) -> None:
    kernel = load("visa_kernel")
    user, image = tmp_path / "user", tmp_path / "image"
    dist(user, "numpy", "2.0.0")
    dist(user, "Lmfit_Extra", "0.1")
    dist(image, "numpy", "2.4.6")
    dist(image, "lmfit-extra", "0.2")
    dist(image, "scipy", "1.16.0")
    warning = kernel.shadow_warning(str(user), str(image))
    assert warning is not None and "\n" not in warning
    assert "lmfit-extra 0.1 (image: 0.2), numpy 2.0.0 (image: 2.4.6)" in warning, warning
    assert warning.endswith("python -m pip uninstall lmfit-extra numpy"), warning
    assert kernel.shadow_warning(str(tmp_path / "empty"), str(image)) is None


def kernel_json_fix() -> str:
    """The Python 30-data-analysis.sh runs on the python3 kernelspec's kernel.json."""
    script = (FILES.parents[1] / "30-data-analysis.sh").read_text()
    return script.split("kernel.json <<'PY'\n", 1)[1].split("\nPY\n", 1)[0]


def test_a_visa_kernel_planted_in_the_notebooks_folder_does_not_run(
    environment: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    python, site_packages, env = environment
    shutil.copy(FILES / "visa_kernel.py", site_packages)
    kernel_json = tmp_path / "kernel.json"  # as `ipykernel install` writes it
    kernel_json.write_text(json.dumps({"argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]}))
    subprocess.run([python, "-", kernel_json], input=kernel_json_fix(), text=True, env=env, check=True, timeout=60)
    notebooks = tmp_path / "notebooks"  # the kernel's working directory
    notebooks.mkdir()
    (notebooks / "visa_kernel.py").write_text("open('planted-ran', 'w').close()\n")
    argv = [
        a.replace("{connection_file}", str(tmp_path / "c.json")) for a in json.loads(kernel_json.read_text())["argv"]
    ]
    ran = subprocess.run(argv, cwd=notebooks, env=env, capture_output=True, text=True, timeout=60)
    assert not (notebooks / "planted-ran").exists(), f"the kernel {argv} ran the notebook folder's visa_kernel.py"
    assert "No module named 'ipykernel'" in ran.stderr, f"the image's visa_kernel did not run: {ran.stderr}"
