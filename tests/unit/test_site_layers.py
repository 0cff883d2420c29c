"""A spec's [layers]: checked when the spec is loaded (one line naming what is wrong), laid out in the build
context's spec/layers/ with one Dockerfile step per layer, and taken from a site's own folder when it inherits."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import IMAGES
from visa_build import build_context, render
from visa_build.errors import ConfigError
from visa_build.image_spec import load_image_spec

DEB = b"!<arch>\na site's .deb\n"


def spec_with_layers(tmp_path: Path, layers: str) -> Path:
    for name in ("ci", "visa-jupyter"):
        shutil.copytree(IMAGES / name, tmp_path / name)
    folder = tmp_path / "ci"
    (folder / "image.toml").write_text((folder / "image.toml").read_text() + "\n[layers]\n" + layers)
    (folder / "tool.deb").write_bytes(DEB)
    (folder / "overlay" / "etc").mkdir(parents=True)
    (folder / "overlay" / "etc" / "app.conf").write_text("key = value\n")
    (folder / "one.sh").write_text("#!/bin/sh\necho one\n")
    (folder / "two.sh").write_text("#!/bin/sh\necho two\n")
    (folder / "hook.sh").write_text("#!/bin/sh\necho hook\n")
    return folder


FULL = (
    'packages = ["htop", "tree"]\n'
    f'debs = [{{ file = "tool.deb", sha256 = "{hashlib.sha256(DEB).hexdigest()}" }}]\n'
    'overlay = "overlay"\noverlay_modes = { "etc/app.conf" = "640" }\n'
    'scripts = ["one.sh", "two.sh"]\nboot_hooks = ["hook.sh"]\n'
)


def test_the_layers_reach_the_build_context_each_as_its_own_dockerfile_step(tmp_path: Path) -> None:
    spec = load_image_spec(spec_with_layers(tmp_path, FULL))
    context = build_context.prepare(spec, tmp_path / "context")
    layers = context / "spec" / "layers"
    assert (layers / "packages.txt").read_text() == "htop\ntree\n"
    assert (layers / "overlay-modes.txt").read_text() == "0640 etc/app.conf\n"
    assert (layers / "debs" / "01-tool.deb").read_bytes() == DEB
    assert (layers / "overlay" / "etc" / "app.conf").read_text() == "key = value\n"
    assert sorted(p.name for p in (layers / "scripts").iterdir()) == ["01-one.sh", "02-two.sh"]
    assert os.access(layers / "scripts" / "01-one.sh", os.X_OK) and os.access(layers / "hooks" / "01-hook.sh", os.X_OK)
    dockerfile = (context / "docker" / "Dockerfile").read_text()
    assert render.DOCKERFILE_LAYERS_MARK not in dockerfile
    runs = [line for line in dockerfile.splitlines() if "43-site-layers.sh" in line and line.startswith("RUN")]
    assert runs == [
        "RUN /opt/visa/build/provision/43-site-layers.sh packages",
        "RUN /opt/visa/build/provision/43-site-layers.sh overlay",
        "RUN /opt/visa/build/provision/43-site-layers.sh script 01-one.sh",
        "RUN /opt/visa/build/provision/43-site-layers.sh script 02-two.sh",
        "RUN /opt/visa/build/provision/43-site-layers.sh hooks",
    ], "each layer is a step of its own, so a changed script rebuilds only the steps from it on"
    # each script's step copies that script alone: a change to two.sh leaves one.sh's step (and layer) as it was
    one = dockerfile.index("COPY spec/layers/scripts/01-one.sh")
    assert dockerfile.index("COPY spec/layers/scripts/02-two.sh") > dockerfile.index("script 01-one.sh") > one
    assert dockerfile.index("43-site-layers.sh hooks") < dockerfile.index("45-debian-updates.sh")


def test_a_spec_without_layers_has_no_layer_steps(tmp_path: Path) -> None:
    spec = load_image_spec(IMAGES / "ci")
    dockerfile = (build_context.prepare(spec, tmp_path / "context") / "docker" / "Dockerfile").read_text()
    assert "43-site-layers.sh" not in dockerfile and render.DOCKERFILE_LAYERS_MARK not in dockerfile
    assert not spec.layers


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ('debs = [{ file = "tool.deb", sha256 = "' + "0" * 64 + '" }]', "tool.deb has sha256"),
        ('debs = [{ file = "tool.deb" }]', "write each as { file"),
        ('debs = [{ file = "missing.deb", sha256 = "' + "0" * 64 + '" }]', "name an existing file"),
        ('overlay = "../visa-jupyter"', "no '..' or symlink out of it"),
        ('overlay = "overlay"\noverlay_modes = { "../image.toml" = "0644" }', "name a file or folder in the overlay"),
        ('overlay = "overlay"\noverlay_modes = { "etc/app.conf" = "rw" }', "give an octal mode"),
        ('overlay_modes = { "etc/app.conf" = "0640" }', "set overlay (the folder) first"),
        ('scripts = ["../ci/one.sh", "/etc/passwd"]', "name a path inside"),
        ('scripts = ["nothing.sh"]', "name an existing file"),
        ('packages = ["htop; rm -rf /"]', "name distribution packages"),
        ('boot_hook = ["hook.sh"]', "known keys: packages, debs"),
    ],
)
def test_bad_layers_are_refused_naming_what_is_wrong(tmp_path: Path, layers: str, message: str) -> None:
    folder = spec_with_layers(tmp_path, layers + "\n")
    with pytest.raises(ConfigError, match=r"\[layers\]") as caught:
        load_image_spec(folder)
    assert message in str(caught.value), caught.value


def test_an_overlay_with_a_symlink_is_refused(tmp_path: Path) -> None:
    """A symlink could make the overlay write anywhere in the image, or copy a host file into it."""
    folder = spec_with_layers(tmp_path, 'overlay = "overlay"\n')
    (folder / "overlay" / "etc" / "shadow").symlink_to("/etc/shadow")
    with pytest.raises(ConfigError, match=r"overlay holds a symlink, etc/shadow"):
        load_image_spec(folder)


def test_a_site_spec_that_inherits_takes_its_layers_from_its_own_folder(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "setup.sh").write_text("#!/bin/sh\n")
    (site / "image.toml").write_text(
        '[image]\nname = "ill-ci"\ninherits = "visa-build:ci"\n\n[layers]\nscripts = ["setup.sh"]\n'
    )
    spec = load_image_spec(site)
    assert spec.layers.scripts == (site / "setup.sh",)
