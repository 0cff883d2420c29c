"""The site's build proxy (visa.proxy, visa.no_proxy): checked once, carried by the run's environment, the Docker
builds' predefined arguments and the in-guest build's Packer secrets, never used for this host's own services."""

from __future__ import annotations

import pytest

from visa_build import build_proxy, render
from visa_build.errors import ConfigError
from visa_build.settings import make_settings


@pytest.mark.parametrize(
    "proxy", ["proxy.example.org:3128", "ftp://proxy:21", "http://", "http://proxy:port", "http://proxy:3128/path"]
)
def test_a_proxy_that_is_not_a_proxy_url_is_refused(proxy: str) -> None:
    with pytest.raises(ConfigError, match=r"visa.proxy = .* is not a proxy URL"):
        make_settings(proxy=proxy)


def test_a_proxys_credentials_are_never_shown() -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(proxy="http://alice:s3cret@proxy:bad")
    assert "s3cret" not in str(caught.value) and "***@proxy:bad" in str(caught.value), caught.value
    assert build_proxy.without_credentials("http://alice:s3cret@proxy:3128") == "http://***@proxy:3128"


def test_the_proxy_environment_keeps_this_hosts_services_off_the_proxy() -> None:
    settings = make_settings(proxy="http://proxy.example.org:3128", no_proxy="intranet.example.org, .site")
    env = build_proxy.environment(settings.proxy, settings.no_proxy)
    assert env["http_proxy"] == env["HTTPS_PROXY"] == "http://proxy.example.org:3128"
    hosts = env["no_proxy"].split(",")
    assert {"127.0.0.1", "localhost", "visa-wheelhouse", "10.0.2.2", "intranet.example.org", ".site"} <= set(hosts)
    assert env["NO_PROXY"] == env["no_proxy"]
    assert build_proxy.environment("", "x") == {}, "no proxy: no variables at all"


def test_the_proxy_is_a_packer_secret_as_it_may_hold_credentials() -> None:
    assert set(build_proxy.NAMES) <= set(render.SECRET_ENV)


def test_bad_no_proxy_hosts_are_refused() -> None:
    with pytest.raises(ConfigError, match="visa.no_proxy names"):
        make_settings(proxy="http://proxy:3128", no_proxy="good.example.org,bad host")
