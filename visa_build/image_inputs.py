"""What an image is built from, beside its spec: where its packages come from (the release's suites and the base
generation), the archive's current state, and the Docker base image."""

from __future__ import annotations

import time

from . import archive_keyring, archive_state, base_docker, base_rootfs, progress
from .image_spec import ImageSpec
from .settings import Settings


def sources(spec: ImageSpec, settings: Settings) -> base_rootfs.Sources:
    """Where the image's packages come from (the distribution's mirrors, verified with its archive keyring), and
    which base generation it is built on."""
    generation = base_rootfs.generation(settings.rebase_days, time.time())
    if spec.distro.distribution == "ubuntu":
        keyring = archive_keyring.ubuntu_keyring(settings.cache_dir, settings.mirror)
        return base_rootfs.Sources(spec.distro, *mirrors(spec, settings), generation, keyring=str(keyring))
    return base_rootfs.Sources(spec.distro, *mirrors(spec, settings), generation)


def mirrors(spec: ImageSpec, settings: Settings) -> tuple[str, str]:
    """The image's archive and security archive: its distribution's visa.*mirror settings."""
    if spec.distro.distribution == "ubuntu":
        return settings.ubuntu_mirror, settings.ubuntu_security_mirror
    return settings.mirror, settings.security_mirror


def archive_key(spec: ImageSpec, settings: Settings) -> str:
    """Digest of the suites the image installs from, as the mirrors serve them now."""
    states = archive_state.read_state(sources(spec, settings))
    progress.note(
        f"{spec.distro.distribution.capitalize()} archive: " + ", ".join(f"{s.suite} of {s.date}" for s in states)
    )
    return archive_state.state_key(states)


def base_image(spec: ImageSpec, settings: Settings) -> str:
    """The Docker base: the site's (visa.base_image) or the VISA root filesystem from the mirrors."""
    return settings.base_image or base_docker.ensure_base_image(sources(spec, settings), settings.cache_dir)
