"""C11-C13: "Data Analysis" is the one python3 kernel, runs in the data-analysis environment through the
proxy (REST + websocket), and users' own kernelspecs appear without a restart."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.helpers import DATA_ANALYSIS, Instance, as_owner, execute
from visa_build.image_spec import ImageSpec


def kernelspecs(jupyter: str) -> dict[str, Any]:
    response = requests.get(f"{jupyter}/api/kernelspecs", timeout=30)
    assert response.status_code == 200, f"GET {jupyter}/api/kernelspecs answered {response.status_code}"
    specs: dict[str, Any] = response.json()["kernelspecs"]
    return specs


def test_python3_is_data_analysis(jupyter: str, spec: ImageSpec) -> None:
    specs = kernelspecs(jupyter)
    assert "python3" in specs, f"no python3 kernelspec; the server sees {sorted(specs)}"
    python3 = specs["python3"]["spec"]
    assert python3["display_name"] == spec.data_analysis.display_name, f"python3 is '{python3['display_name']}'"
    assert python3["argv"][0] == f"{DATA_ANALYSIS}/bin/python", f"python3 runs {python3['argv'][0]}"


def test_only_one_data_analysis_kernel(jupyter: str, spec: ImageSpec) -> None:
    names = [
        name
        for name, item in kernelspecs(jupyter).items()
        if item["spec"]["display_name"] in (spec.data_analysis.display_name, "Python 3 (ipykernel)")
    ]
    assert names == ["python3"], f"kernels that look like the default python3: {names}"


def test_kernel_runs_in_data_analysis_env_through_proxy(jupyter: str, browser: requests.Session) -> None:
    prefix = execute(jupyter, browser, "python3", "import sys; print(sys.prefix)")
    assert prefix == DATA_ANALYSIS, f"the python3 kernel runs in {prefix!r}, not {DATA_ANALYSIS}"


def owner_output(host: Any, instance: Instance, command: str) -> str:
    result = as_owner(host, instance, command)
    assert result.rc == 0, f"as the owner, `{command}` exited {result.rc}:\n{result.stdout}{result.stderr}"
    return str(result.stdout).strip()


@pytest.fixture
def user_env(host: Any, instance: Instance, spec: ImageSpec) -> Iterator[str]:
    """A user's own venv layered on the data-analysis packages (so it has ipykernel), removed afterwards.
    Without pip: the kernel needs none, and ensurepip alone takes half a minute in a TCG guest."""
    env = f"{instance.home}/visa-test-env"
    site = f"lib/python{'.'.join(spec.python.split('.')[:2])}/site-packages"  # the image's interpreter
    owner_output(
        host,
        instance,
        f"python3 -m venv --without-pip {env} && echo {DATA_ANALYSIS}/{site} > {env}/{site}/data-analysis.pth",
    )
    yield env
    owner_output(
        host,
        instance,
        f"rm -rf {env} ~/.local/share/jupyter/kernels/visa-test-env ~/.local/share/jupyter/kernels/python3",
    )


def test_user_kernel_appears_and_starts(
    host: Any, instance: Instance, user_env: str, jupyter: str, browser: requests.Session
) -> None:
    owner_output(host, instance, f"{user_env}/bin/python -m ipykernel install --user --name=visa-test-env")
    specs = kernelspecs(jupyter)
    assert "visa-test-env" in specs, f"a --user kernelspec is not listed without restart: {sorted(specs)}"
    assert specs["visa-test-env"]["spec"]["argv"][0] == f"{user_env}/bin/python"
    prefix = execute(jupyter, browser, "visa-test-env", "import sys; print(sys.prefix)")
    assert prefix == user_env, f"the user's kernel runs in {prefix!r}, not {user_env}"


def test_user_python3_does_not_hide_data_analysis(
    host: Any, instance: Instance, user_env: str, jupyter: str, spec: ImageSpec
) -> None:
    owner_output(host, instance, f"{user_env}/bin/python -m ipykernel install --user --name=python3")
    python3 = kernelspecs(jupyter)["python3"]["spec"]
    assert python3["display_name"] == spec.data_analysis.display_name, (
        f"a user's --name=python3 replaced the image kernel: python3 is now '{python3['display_name']}'"
    )


def test_a_visa_kernel_planted_in_the_notebooks_folder_does_not_run(
    host: Any, instance: Instance, jupyter: str, browser: requests.Session
) -> None:
    """The kernel starts in the notebook's folder, which its Python keeps off sys.path (-P)."""
    folder = f"{instance.home}/visa-test-planted"
    planted = "import pathlib; pathlib.Path(__file__).with_name('planted-ran').touch()"
    owner_output(host, instance, f"mkdir -p {folder} && echo {shlex.quote(planted)} > {folder}/visa_kernel.py")
    try:
        prefix = execute(jupyter, browser, "python3", "import sys; print(sys.prefix)", path="visa-test-planted")
        ran = owner_output(host, instance, f"test -e {folder}/planted-ran && echo yes || echo no")
    finally:
        owner_output(host, instance, f"rm -rf {folder}")
    assert ran == "no", f"starting python3 in {folder} ran the visa_kernel.py planted there"
    assert prefix == DATA_ANALYSIS, f"the python3 kernel runs in {prefix!r}, not {DATA_ANALYSIS}"
