"""The wheel built from pyproject.toml carries the whole package: every module imports from it, outside the
checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.helpers import REPO


def test_the_wheel_holds_and_imports_every_module(tmp_path: Path) -> None:
    # Built from a copy: setuptools writes build/ and *.egg-info into the tree it builds.
    source = tmp_path / "source"
    shutil.copytree(REPO / "visa_build", source / "visa_build", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(REPO / "pyproject.toml", source / "pyproject.toml")
    argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)]
    built = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, f"pip wheel failed:\n{built.stderr}"
    (wheel,) = tmp_path.glob("visa_build-*.whl")
    in_wheel = {name for name in zipfile.ZipFile(wheel).namelist() if name.endswith(".py")}
    in_tree = {str(path.relative_to(REPO)) for path in (REPO / "visa_build").rglob("*.py")}
    assert in_tree <= in_wheel, f"modules missing from the wheel: {sorted(in_tree - in_wheel)}"
    modules = sorted(name.removesuffix(".py").removesuffix("/__init__").replace("/", ".") for name in in_wheel)
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
