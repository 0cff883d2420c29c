"""The container double's images, built by `docker build` from the build context the qcow2 uses too: the
image's filesystem (Dockerfile stage `filesystem`, the qcow2's source when filled natively) and the double
(stage `double`: that filesystem plus the container's difference). Docker's layer cache is the stage cache."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from . import base, context, progress, render, rootfs, upstream, wheelhouse
from .config import ImageSpec
from .container import build_image
from .errors import ConfigError
from .settings import Settings
from .wheelhouse import DOCKER_WHEELHOUSE_HOST, ensure_wheelhouse, serving_to_docker

FILESYSTEM_STAGE = "filesystem"


def check_buildable(spec: ImageSpec) -> None:
    blockers = spec.build_blockers()
    if blockers:
        raise ConfigError(
            f"the image spec {spec.directory} cannot be built here:\n" + "\n".join(f"  - {b}" for b in blockers),
            tip="build images/visa-jupyter, or adapt the spec (see README, Image specs)",
        )


def container_tag(spec: ImageSpec) -> str:
    return f"visa-build/{spec.name}:latest"


def filesystem_tag(spec: ImageSpec) -> str:
    return f"visa-build/{spec.name}:{FILESYSTEM_STAGE}"


@dataclass(frozen=True)
class DoubleImages:
    tag: str  # the container double's tag
    double_id: str
    filesystem_id: str  # the image's filesystem without the container's difference


def image_sources(spec: ImageSpec, settings: Settings) -> rootfs.Sources:
    """Where the image's Debian packages come from, and which base generation it is built on."""
    generation = rootfs.generation(settings.rebase_days, time.time())
    return rootfs.Sources(spec.debian, settings.mirror, settings.security_mirror, generation)


def debian_state(spec: ImageSpec, settings: Settings) -> str:
    """Digest of the Debian suites the image installs from, as the mirrors serve them now."""
    states = upstream.read_state(image_sources(spec, settings))
    progress.note("Debian archive: " + ", ".join(f"{s.suite} of {s.date}" for s in states))
    return upstream.state_key(states)


def base_image(spec: ImageSpec, settings: Settings) -> str:
    """The Docker base: the site's (visa.base_image) or the VISA root filesystem from the Debian mirror."""
    return settings.base_image or base.ensure_base_image(image_sources(spec, settings), settings.cache_dir)


def build_container(
    spec: ImageSpec, settings: Settings, *, state: str | None = None, build_context: Path | None = None
) -> DoubleImages:
    """Build the double of `spec` and its filesystem image, with Debian's updates of archive `state` (read
    from the mirrors when not given), from `build_context` (prepared here when not given). Unchanged layers
    come from Docker's cache."""
    check_buildable(spec)
    if settings.installer == "pip-index":
        raise ConfigError(
            "the pip-index installer installs inside the build VM; Docker builds install from the wheelhouse",
            tip="use --installer uv (or pip), or set visa.fill = guest for a qcow2",
        )
    state = state if state is not None else debian_state(spec, settings)
    base_tag = base_image(spec, settings)
    houses = ensure_wheelhouse(spec, settings.cache_dir, source_image=lambda: base_tag)
    build_context = build_context or context.prepare(spec, settings.build_dir / "context" / spec.name)
    tag, log_path = container_tag(spec), settings.log_dir / f"docker-build-{spec.name}.log"
    with (
        serving_to_docker(houses, port=settings.wheelhouse_port) as (url, address),
        progress.step(f"Building container image {tag}"),
    ):
        env = render.provision_env(spec, target="container", wheelhouse_url=url, installer=settings.installer,
                                   wheel_bytecode=wheelhouse.carries_bytecode(spec), debian_state=state)  # fmt: skip
        args = {"BASE_IMAGE": base_tag, **env}
        hosts = {DOCKER_WHEELHOUSE_HOST: address}
        double_id = build_image(build_context, tag, args, hosts=hosts, log_path=log_path)
        filesystem_id = build_image(build_context, filesystem_tag(spec), args, hosts=hosts, target=FILESYSTEM_STAGE,
                                    log_path=log_path.with_suffix(".filesystem.log"))  # fmt: skip
    return DoubleImages(tag, double_id, filesystem_id)
