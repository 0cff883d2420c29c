"""C1, C2: the JupyterLab venv and the data-analysis environment hold exactly the locked pins."""

from __future__ import annotations

import pytest

from tests.helpers import DATA_ANALYSIS, VENV, Facts
from visa_build.image_spec import ImageSpec, Pin


def test_jupyterlab_venv_is_a_real_venv_with_pip(facts: Facts, spec: ImageSpec) -> None:
    venv = facts.environment(VENV)
    assert venv["pyvenv_cfg"] is not None, f"{VENV}/pyvenv.cfg is missing: {VENV} is not a venv"
    assert "home = /usr/bin" in venv["pyvenv_cfg"], "the venv is not made from the image's python3"
    # Users' packages go to the data-analysis environment only; the server's own venv stays closed.
    assert "include-system-site-packages = false" in venv["pyvenv_cfg"], f"{VENV} sees packages from outside it"
    pip = {p.name: p.version for p in spec.jupyterlab.pins}["pip"]
    version = venv["pip_version"]
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
def test_pip_check_is_clean(facts: Facts, prefix: str) -> None:
    check = facts.environment(prefix)["pip_check"]
    assert check["rc"] == 0, f"pip check in {prefix} failed:\n{check['stdout']}\n{check['stderr']}"


def test_data_analysis_package_imports(facts: Facts, module: str) -> None:
    result = facts[f"import:{module}"]
    assert result["rc"] == 0, f"import {module} fails in the data-analysis environment:\n{result['stderr'][-2000:]}"


@pytest.mark.parametrize("prefix", [VENV, DATA_ANALYSIS])
def test_bytecode_is_compiled(facts: Facts, prefix: str) -> None:
    """The owner cannot write __pycache__ under /opt: uncompiled modules would be compiled at every start."""
    result = facts.environment(prefix)["stale_bytecode"]
    assert result["rc"] == 0, f"the bytecode check failed in {prefix}:\n{result['stderr'][-2000:]}"
    stale = result["stdout"].split()
    assert not stale, f"{len(stale)} modules of {prefix} have no valid bytecode, e.g. {stale[:5]}"


@pytest.mark.parametrize("suffix", ["", "-updates", "-security"])
def test_apt_sources_name_the_release_its_updates_and_security(facts: Facts, spec: ImageSpec, suffix: str) -> None:
    suite = f"{spec.distro.codename}{suffix}"
    lines = facts["apt_sources"]
    assert any(line.split()[2:3] == [suite] for line in lines), (
        f"the image's apt sources do not name {suite}: instances could not install its updates; sources: {lines}"
    )
