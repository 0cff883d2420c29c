"""A spec's [site] settings: read and checked when the spec is loaded (one line naming the bad value), rendered
into the build context's spec/site/ for provision/42-site-settings.sh, and taken from a site's own spec folder
when it inherits a project spec."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import IMAGES
from visa_build import build_context, render
from visa_build.errors import ConfigError
from visa_build.image_spec import load_image_spec, xkb_layout

CA = (IMAGES / "ci-noble" / "site-ca.pem").read_text()


def spec_with_site(tmp_path: Path, site: str) -> Path:
    for name in ("ci", "visa-jupyter"):
        shutil.copytree(IMAGES / name, tmp_path / name)
    (tmp_path / "ci" / "image.toml").write_text((tmp_path / "ci" / "image.toml").read_text() + "\n[site]\n" + site)
    return tmp_path / "ci"


def test_the_site_settings_reach_the_build_context(tmp_path: Path) -> None:
    folder = spec_with_site(
        tmp_path,
        'timezone = "America/Argentina/Buenos_Aires"\nkeyboard = "fr-ch-qwertz"\n'
        'ntp_servers = ["ntp.example.org", "2001:db8::123"]\nca_certificates = ["site-ca.pem"]\n',
    )
    (folder / "site-ca.pem").write_text(CA)
    spec = load_image_spec(folder)
    site = build_context.prepare(spec, tmp_path / "context") / "spec" / "site"
    assert (site / "site.env").read_text() == (
        "VISA_SITE_TIMEZONE=America/Argentina/Buenos_Aires\nVISA_SITE_KEYBOARD=fr-ch-qwertz\n"
        "VISA_SITE_XKB_LAYOUT=ch\nVISA_SITE_XKB_VARIANT=fr\n"
        "VISA_SITE_NTP_SERVERS='ntp.example.org 2001:db8::123'\n"
        "VISA_SITE_PROXY=''\nVISA_SITE_NO_PROXY=''\n"
    )
    assert (site / "ca" / "visa-site-01.crt").read_text() == CA.strip() + "\n"
    assert xkb_layout("fr-ch-qwertz") == ("ch", "fr") and xkb_layout("de-de-qwertz") == ("de", "")


def test_no_site_settings_leave_the_distributions_defaults(tmp_path: Path) -> None:
    spec = load_image_spec(IMAGES / "ci")
    files = render.site_files(spec)
    assert files == {
        "site/site.env": "VISA_SITE_TIMEZONE=''\nVISA_SITE_KEYBOARD=''\n"
        "VISA_SITE_XKB_LAYOUT=''\nVISA_SITE_XKB_VARIANT=''\nVISA_SITE_NTP_SERVERS=''\n"
        "VISA_SITE_PROXY=''\nVISA_SITE_NO_PROXY=''\n"
    }


@pytest.mark.parametrize(
    ("site", "message"),
    [
        ('timezone = "Europe/Pariss"', "[site] timezone = 'Europe/Pariss'"),
        ('timezone = "../../etc/passwd"', "[site] timezone = '../../etc/passwd'"),
        ('keyboard = "azerty"', "write VISA's <language>-<country>-<kind>"),
        ('keyboard = "fr-zz-azerty"', "XKB has no layout 'zz'"),
        ('ntp_servers = ["ntp.example.org; rm -rf /"]', "[site] ntp_servers"),
        ('ca_certificates = ["image.toml"]', "one PEM certificate each"),
        ('ca_certificates = ["missing.pem"]', "one PEM certificate each"),
        ('ca_certificates = ["../../../etc/ssl/certs/ca-certificates.crt"]', "name a file inside"),
    ],
)
def test_a_bad_site_setting_is_named(tmp_path: Path, site: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_image_spec(spec_with_site(tmp_path, site + "\n"))
    assert message in str(raised.value), raised.value


def test_a_sites_spec_sets_its_own_site_settings_from_its_own_folder(tmp_path: Path) -> None:
    folder = tmp_path / "images" / "site-image"
    folder.mkdir(parents=True)
    (folder / "our-ca.pem").write_text(CA)
    (folder / "image.toml").write_text(
        '[image]\nname = "site-image"\ninherits = "visa-build:ci-noble"\n\n'
        '[site]\ntimezone = "Europe/Berlin"\nca_certificates = ["our-ca.pem"]\n'
    )
    spec = load_image_spec(folder)
    assert spec.site.timezone == "Europe/Berlin" and spec.site.keyboard == "fr-ch-qwertz"
    assert spec.site.ca_certificates == (folder / "our-ca.pem",)


def test_the_instance_proxy_reaches_the_build_context_with_the_instances_loopback_kept_off_it(tmp_path: Path) -> None:
    folder = spec_with_site(tmp_path, 'proxy = "http://proxy.example.org:3128"\nno_proxy = [".example.org"]\n')
    site = build_context.prepare(load_image_spec(folder), tmp_path / "context") / "spec" / "site"
    env = (site / "site.env").read_text()
    assert "VISA_SITE_PROXY=http://proxy.example.org:3128\n" in env, env
    assert "VISA_SITE_NO_PROXY=localhost,127.0.0.1,::1,.example.org\n" in env, env


@pytest.mark.parametrize(
    ("site", "message"),
    [
        ('proxy = "proxy.example.org:3128"', "write http://<host>:<port>"),
        ('proxy = "http://alice:s3cret@proxy.example.org:3128"', "every user of an instance could read it"),
        ('no_proxy = [".example.org"]', "set [site] proxy too"),
        ('proxy = "http://proxy:3128"\nno_proxy = ["a host"]', "name hosts or domains"),
    ],
)
def test_a_bad_instance_proxy_is_refused(tmp_path: Path, site: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"\[site\] (proxy|no_proxy)") as caught:
        load_image_spec(spec_with_site(tmp_path, site + "\n"))
    assert message in str(caught.value) + caught.value.tip, caught.value
