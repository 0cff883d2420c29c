"""Build settings: a bad value is a ConfigError naming the key and what to do."""

from __future__ import annotations

import pytest

from tests.vm.test_datasources import BOOTS
from visa_build.errors import ConfigError
from visa_build.settings import DATASOURCE_BOOTS, make_settings

VALID = {
    "image": "images/ci",
    "build_dir": "build",
    "installer": "uv",
    "base_image": "",
    "mirror": "http://deb.debian.org/debian",
    "wheelhouse_port": 8765,
}


def test_defaults_fill_natively_and_compress_with_zlib() -> None:
    settings = make_settings(**VALID)
    assert (settings.fill, settings.compression) == ("native", "zlib")


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"fill": "docker"}, "visa.fill = 'docker' is not valid; allowed: native, guest"),
        ({"compression": "xz"}, "visa.compression = 'xz' is not valid; allowed: zlib, zstd"),
        ({"installer": "pip-index"}, "the installer pip-index installs inside the build VM"),
        ({"base_qcow2": "/images/debian.qcow2"}, "visa.base_qcow2 is provisioned inside the build VM"),
        ({"index_url": "http://pypi.example.org/simple"}, "is plain HTTP"),
    ],
)
def test_bad_settings_name_the_key(overrides: dict[str, str], complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint) as raised:
        make_settings(**{**VALID, **overrides})
    assert raised.value.tip, "a settings error must say how to fix it"


@pytest.mark.parametrize("overrides", [{"installer": "pip-index"}, {"base_qcow2": "/images/debian.qcow2"}])
def test_in_guest_builds_take_what_native_ones_cannot(overrides: dict[str, str]) -> None:
    assert make_settings(**{**VALID, **overrides, "fill": "guest"}).fill == "guest"


@pytest.mark.parametrize("folder", ["/srv/visa build", "/srv/visa,build", "/srv/visa;build", "/srv/visa'build"])
def test_a_build_folder_that_option_strings_would_split_is_refused(folder: str) -> None:
    with pytest.raises(ConfigError, match="visa.build_dir = .* holds a character") as raised:
        make_settings(**{**VALID, "build_dir": folder})
    assert "INVOKE_VISA_BUILD_DIR" in raised.value.tip


def test_a_plain_http_index_needs_an_explicit_setting() -> None:
    settings = make_settings(**{**VALID, "index_url": "http://pypi.example.org/simple", "index_allow_http": True})
    assert settings.index_url.startswith("http://")


def test_datasource_boots_are_known_names_or_none() -> None:
    assert make_settings(datasource_boots="nova, config-drive").datasource_boots == ("nova", "config-drive")
    assert make_settings(datasource_boots="").datasource_boots == ()
    with pytest.raises(ConfigError, match=r"visa.datasource_boots = 'nova,azure' names \['azure'\]"):
        make_settings(datasource_boots="nova,azure")


def test_every_metadata_path_boot_runs_by_default() -> None:
    """visa.datasource_boots defaults to every boot tests/vm/test_datasources.py knows."""
    assert set(BOOTS) == set(DATASOURCE_BOOTS), "settings.DATASOURCE_BOOTS and the boots of tests/vm differ"
    assert make_settings().datasource_boots == DATASOURCE_BOOTS, "visa.datasource_boots leaves some boots out"
