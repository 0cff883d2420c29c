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
    )
    assert (site / "ca" / "visa-site-01.crt").read_text() == CA.strip() + "\n"
    assert xkb_layout("fr-ch-qwertz") == ("ch", "fr") and xkb_layout("de-de-qwertz") == ("de", "")


def test_no_site_settings_leave_the_distributions_defaults(tmp_path: Path) -> None:
    spec = load_image_spec(IMAGES / "ci")
    files = render.site_files(spec)
    assert files == {
        "site/site.env": "VISA_SITE_TIMEZONE=''\nVISA_SITE_KEYBOARD=''\n"
        "VISA_SITE_XKB_LAYOUT=''\nVISA_SITE_XKB_VARIANT=''\nVISA_SITE_NTP_SERVERS=''\n"
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
