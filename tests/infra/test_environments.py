"""C1, C2: the JupyterLab venv and the data-analysis environment hold exactly the locked pins."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from tests.infra.conftest import DATA_ANALYSIS, VENV
from visa_build.config import ImageSpec, Pin


def test_jupyterlab_venv_is_a_real_venv_with_pip(host: Any, spec: ImageSpec) -> None:
    config = host.file(f"{VENV}/pyvenv.cfg")
    assert config.exists, f"{VENV}/pyvenv.cfg is missing: {VENV} is not a venv"
    assert "home = /usr/bin" in config.content_string, "the venv is not made from the image's python3"
    pip = {p.name: p.version for p in spec.jupyterlab.pins}["pip"]
    version = host.check_output(f"{VENV}/bin/pip --version")
    assert version.startswith(f"pip {pip} "), f"pip in the venv is '{version}', expected the upgraded pin {pip}"


def test_jupyterlab_pin_installed(jupyterlab_pin: Pin, jupyterlab_packages: dict[str, str]) -> None:
    found = jupyterlab_packages.get(jupyterlab_pin.name)
    assert found == jupyterlab_pin.version, f"{VENV}: {jupyterlab_pin} is locked, {found or 'nothing'} installed"


def test_data_analysis_pin_installed(data_analysis_pin: Pin, data_analysis_packages: dict[str, str]) -> None:
    found = data_analysis_packages.get(data_analysis_pin.name)
    assert found == data_analysis_pin.version, (
        f"{DATA_ANALYSIS}: {data_analysis_pin} is locked, {found or 'nothing'} installed"
    )


def test_nothing_unpinned_in_jupyterlab_venv(jupyterlab_packages: dict[str, str], spec: ImageSpec) -> None:
    extra = sorted(set(jupyterlab_packages) - {pin.name for pin in spec.jupyterlab.pins})
    assert not extra, f"{VENV} has packages that no lock pins: {extra}"


def test_nothing_unpinned_in_data_analysis(data_analysis_packages: dict[str, str], spec: ImageSpec) -> None:
    extra = sorted(set(data_analysis_packages) - {pin.name for pin in spec.data_analysis.pins})
    assert not extra, f"{DATA_ANALYSIS} has packages that no lock pins: {extra}"


@pytest.mark.parametrize("prefix", [VENV, DATA_ANALYSIS])
def test_pip_check_is_clean(host: Any, prefix: str) -> None:
    result = host.run(f"{prefix}/bin/python -m pip check")
    assert result.rc == 0, f"pip check in {prefix} failed:\n{result.stdout}{result.stderr}"


def test_data_analysis_package_imports(host: Any, module: str) -> None:
    result = host.run(f"MPLBACKEND=Agg QT_QPA_PLATFORM=offscreen {DATA_ANALYSIS}/bin/python -c 'import {module}'")
    assert result.rc == 0, f"import {module} fails in the data-analysis environment:\n{result.stderr[-2000:]}"


#: Run by an environment's own python: its .py files whose bytecode Python would not use as is (missing,
#: or stale for its source), skipping files that do not compile at all (examples for other versions).
STALE_BYTECODE = r"""
import importlib.util, pathlib, sys
site = pathlib.Path(sys.argv[1])
for source in site.rglob("*.py"):
    cached = pathlib.Path(importlib.util.cache_from_source(str(source)))
    header = cached.read_bytes()[:16] if cached.is_file() else b""
    stat = source.stat()
    if header[:4] == importlib.util.MAGIC_NUMBER:
        flags = int.from_bytes(header[4:8], "little")
        if flags & 1 and header[8:16] == importlib.util.source_hash(source.read_bytes()):
            continue
        if not flags and header[8:16] == ((int(stat.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
                                          + (stat.st_size & 0xFFFFFFFF).to_bytes(4, "little")):
            continue
    try:
        compile(source.read_bytes(), str(source), "exec")
    except (SyntaxError, ValueError):
        continue
    print(source.relative_to(site))
"""


@pytest.mark.parametrize("prefix", [VENV, DATA_ANALYSIS])
def test_bytecode_is_compiled(host: Any, prefix: str) -> None:
    """The owner cannot write __pycache__ under /opt: uncompiled modules would be compiled at every start."""
    site = host.check_output(f"{prefix}/bin/python -c 'import sysconfig; print(sysconfig.get_path(\"purelib\"))'")
    result = host.run(f"{prefix}/bin/python -c {shlex.quote(STALE_BYTECODE)} {site}")
    assert result.rc == 0, f"the bytecode check failed in {prefix}:\n{result.stderr[-2000:]}"
    stale = result.stdout.split()
    assert not stale, f"{len(stale)} modules of {prefix} have no valid bytecode, e.g. {stale[:5]}"
