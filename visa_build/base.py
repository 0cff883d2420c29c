"""The Docker base image made from the Debian mirror (mmdebstrap + docker import), cached by content."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from . import progress
from .container import docker_client, image_exists
from .context import image_packages
from .errors import VisaBuildError
from .process import Runner, run

#: Packages of the base: an init, cloud-init and what a VISA instance has before provisioning, plus the
#: image's own packages (provisioning then skips apt).
BASE_PACKAGES = tuple(dict.fromkeys(
    ("systemd-sysv", "dbus", "cloud-init", "locales", "ca-certificates", "python3", "sudo", *image_packages())
))  # fmt: skip


def mmdebstrap_argv(suite: str, mirror: str, output: Path) -> list[str]:
    return [
        "mmdebstrap",
        "--variant=minbase",
        "--format=tar",
        f"--include={','.join(BASE_PACKAGES)}",
        suite,
        str(output),
        mirror,
    ]


def base_tag(suite: str, mirror: str) -> str:
    """Docker tag of the base image, keyed by a hash of every input of its build."""
    key = hashlib.sha256(repr((suite, mirror, BASE_PACKAGES, "minbase")).encode()).hexdigest()[:12]
    return f"visa-build/base:{suite}-{key}"


def ensure_base_image(suite: str, mirror: str, cache_dir: Path, *, runner: Runner = run) -> str:
    """Tag of the local base image, building it from the mirror when absent."""
    tag = base_tag(suite, mirror)
    client = docker_client()
    if image_exists(client, tag):
        progress.note(f"base image {tag}: cached")
        return tag
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cache_dir / f"{tag.split(':')[1]}.partial.tar"  # only kept until it is imported
    with progress.step(f"Building base image {tag} from {mirror} (mmdebstrap)"):
        try:
            runner(
                mmdebstrap_argv(suite, mirror, partial),
                timeout=1200,
                on_line=progress.line,
                tip="check that the Debian mirror answers (visa.mirror)",
            )
            with partial.open("rb") as handle:
                client.api.import_image_from_data(handle.read(), repository=tag.split(":")[0], tag=tag.split(":")[1])
        finally:
            if partial.exists():
                os.unlink(partial)
    if not image_exists(client, tag):
        raise VisaBuildError(f"docker import did not produce {tag}", tip="see the Docker daemon log")
    return tag
