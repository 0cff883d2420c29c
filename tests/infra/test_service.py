"""C3-C5, C8, C10: the server's config, the boot-time unit, the owner running it, the port."""

from __future__ import annotations

import re

import pytest
import requests

from tests.helpers import CONFIG, Facts, Instance
from visa_build.image_spec import ImageSpec

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


@pytest.mark.parametrize(("key", "value"), EXPECTED_CONFIG.items(), ids=list(EXPECTED_CONFIG))
def test_server_config_value(facts: Facts, key: str, value: object) -> None:
    server_config = facts["server_config"]  # as the server loads it (traitlets)
    assert key in server_config, f"{CONFIG} does not set c.{key}"
    assert server_config[key] == value, f"{CONFIG}: c.{key} = {server_config[key]!r}, expected {value!r}"


def test_running_server_reports_base_url_and_port(facts: Facts, instance: Instance) -> None:
    servers = facts["server_list"]  # jupyter server list --json, as the owner
    assert len(servers) == 1, f"expected one running server for {instance.owner}, found: {servers}"
    assert servers[0]["base_url"] == f"/jupyter/{instance.id}/", f"server base_url is {servers[0]['base_url']}"
    assert servers[0]["port"] == 8888, f"the server runs on port {servers[0]['port']}, not 8888"
    assert servers[0]["token"] == "", "the server asks for a token; VISA's proxy does not send one"
    assert servers[0]["root_dir"] == instance.home, f"the server's root_dir is {servers[0]['root_dir']}"


def test_cors_allows_any_origin(jupyter: str) -> None:
    response = requests.get(f"{jupyter}/api/status", headers={"Origin": "https://visa.example.org"}, timeout=30)
    assert response.headers.get("Access-Control-Allow-Origin") == "*", "allow_origin '*' is not in effect"


def test_xsrf_is_checked(jupyter: str) -> None:
    response = requests.post(f"{jupyter}/api/kernels", json={"name": "python3"}, timeout=30)
    assert response.status_code == 403, f"a POST without the _xsrf token answered {response.status_code}, not 403"


@pytest.mark.parametrize("extension", ["@jupyter-widgets/jupyterlab-manager", "jupyter-matplotlib"])
def test_lab_extension_enabled(facts: Facts, extension: str) -> None:
    listing = facts["labextensions"]
    lines = [line.split() for line in listing.splitlines() if line.split()[:1] == [extension]]
    assert lines, f"JupyterLab extension {extension} is not installed:\n{listing}"
    assert lines[0][2:4] == ["enabled", "OK"], f"{extension} is not enabled and OK: {' '.join(lines[0])}"


def test_unit_enabled_and_active(facts: Facts) -> None:
    unit = facts["unit"]
    assert unit["UnitFileState"] == "enabled", "visa-jupyter.service is not enabled: it would not start at boot"
    assert unit["ActiveState"] == "active", f"visa-jupyter.service is {unit['ActiveState']}, not active"


def test_unit_ordering_waits_for_metadata_without_cycle(facts: Facts) -> None:
    unit = facts["unit"]
    after = unit["After"].split()
    assert "cloud-init.service" in after, "the unit may start before cloud-init has the metadata"
    assert "cloud-final.service" not in after, "After=cloud-final.service is an ordering cycle with multi-user.target"
    assert unit["Restart"] == "always", f"the unit's Restart= is {unit['Restart']}: File > Shut Down would stay down"


def seconds_of(timespan: str) -> float:
    """systemd's formatted time span (e.g. "26min 5s") in seconds."""
    units = {"h": 3600, "min": 60, "s": 1, "ms": 1e-3, "us": 1e-6}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(h|min|ms|us|s)", timespan))


def test_the_start_limit_bounds_the_owner_wait(facts: Facts, spec: ImageSpec) -> None:
    unit = facts["unit"]
    burst, interval = int(unit["StartLimitBurst"]), seconds_of(unit["StartLimitIntervalUSec"])
    needed = burst * spec.service.owner_wait_seconds
    assert interval > needed, (
        f"StartLimitIntervalSec is {interval:.0f} s: {burst} starts that each wait {spec.service.owner_wait_seconds} s "
        f"for the owner take {needed} s, so the start limit would never stop the loop"
    )


def test_server_runs_as_owner_in_home(facts: Facts, instance: Instance) -> None:
    server = facts["server_process"]
    assert server["pid"] != 0, "visa-jupyter.service has no main process"
    users = server["users"]  # real, effective, saved and filesystem user
    assert set(users) == {instance.owner}, f"JupyterLab runs as {users} (real, effective, saved, fs), not the owner"
    assert "--allow-root" not in server["cmdline"], f"the server runs with --allow-root: {server['cmdline']}"
    assert server["cwd"] == instance.home, f"the server's working directory is {server['cwd']}, not {instance.home}"
    assert server["home"] == instance.home, f"HOME of the server is {server['home']}, not {instance.home}"


def test_listens_on_all_addresses_port_8888_only(facts: Facts) -> None:
    listening = facts["listening"]
    assert "0.0.0.0:8888" in listening, f"nothing listens on 0.0.0.0:8888; listening: {listening}"
    assert not any(address.endswith(":8889") for address in listening), f"the server drifted to 8889: {listening}"


def test_boot_is_healthy(facts: Facts) -> None:
    failed = facts["failed_units"]
    assert failed == "", f"failed units after boot:\n{failed}"
    status = facts["cloud_init_status"]
    assert "status: done" in status, f"cloud-init did not finish cleanly:\n{status}"
