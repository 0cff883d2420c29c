"""Fixtures of the infra suite: the target (testinfra `host`), its VISA metadata and its Jupyter server."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.conftest import image_spec

VENV = "/opt/visa/jupyter/jupyterlab"
DATA_ANALYSIS = "/opt/visa/envs/data-analysis"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize over every pin of the lock files, so a wrong pin names itself."""
    spec = image_spec(metafunc.config)
    if "jupyterlab_pin" in metafunc.fixturenames:
        metafunc.parametrize("jupyterlab_pin", spec.jupyterlab.pins, ids=str)
    if "data_analysis_pin" in metafunc.fixturenames:
        metafunc.parametrize("data_analysis_pin", spec.data_analysis.pins, ids=str)
    if "module" in metafunc.fixturenames:  # [data_analysis] imports of the image spec
        metafunc.parametrize("module", spec.data_analysis.imports)


@dataclass(frozen=True)
class Instance:
    id: str
    owner: str
    home: str


@pytest.fixture(scope="module")
def instance(host: Any) -> Instance:
    """The instance's id and owner, as the launcher reads them (cloud-init metadata)."""
    with host.sudo():
        instance_id = host.check_output("cloud-init query ds.meta_data.meta.id")
        owner = host.check_output("cloud-init query ds.meta_data.meta.owner")
    return Instance(id=instance_id, owner=owner, home=host.user(owner).home)


@pytest.fixture(scope="module")
def jupyter(pytestconfig: pytest.Config, instance: Instance) -> str:
    """Base URL of the instance's JupyterLab as VISA's proxy serves it: <proxy>/jupyter/<id>."""
    url = pytestconfig.getoption("--jupyter-url")
    if not url:
        pytest.fail("--jupyter-url is required: the URL that reaches the target's Jupyter server (or a proxy)")
    return f"{url.rstrip('/')}/jupyter/{instance.id}"


@pytest.fixture(scope="module")
def browser(jupyter: str) -> requests.Session:
    """An HTTP session like a browser's: it opened /lab, so it holds the _xsrf cookie for POSTs."""
    session = requests.Session()
    response = session.get(f"{jupyter}/lab", timeout=30)
    assert response.status_code == 200, f"GET {jupyter}/lab answered {response.status_code}"
    session.headers["X-XSRFToken"] = session.cookies.get("_xsrf", "")
    return session


def installed(host: Any, prefix: str) -> dict[str, str]:
    """{normalised name: version} of what `prefix`'s pip sees installed."""
    from visa_build.config import normalise

    listing = json.loads(
        host.check_output(f"{prefix}/bin/python -m pip list --format=json --disable-pip-version-check")
    )
    return {normalise(item["name"]): item["version"] for item in listing}


@pytest.fixture(scope="module")
def jupyterlab_packages(host: Any) -> dict[str, str]:
    return installed(host, VENV)


@pytest.fixture(scope="module")
def data_analysis_packages(host: Any) -> dict[str, str]:
    return installed(host, DATA_ANALYSIS)
