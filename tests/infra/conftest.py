"""Fixtures of the infra suite: the target (testinfra `host`), the facts gathered on it in one round trip, its
VISA metadata and its Jupyter server."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers import CONFIG, DATA_ANALYSIS, VENV, Facts, Instance, image_spec, opened_lab, packages
from visa_build.image_spec import ImageSpec

PROBE = Path(__file__).with_name("probe.py")
#: Runs the probe sent base64-encoded as the first argument (see probe.py for why).
RUN_ENCODED = "import base64, sys; exec(compile(base64.b64decode(sys.argv[1]), 'probe.py', 'exec'))"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize over every pin of the lock files, so a wrong pin names itself."""
    spec = image_spec(metafunc.config)
    if "jupyterlab_pin" in metafunc.fixturenames:
        metafunc.parametrize("jupyterlab_pin", spec.jupyterlab.pins, ids=str)
    if "data_analysis_pin" in metafunc.fixturenames:
        metafunc.parametrize("data_analysis_pin", spec.data_analysis.pins, ids=str)
    if "module" in metafunc.fixturenames:  # [data_analysis] imports of the image spec
        metafunc.parametrize("module", spec.data_analysis.imports)
    if "lab_override" in metafunc.fixturenames:  # (plugin id, setting, value) of the spec's JupyterLab settings
        overrides = json.loads(spec.lab_settings.overrides)
        cases = [(plugin, key, value) for plugin, values in overrides.items() for key, value in values.items()]
        metafunc.parametrize("lab_override", cases, ids=[f"{plugin}.{key}" for plugin, key, _ in cases])
    if "disabled_extension" in metafunc.fixturenames:
        metafunc.parametrize("disabled_extension", spec.lab_settings.disabled)


def probe(host: Any, pytestconfig: pytest.Config, spec: ImageSpec) -> Facts:
    """Run probe.py on the target (one command, as root) and return what it gathered."""
    key_file = pytestconfig.getoption("--build-public-key")
    build_key = Path(key_file).read_text().split()[1] if key_file and Path(key_file).is_file() else ""
    request = {
        "jupyterlab": VENV,
        "data_analysis": DATA_ANALYSIS,
        "imports": list(spec.data_analysis.imports),
        "config": CONFIG,
        "port": spec.service.port,
        "vm": pytestconfig.getoption("--visa-target") == "vm",
        "build_key": build_key,
    }
    encoded = [base64.b64encode(data).decode() for data in (PROBE.read_bytes(), json.dumps(request).encode())]
    with host.sudo():
        result = host.run("python3 -c %s %s %s", RUN_ENCODED, *encoded)
    if result.rc != 0:
        pytest.fail(f"probe.py failed on the target (exit code {result.rc}):\n{result.stderr[-3000:]}")
    facts = Facts(json.loads(result.stdout))
    slowest = sorted(facts.raw.get("probe_seconds", {}).items(), key=lambda item: -item[1])[:8]
    print(f"probe.py on {host.backend.get_pytest_id()}: slowest facts (s) {slowest}")  # shown with -s or -rA
    return facts


#: Facts by target, kept for the whole session: testinfra's `host` is module-scoped, and a session fixture would
#: be one per conftest that names it (tests/vm reuses these fixtures), so each target would be probed twice.
GATHERED = pytest.StashKey[dict[str, Facts]]()


@pytest.fixture(scope="module")
def facts(host: Any, pytestconfig: pytest.Config, spec: ImageSpec) -> Facts:
    """The target's facts, gathered by probe.py on first use in the session."""
    gathered = pytestconfig.stash.setdefault(GATHERED, {})
    target = host.backend.get_pytest_id()
    if target not in gathered:
        gathered[target] = probe(host, pytestconfig, spec)
        out = pytestconfig.getoption("--visa-facts-out")
        if out:  # the nightly's manifest is read from these facts
            Path(out).write_text(json.dumps(gathered[target].raw, indent=1, sort_keys=True))
    return gathered[target]


@pytest.fixture(scope="module")
def instance(facts: Facts) -> Instance:
    """The instance's id and owner, as the launcher reads them (cloud-init metadata), and the owner's home."""
    meta = facts["metadata"]
    return Instance(id=meta["id"], owner=meta["owner"], home=meta["home"])


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
    return opened_lab(jupyter)


@pytest.fixture(scope="module")
def jupyterlab_packages(facts: Facts) -> dict[str, str]:
    return packages(facts, VENV)


@pytest.fixture(scope="module")
def data_analysis_packages(facts: Facts) -> dict[str, str]:
    return packages(facts, DATA_ANALYSIS)
