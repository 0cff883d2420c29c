"""C9: the server answers under /jupyter/<id>/ only, as VISA's proxy forwards it (path unchanged)."""

from __future__ import annotations

from urllib.parse import urlsplit

import requests

from tests.helpers import Facts, Instance


def test_status_under_base_url(jupyter: str) -> None:
    response = requests.get(f"{jupyter}/api/status", timeout=30)
    assert response.status_code == 200, f"GET {jupyter}/api/status answered {response.status_code}"


def test_status_outside_base_url_is_404(facts: Facts) -> None:
    code = facts["direct_status"]["/api/status"]  # asked on the target itself, bypassing any proxy
    assert code == 404, f"/api/status (no base_url) answered {code}: base_url is not applied"


def test_another_instance_path_is_404(jupyter: str, instance: Instance) -> None:
    other = jupyter.replace(f"/jupyter/{instance.id}", f"/jupyter/{int(instance.id) + 1}")
    response = requests.get(f"{other}/api", timeout=30)
    assert response.status_code == 404, f"GET {other}/api answered {response.status_code}, not 404"


def test_root_redirects_to_lab(jupyter: str, instance: Instance) -> None:
    response = requests.get(f"{jupyter}/", allow_redirects=False, timeout=30)
    assert response.status_code in (301, 302), f"GET {jupyter}/ answered {response.status_code}, not a redirect"
    location = response.headers["Location"]
    assert urlsplit(location).path == f"/jupyter/{instance.id}/lab", f"{jupyter}/ redirects to {location}"
