"""C3-C5, C8, C10: the server's config, the boot-time unit, the owner running it, the port."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests.infra.conftest import VENV, Instance

CONFIG = "/etc/visa/jupyter_server_config.py"
EXPECTED_CONFIG = {
    "ServerApp.ip": "0.0.0.0",
    "ServerApp.open_browser": False,
    "ServerApp.port": 8888,
    "ServerApp.trust_xheaders": True,
    "ServerApp.allow_origin": "*",
    "ServerApp.disable_check_xsrf": False,
    "IdentityProvider.token": "",
    "ServerApp.port_retries": 0,
    "ServerApp.default_url": "/lab",
}
# Loads the config file the way the server does (traitlets) and prints the values as JSON.
LOAD_CONFIG = (
    f'{VENV}/bin/python -c "import json; from traitlets.config.loader import PyFileConfigLoader as L; '
    f"c = L('{CONFIG}').load_config(); "
    "print(json.dumps({f'{s}.{k}': v for s in c for k, v in c[s].items()}))\""
)


@pytest.fixture(scope="module")
def server_config(host: Any) -> dict[str, object]:
    loaded: dict[str, object] = json.loads(host.check_output(LOAD_CONFIG))
    return loaded


@pytest.mark.parametrize(("key", "value"), EXPECTED_CONFIG.items(), ids=list(EXPECTED_CONFIG))
def test_server_config_value(server_config: dict[str, object], key: str, value: object) -> None:
    assert key in server_config, f"{CONFIG} does not set c.{key}"
    assert server_config[key] == value, f"{CONFIG}: c.{key} = {server_config[key]!r}, expected {value!r}"


def test_running_server_reports_base_url_and_port(host: Any, instance: Instance) -> None:
    listing = host.check_output(f"runuser -u {instance.owner} -- {VENV}/bin/jupyter server list --json")
    servers = [json.loads(line) for line in listing.splitlines() if line.startswith("{")]
    assert len(servers) == 1, f"expected one running server for {instance.owner}, found: {listing}"
    assert servers[0]["base_url"] == f"/jupyter/{instance.id}/", f"server base_url is {servers[0]['base_url']}"
    assert servers[0]["port"] == 8888
    assert servers[0]["token"] == "", "the server asks for a token; VISA's proxy does not send one"
    assert servers[0]["root_dir"] == instance.home


def test_cors_allows_any_origin(jupyter: str) -> None:
    response = requests.get(f"{jupyter}/api/status", headers={"Origin": "https://visa.example.org"}, timeout=30)
    assert response.headers.get("Access-Control-Allow-Origin") == "*", "allow_origin '*' is not in effect"


def test_xsrf_is_checked(jupyter: str) -> None:
    response = requests.post(f"{jupyter}/api/kernels", json={"name": "python3"}, timeout=30)
    assert response.status_code == 403, f"a POST without the _xsrf token answered {response.status_code}, not 403"


@pytest.mark.parametrize("extension", ["@jupyter-widgets/jupyterlab-manager", "jupyter-matplotlib"])
def test_lab_extension_enabled(host: Any, extension: str) -> None:
    listing = host.check_output(f"{VENV}/bin/jupyter labextension list 2>&1 | sed 's/\\x1b\\[[0-9;]*m//g'")
    lines = [line.split() for line in listing.splitlines() if line.split()[:1] == [extension]]
    assert lines, f"JupyterLab extension {extension} is not installed:\n{listing}"
    assert lines[0][2:4] == ["enabled", "OK"], f"{extension} is not enabled and OK: {' '.join(lines[0])}"


def test_unit_enabled_and_active(host: Any) -> None:
    unit = host.service("visa-jupyter")
    assert unit.is_enabled, "visa-jupyter.service is not enabled: it would not start at boot"
    assert unit.is_running, "visa-jupyter.service is not active"


def test_unit_ordering_waits_for_metadata_without_cycle(host: Any) -> None:
    after = host.check_output("systemctl show -p After --value visa-jupyter.service").split()
    assert "cloud-init.service" in after, "the unit may start before cloud-init has the metadata"
    assert "cloud-final.service" not in after, "After=cloud-final.service is an ordering cycle with multi-user.target"
    restart = host.check_output("systemctl show -p Restart --value visa-jupyter.service")
    assert restart == "on-failure"


def test_server_runs_as_owner_in_home(host: Any, instance: Instance) -> None:
    pid = host.check_output("systemctl show -p MainPID --value visa-jupyter.service")
    assert pid != "0", "visa-jupyter.service has no main process"
    user = host.check_output(f"ps -o user= -p {pid}")
    assert user == instance.owner, f"JupyterLab runs as {user}, not as the owner {instance.owner}"
    cmdline = host.file(f"/proc/{pid}/cmdline").content_string
    assert "--allow-root" not in cmdline
    # /proc/<pid>/cwd and environ are readable by the process's own user.
    owner_reads = f"runuser -u {instance.owner} -- "
    cwd = host.check_output(f"{owner_reads} readlink /proc/{pid}/cwd")
    assert cwd == instance.home, f"the server's working directory is {cwd}, not {instance.home}"
    environ = host.check_output(f"{owner_reads} cat /proc/{pid}/environ | tr '\\0' '\\n'").splitlines()
    assert f"HOME={instance.home}" in environ, f"HOME of the server is not {instance.home}: {environ}"


def test_listens_on_all_addresses_port_8888_only(host: Any) -> None:
    assert host.socket("tcp://0.0.0.0:8888").is_listening, "nothing listens on 0.0.0.0:8888"
    assert not host.socket("tcp://0.0.0.0:8889").is_listening, "the server drifted to 8889"


def test_boot_is_healthy(host: Any) -> None:
    failed = host.check_output("systemctl list-units --failed --plain --no-legend")
    assert failed == "", f"failed units after boot:\n{failed}"
    status = host.run("cloud-init status --long")
    assert "status: done" in status.stdout, f"cloud-init did not finish cleanly:\n{status.stdout}"
