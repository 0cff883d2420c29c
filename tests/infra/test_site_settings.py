"""The site's settings of the image (image.toml [site]): its time zone, default keyboard layout, NTP servers, CA
certificates and proxy are the instance's; a spec without them keeps the distribution's defaults (UTC, its own
pool, no proxy)."""

from __future__ import annotations

import base64
import ssl
from typing import Any

import pytest
import requests

from tests.helpers import execute
from visa_build.image_spec import ImageSpec, xkb_layout

#: The trust store Python's ssl module (and so pip, OpenSSL's users) reads in the image, as DER, base64 each.
TRUSTED_DER = (
    "import base64, ssl; "
    "print('\\n'.join(base64.b64encode(c).decode() for c in ssl.create_default_context().get_ca_certs(True)))"
)


#: What a kernel's environment says of the proxy: http_proxy and no_proxy ("None" when unset).
KERNEL_PROXY = "import os; print(os.environ.get('http_proxy'), os.environ.get('no_proxy'))"


def test_the_time_zone_is_the_sites(host: Any, spec: ImageSpec) -> None:
    zone = spec.site.timezone or "Etc/UTC"
    local = host.check_output("readlink -f /etc/localtime")
    assert local == f"/usr/share/zoneinfo/{zone}", f"/etc/localtime is {local}, not the zone {zone}"
    legacy = host.file("/etc/timezone")  # Debian 12 and Ubuntu 24.04 keep it; Debian 13 has none
    assert not legacy.exists or legacy.content_string.strip() == zone, "/etc/timezone names another zone"


@pytest.mark.vm_only
def test_timedatectl_shows_the_zone(host: Any, spec: ImageSpec) -> None:
    zone = spec.site.timezone or "Etc/UTC"
    shown = host.check_output("timedatectl show --property=Timezone --value")
    assert shown == zone, f"timedatectl shows the zone {shown}, not {zone}"


def test_the_console_keyboard_is_the_sites(host: Any, spec: ImageSpec) -> None:
    if not spec.site.keyboard:
        assert not host.file("/etc/visa/keyboard-default").exists, "a default keyboard without [site] keyboard"
        return
    layout, variant = xkb_layout(spec.site.keyboard) or ("", "")
    keyboard = host.file("/etc/default/keyboard").content_string
    assert f"XKBLAYOUT={layout}\n" in keyboard and f"XKBVARIANT={variant}\n" in keyboard, (
        f"/etc/default/keyboard is not {spec.site.keyboard} (XKB {layout} {variant}):\n{keyboard}"
    )
    assert host.file("/etc/visa/keyboard-default").content_string.strip() == spec.site.keyboard


def test_chrony_asks_the_sites_ntp_servers(host: Any, spec: ImageSpec, pytestconfig: pytest.Config) -> None:
    if not spec.site.ntp_servers:
        assert not host.file("/etc/chrony/sources.d/visa-site.sources").exists, "site NTP servers without [site]"
        return
    sources = host.file("/etc/chrony/sources.d/visa-site.sources").content_string.split("\n")
    assert [line.split()[1] for line in sources if line] == list(spec.site.ntp_servers), f"chrony's sources: {sources}"
    conf = host.file("/etc/chrony/chrony.conf").content_string.splitlines()
    pools = [line for line in conf if line.startswith(("pool ", "server "))]
    assert not pools, f"chrony.conf still asks the distribution's servers: {pools}"
    if pytestconfig.getoption("--visa-target") == "vm":  # a container may not set the clock: chrony is skipped there
        assert host.service("chrony").is_running, "chronyd is not running in the VM"


def test_the_sites_ca_certificates_are_trusted(host: Any, spec: ImageSpec) -> None:
    trusted = set(host.check_output("python3 -c %s", TRUSTED_DER).split())
    for path in spec.site.ca_certificates:
        der = base64.b64encode(ssl.PEM_cert_to_DER_cert(path.read_text())).decode()
        assert der in trusted, f"{path.name} is not in the image's trust store (update-ca-certificates)"
    added = host.file("/usr/local/share/ca-certificates")
    site = [name for name in (added.listdir() if added.exists else []) if name.startswith("visa-site-")]
    assert len(site) == len(spec.site.ca_certificates), f"site CA certificates in the image: {site}"


def test_instances_use_the_sites_proxy(host: Any, spec: ImageSpec, jupyter: str, browser: requests.Session) -> None:
    """Logins and desktop sessions (/etc/environment), apt, and a notebook's kernel (os.environ, so `%pip install`
    works behind it) have the spec's [site] proxy; the instance's own loopback does not go through it."""
    proxy = spec.site.proxy
    environment = host.file("/etc/environment").content_string.splitlines()
    apt = host.check_output("apt-config dump Acquire::http::Proxy")
    seen = execute(jupyter, browser, "python3", KERNEL_PROXY).split()
    if not proxy:
        assert not [line for line in environment if "proxy=" in line.lower()], f"/etc/environment: {environment}"
        assert not apt, f"apt has a proxy without [site] proxy: {apt}"
        assert seen == ["None", "None"], f"the kernel has a proxy without [site] proxy: {seen}"
        return
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        assert f"{name}={proxy}" in environment, f"/etc/environment has no {name}={proxy}: {environment}"
    assert apt == f'Acquire::http::Proxy "{proxy}";', f"apt's proxy is {apt!r}, not {proxy}"
    assert seen[0] == proxy, f"a kernel's http_proxy is {seen[0]}, not the site's {proxy}"
    no_proxy = seen[1].split(",")
    assert {"localhost", "127.0.0.1", *spec.site.no_proxy} <= set(no_proxy), f"a kernel's no_proxy is {no_proxy}"
