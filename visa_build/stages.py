"""The provisioning stages of an in-guest build (visa.fill = guest): each is a Packer build from the previous
stage's qcow2, keyed by its own inputs, so a data-analysis pin change rebuilds the last stage only, never the
JupyterLab venv stage. Natively filled builds use Docker's layers instead."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .artefact import key_of
from .render import INDEX_CA_FILE

#: Runs at the end of every stage (provision/99-seal.sh is Packer's shutdown command), so each stage's qcow2
#: boots like a fresh base image for the next one.
CLEANUP = "90-image-cleanup.sh"


@dataclass(frozen=True)
class Stage:
    name: str
    scripts: tuple[str, ...]  # from provision/, in order, before CLEANUP
    reads: tuple[str, ...]  # build-context files or folders the scripts read (missing ones count as empty)

    def key(self, context_dir: Path, *inputs: str) -> str:
        """Key of this stage's qcow2: what it reads from the build context plus `inputs` (the previous stage's
        key, or the base image and build settings for the first stage)."""
        return key_of(*inputs, self.name, repr(self.scripts), tree_digest(context_dir, self.reads))


JUPYTERLAB = Stage(
    "jupyterlab",
    ("10-system-packages.sh", "20-jupyterlab.sh"),
    reads=(
        "provision/lib.sh",
        "provision/packages.txt",
        "provision/10-system-packages.sh",
        "provision/20-jupyterlab.sh",
        f"provision/{CLEANUP}",
        "provision/99-seal.sh",
        "spec/jupyterlab.txt",
        f"spec/{INDEX_CA_FILE}",
    ),
)
IMAGE = Stage(
    "image",
    (
        "30-data-analysis.sh",
        "35-desktop.sh",
        "40-jupyter-service.sh",
        "42-site-settings.sh",
        "43-site-layers.sh",
        "45-debian-updates.sh",
        "50-target.sh",
    ),
    reads=("provision", "spec"),
)
STAGES = (JUPYTERLAB, IMAGE)


def tree_digest(root: Path, paths: tuple[str, ...]) -> str:
    """Key of the files under `root` named by `paths` (files, or folders taken whole): names, bytes, modes."""
    parts: list[str | bytes] = []
    for name in paths:
        top = root / name
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for path in files:
            parts += [str(path.relative_to(root)), path.read_bytes(), str(path.stat().st_mode & 0o111)]
    return key_of(*parts)
