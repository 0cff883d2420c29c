"""The build context shared by the Dockerfile and Packer: provision/ and the rendered spec files."""

from __future__ import annotations

import shutil
from pathlib import Path

from . import render
from .image_spec import ImageSpec
from .resources import project_files

PACKAGES_FILE = project_files() / "provision" / "packages.txt"


def image_packages() -> tuple[str, ...]:
    """The Debian packages every image needs (provision/packages.txt, comments dropped)."""
    lines = PACKAGES_FILE.read_text().splitlines()
    return tuple(name for line in lines for name in line.split("#", 1)[0].split())


def _write(path: Path, text: str) -> None:
    """Write atomically so an interrupted run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def _lay_out_layers(spec: ImageSpec, layers_dir: Path, dockerfile: Path) -> None:
    """The site's layers: their files under spec/layers/ (an empty debs/ and overlay/ when there are none) and
    their steps in the Dockerfile, at its mark."""
    for folder in ("debs", "scripts", "hooks"):
        (layers_dir / folder).mkdir(parents=True, exist_ok=True)
    for name, source in render.layer_files(spec).items():
        shutil.copyfile(source, layers_dir / name)
        (layers_dir / name).chmod(0o755 if name.startswith(("scripts/", "hooks/")) else 0o644)
    overlay = layers_dir / "overlay"
    if spec.layers.overlay:
        shutil.copytree(spec.layers.overlay, overlay, symlinks=True)  # the spec refused symlinks already
    overlay.mkdir(exist_ok=True)
    text = dockerfile.read_text()
    if render.DOCKERFILE_LAYERS_MARK not in text:
        raise AssertionError(f"{dockerfile} has no {render.DOCKERFILE_LAYERS_MARK} line")
    _write(dockerfile, text.replace(render.DOCKERFILE_LAYERS_MARK + "\n", render.site_layer_steps(spec)))


def prepare(spec: ImageSpec, destination: Path, *, index_ca_bundle: str = "") -> Path:
    """Lay out `destination` as provision/, spec/ and docker/ (spec/ with the index's CA bundle when one is
    given); returns it."""
    files = render.spec_files(spec)
    if destination.exists():
        shutil.rmtree(destination)
    shutil.copytree(project_files() / "provision", destination / "provision")
    shutil.copytree(project_files() / "docker", destination / "docker")
    spec_dir = destination / "spec"
    for name, text in files.items():
        _write(spec_dir / name, text)
    (spec_dir / "desktop").mkdir()  # always there: the Dockerfile copies it
    _lay_out_layers(spec, spec_dir / render.LAYERS, destination / "docker" / "Dockerfile")
    if spec.desktop and spec.desktop.guacd_deb:
        shutil.copyfile(spec.desktop.guacd_deb, spec_dir / render.GUACD_DEB)
    if index_ca_bundle:
        shutil.copyfile(index_ca_bundle, spec_dir / render.INDEX_CA_FILE)
    return destination
