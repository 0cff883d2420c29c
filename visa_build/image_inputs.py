"""What an image is built from, beside its spec: where its packages come from (the release's suites and the base
generation), the archive's current state, and the Docker base image."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from . import archive_keyring, archive_state, base_docker, base_rootfs, progress
from .errors import ConfigError, ToolNotFoundError, VisaBuildError
from .image_spec import ImageSpec
from .settings import Settings

T = TypeVar("T")


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


def archive_states(spec: ImageSpec, settings: Settings) -> tuple[archive_state.SuiteState, ...]:
    """The suites the image installs from, as the mirrors serve them now."""
    states = archive_state.read_state(sources(spec, settings))
    progress.note(
        f"{spec.distro.distribution.capitalize()} archive: " + ", ".join(f"{s.suite} of {s.date}" for s in states)
    )
    return states


def archive_key(spec: ImageSpec, settings: Settings) -> str:
    """Digest of the suites the image installs from, as the mirrors serve them now."""
    return archive_state.state_key(archive_states(spec, settings))


def on_current_archive(
    spec: ImageSpec,
    settings: Settings,
    build: Callable[[tuple[archive_state.SuiteState, ...]], T],
    *,
    states: tuple[archive_state.SuiteState, ...] | None = None,
) -> T:
    """`build` on the archive's state (`states`, or read now). When it fails and a mirror sync has changed the
    archive since (the Debian-updates layer found another state than the one read, or a suite a security update
    that came after it), once more on the new state: with the native fill, Docker's cache keeps every layer
    before the updates (with visa.fill = guest, the image stage runs again)."""
    states = states if states is not None else archive_states(spec, settings)
    try:
        return build(states)
    except (ConfigError, ToolNotFoundError):  # no other state of the archive mends these
        raise
    except VisaBuildError as error:
        try:
            now = archive_states(spec, settings)
        except VisaBuildError as unread:
            progress.note(f"after the failure, the archive's state could not be read again: {unread}")
            raise error from None
        before, after = archive_state.state_key(states), archive_state.state_key(now)
        if after == before:
            raise
        progress.note(f"{error}; the Debian archive changed since (state {before} is now {after}): once more on it")
        try:
            return build(now)
        except VisaBuildError as again:  # the first error's output was shown above: its first line names it
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise VisaBuildError(f"{again} (before, on archive state {before}: {first})", tip=again.tip) from None


def base_image(spec: ImageSpec, settings: Settings) -> str:
    """The Docker base: the site's (visa.base_image) or the VISA root filesystem from the mirrors."""
    return settings.base_image or base_docker.ensure_base_image(sources(spec, settings), settings.cache_dir)
