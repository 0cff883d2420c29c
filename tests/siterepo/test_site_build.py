"""A site's own repository, as a site makes it: visa-build's wheel installed into a fresh venv, `visa-build init`,
and the site's spec adding its own layers (a .deb made here with dpkg-deb, an overlay file, two build scripts, a
boot hook) on top of images/ci. From that repository alone the installed `visa-build` builds the site's double and
tests it with the installed contract suites; the image records each layer for the manifest; a change to the
second script rebuilds only the layers from that script on (Docker's cache keeps the others); and a script that
fails stops the build, naming it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

import docker
from visa_build.docker_engine import docker_client, image_exists

pytest_plugins = ("tests.installed",)  # the fixtures wheel and installed
ExtraEnv = dict[str, str] | None

SITE = "ill-ci"
#: The tags of a site image: its double and its filesystem.
SUFFIXES = ("latest", "filesystem")
DEB_CONTROL = """Package: ill-tools
Version: 2.0
Architecture: all
Maintainer: ILL <visa@example.org>
Description: a site's own package for its VISA image
"""
LAYERS = """
[layers]
packages = ["tree"]
debs = [{{ file = "debs/ill-tools_2.0_all.deb", sha256 = "{sha256}" }}]
overlay = "overlay"
overlay_modes = {{ "etc/ill/visa.conf" = "0600" }}
scripts = ["scripts/10-ldap.sh", "scripts/20-homes.sh"]
boot_hooks = ["hooks/mount-data.sh"]
"""


def _visa_build(
    installed: Path, site: Path, pytestconfig: pytest.Config, *args: str, code: int = 0, settings: ExtraEnv = None
) -> str:
    """The installed visa-build run in the site's repository (the test run's build folder, for its caches; more
    `settings` as INVOKE_VISA_* variables), which must exit with `code`; its output."""
    env = {
        **(settings or {}),
        "PATH": f"{installed / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(site),
        "NO_COLOR": "1",
        "INVOKE_VISA_BUILD_DIR": str(pytestconfig.getoption("--visa-build-dir")),
        **{k: v for k, v in os.environ.items() if k.endswith(("_CA_BUNDLE", "SSL_CERT_FILE", "PIP_CERT"))},
    }
    ran = subprocess.run(
        [str(installed / "bin" / "visa-build"), *args], cwd=site, env=env, capture_output=True, text=True, timeout=1800
    )
    said = f"{ran.stdout[-4000:]}\n{ran.stderr[-3000:]}"
    assert ran.returncode == code, f"visa-build {' '.join(args)} exited {ran.returncode} in {site}:\n{said}"
    return ran.stdout + ran.stderr


def _make_site(installed: Path, work: Path, pytestconfig: pytest.Config) -> Path:
    _visa_build(installed, work, pytestconfig, "init", SITE, "--base", "ci")
    site, spec = work / SITE, work / SITE / "images" / SITE
    package = work / "package"
    (package / "DEBIAN").mkdir(parents=True)
    (package / "DEBIAN" / "control").write_text(DEB_CONTROL)
    (package / "usr/share/ill-tools").mkdir(parents=True)
    (package / "usr/share/ill-tools/README").write_text("ILL's tools\n")
    (spec / "debs").mkdir()
    deb = spec / "debs" / "ill-tools_2.0_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(package), str(deb)], check=True, capture_output=True
    )
    (spec / "overlay/etc/ill").mkdir(parents=True)
    (spec / "overlay/etc/ill/visa.conf").write_text("data = /data\n")
    (spec / "scripts").mkdir()
    (spec / "scripts/10-ldap.sh").write_text("#!/bin/sh\nset -e\necho ldap >>/var/lib/ill-scripts\n")
    (spec / "scripts/20-homes.sh").write_text("#!/bin/sh\nset -e\necho homes >>/var/lib/ill-scripts\n")
    (spec / "hooks").mkdir()
    (spec / "hooks/mount-data.sh").write_text('#!/bin/sh\necho "$VISA_ID $VISA_OWNER" >/var/lib/ill-hook\n')
    sha256 = hashlib.sha256(deb.read_bytes()).hexdigest()
    (spec / "image.toml").write_text((spec / "image.toml").read_text() + LAYERS.format(sha256=sha256))
    return site


def _layer_ids(tag: str) -> dict[str, str]:
    """The id of each step of `tag`'s image that ran 43-site-layers.sh, by what it ran (packages, overlay,
    script 01-..., hooks)."""
    history = docker_client().images.get(tag).history()
    return {
        entry["CreatedBy"].rpartition("43-site-layers.sh ")[2]: entry["Id"]
        for entry in history
        if "43-site-layers.sh " in entry["CreatedBy"] and "COPY" not in entry["CreatedBy"]
    }


def test_a_site_repository_builds_and_tests_its_layers_with_the_installed_visa_build(
    installed: Path, tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    site = _make_site(installed, tmp_path, pytestconfig)
    tag = f"visa-build/{SITE}:latest"
    try:
        _visa_build(installed, site, pytestconfig, "build-container")
        first = _layer_ids(tag)
        first_images = [docker_client().images.get(f"visa-build/{SITE}:{suffix}").id for suffix in SUFFIXES]
        assert set(first) == {"packages", "overlay", "script 01-10-ldap.sh", "script 02-20-homes.sh", "hooks"}, first

        facts = tmp_path / "facts.json"
        suites = f"-k 'site_layers or base_url' --visa-facts-out={facts}"
        _visa_build(installed, site, pytestconfig, "test-container", "--pytest-args", suites)
        gathered = json.loads(facts.read_text())
        layers = gathered["site"]["layers"]  # the manifest's and SBOM's source
        spec = site / "images" / SITE
        assert layers["script"] == {
            "01-10-ldap.sh": hashlib.sha256((spec / "scripts/10-ldap.sh").read_bytes()).hexdigest(),
            "02-20-homes.sh": hashlib.sha256((spec / "scripts/20-homes.sh").read_bytes()).hexdigest(),
        }, layers
        assert set(layers["deb"]) == {"01-ill-tools_2.0_all.deb"} and set(layers["hook"]) == {"01-mount-data.sh"}
        assert set(layers["overlay"]) == {"/etc/ill/visa.conf"}, layers

        # A change to the second script: the layers before it come from Docker's cache, it and those after do not.
        (spec / "scripts/20-homes.sh").write_text("#!/bin/sh\nset -e\necho homes, changed >>/var/lib/ill-scripts\n")
        _visa_build(installed, site, pytestconfig, "build-container")
        second = _layer_ids(tag)
        kept = [step for step in first if first[step] == second[step]]
        assert sorted(kept) == ["overlay", "packages", "script 01-10-ldap.sh"], (first, second)
        left = [image for image in first_images if image_exists(docker_client(), image)]
        assert not left, f"the rebuild left the images it superseded (no tag or qcow2 names them) in Docker: {left}"

        # A script that fails stops the build, naming it; the site's image stays the last good one.
        (spec / "scripts/30-fails.sh").write_text("#!/bin/sh\necho 'no LDAP server'\nexit 4\n")
        toml = spec / "image.toml"
        toml.write_text(
            toml.read_text().replace('"scripts/20-homes.sh"]', '"scripts/20-homes.sh", "scripts/30-fails.sh"]')
        )
        said = _visa_build(installed, site, pytestconfig, "build-container", code=1)
        assert "site script 03-30-fails.sh failed (exit 4)" in said, said[-3000:]
        assert _layer_ids(tag) == second, "a failed build changed the site's image"
    finally:
        for suffix in SUFFIXES:
            with contextlib.suppress(docker.errors.ImageNotFound):  # a build that failed made none
                docker_client().images.remove(f"visa-build/{SITE}:{suffix}", force=True)
