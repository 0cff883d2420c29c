"""The site's JupyterLab defaults from the image spec: the settings overrides are what the server serves to
every user, and the extensions the spec disables are disabled and locked (users cannot turn them back on)."""

from __future__ import annotations

import json
import re
from typing import Any

import requests

from tests.helpers import Facts

CONFIG_DATA = re.compile(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', re.S)


def test_override_is_served_as_the_default(browser: requests.Session, jupyter: str, lab_override: Any) -> None:
    plugin, key, value = lab_override
    response = browser.get(f"{jupyter}/lab/api/settings/{plugin}", timeout=30)
    assert response.status_code == 200, f"GET {jupyter}/lab/api/settings/{plugin} answered {response.status_code}"
    served = response.json()["schema"]["properties"].get(key, {}).get("default", "(no such setting)")
    assert served == value, f"{plugin} {key} is served as {served!r}, the spec's overrides say {value!r}"


def test_disabled_extension_is_disabled_and_locked(
    browser: requests.Session, jupyter: str, disabled_extension: str
) -> None:
    page = browser.get(f"{jupyter}/lab", timeout=30).text
    found = CONFIG_DATA.search(page)
    assert found, f"{jupyter}/lab carries no jupyter-config-data"
    config = json.loads(found.group(1))
    assert disabled_extension in config.get("disabledExtensions", []), (
        f"{disabled_extension} is not disabled in the page JupyterLab serves: {config.get('disabledExtensions')}"
    )
    locked = config.get("lockedExtensions", [])
    assert disabled_extension in locked, f"{disabled_extension} is not locked (a user could re-enable it): {locked}"


def test_disabled_extension_is_listed_disabled(facts: Facts, disabled_extension: str) -> None:
    listing = facts["labextensions"]
    _, _, disabled = listing.partition("Disabled extensions:")
    assert disabled_extension in disabled.split(), f"{disabled_extension} is not listed disabled:\n{listing}"
