"""The site's HTTP proxy for a build (visa.proxy, visa.no_proxy): every download of a run goes through it. The run's
own environment carries it (mmdebstrap and apt, `apt-get download`, pip and uv for the wheelhouse, the archive
state read), and so do the Docker builds (Docker's predefined proxy build arguments, kept out of the image's
history) and the in-guest build's provisioning (as Packer secrets: a proxy URL may hold credentials). What is
served from this host (the wheelhouse, loopback) never goes through it."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from .errors import ConfigError
from .wheelhouse_server import DOCKER_WHEELHOUSE_HOST

#: Never through the proxy: this host's loopback, the wheelhouse as Docker builds reach it, the host as a build
#: VM reaches it (QEMU's user network).
LOOPBACK = ("localhost", "127.0.0.1", "::1")
LOCAL_HOSTS = (*LOOPBACK, DOCKER_WHEELHOUSE_HOST, "10.0.2.2")
NAMES = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")


def is_proxy_url(proxy: str) -> bool:
    """Whether `proxy` is an http(s) URL of a host and a port, and nothing more."""
    parts = urlsplit(proxy)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme in ("http", "https") and bool(parts.hostname) and port is not None and parts.path in ("", "/")


def is_host(name: str) -> bool:
    """Whether `name` can be a no_proxy entry: a host name, a domain (.example.org), an address or a network."""
    return bool(name) and all(ch.isalnum() or ch in ".-:*/" for ch in name)


def check(proxy: str, no_proxy: str) -> None:
    """ConfigError unless `proxy` is "" or an http(s) URL of a host and port, and `no_proxy` host names."""
    if proxy and not is_proxy_url(proxy):
        raise ConfigError(
            f"visa.proxy = {without_credentials(proxy)!r} is not a proxy URL",
            tip="write http://<host>:<port> (or http://<user>:<password>@<host>:<port>), e.g. "
            "http://proxy.example.org:3128; INVOKE_VISA_PROXY",
        )
    for host in filter(None, (part.strip() for part in no_proxy.split(","))):
        if not is_host(host):
            raise ConfigError(
                f"visa.no_proxy names {host!r}, not a host", tip="list host names or domains, comma-separated"
            )


def without_credentials(proxy: str) -> str:
    """`proxy` as it may be shown: a user and password are replaced by ***."""
    parts = urlsplit(proxy)
    if parts.username is None and parts.password is None:
        return proxy
    return parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()


def environment(proxy: str, no_proxy: str) -> dict[str, str]:
    """The proxy variables of a run (lower and upper case, as tools differ), or none when there is no proxy."""
    if not proxy:
        return {}
    hosts = ",".join(dict.fromkeys([*LOCAL_HOSTS, *filter(None, (h.strip() for h in no_proxy.split(",")))]))
    return {**dict.fromkeys(NAMES, proxy), "no_proxy": hosts, "NO_PROXY": hosts}


def apply(proxy: str, no_proxy: str) -> None:
    """Set this run's proxy variables, which its children inherit."""
    os.environ.update(environment(proxy, no_proxy))


def current() -> str:
    """The proxy this run's downloads go through ("" when none), as it may be shown."""
    proxy = os.environ.get("https_proxy") or os.environ.get("http_proxy") or ""
    return without_credentials(proxy)
