"""The tools that check the pipeline templates, from the npm registry, pinned by package-lock.json and
installed once per lock into <build>/tools/npm-<lock digest>."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def node_modules(pytestconfig: pytest.Config) -> Path:
    lock = HERE / "package-lock.json"
    folder = (
        Path(pytestconfig.getoption("--visa-build-dir")).resolve()
        / "tools"
        / ("npm-" + hashlib.sha256(lock.read_bytes()).hexdigest()[:12])
    )
    if not (folder / ".installed").exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(HERE / name, folder / name)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=folder, check=True, timeout=1800)
        (folder / ".installed").touch()
    return folder / "node_modules"
