"""The container double's images, built by `docker build` from the build context the qcow2 uses too: the
image's filesystem (Dockerfile stage `filesystem`, the qcow2's source when filled natively) and the double
(stage `double`: that filesystem plus the container's difference). Docker's layer cache is the stage cache."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from . import archive_state, build_context, build_proxy, image_inputs, progress, render, runs, wheelhouse
from .docker_engine import build_image, build_network, docker_client, image_id, image_labels, remove_unused_images
from .errors import ConfigError
from .image_spec import ImageSpec, require_buildable
from .process import alongside
from .settings import Settings
from .wheelhouse import ensure_wheelhouse
from .wheelhouse_server import DOCKER_WHEELHOUSE_HOST, serving_to_docker

FILESYSTEM_STAGE = "filesystem"
#: Beside a natively filled qcow2, a file of this suffix holds the id of the double built with it (tests/vm compare).
DOUBLE_RECORD_SUFFIX = ".double"


def container_tag(spec: ImageSpec) -> str:
    return f"visa-build/{spec.name}:latest"


def filesystem_tag(spec: ImageSpec) -> str:
    return f"visa-build/{spec.name}:{FILESYSTEM_STAGE}"


def recorded_doubles(build_dir: Path) -> set[str]:
    """Ids of the doubles that the qcow2s in `build_dir` were filled beside (their tests compare with them)."""
    ids: set[str] = set()
    for record in (build_dir / "images").glob(f"*/*{DOUBLE_RECORD_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):  # removed meanwhile by a build of another spec
            ids |= set(record.read_text().split())
    return ids


@dataclass(frozen=True)
class DoubleImages:
    tag: str  # the container double's tag
    double_id: str
    filesystem_id: str  # the image's filesystem without the container's difference


def build_container(
    spec: ImageSpec, settings: Settings, *, state: str | None = None, context_dir: Path | None = None
) -> DoubleImages:
    """Build the double of `spec` and its filesystem image, with Debian's updates of archive `state` (read
    from the mirrors when not given, and again once when the build fails after a mirror sync changed it), from
    `context_dir` (prepared here when not given). Unchanged layers come from Docker's cache."""
    require_buildable(spec)
    if settings.installer == "pip-index":
        raise ConfigError(
            "the pip-index installer installs inside the build VM; Docker builds install from the wheelhouse",
            tip="use --installer uv (or pip), or set visa.fill = guest for a qcow2",
        )
    if state is None:
        return image_inputs.on_current_archive(
            spec,
            settings,
            lambda states: build_container(
                spec, settings, state=archive_state.state_key(states), context_dir=context_dir
            ),
        )
    # The Docker base (mmdebstrap) is made while the wheels download; sdists wait for it, to be built in it.
    with alongside(lambda: image_inputs.base_image(spec, settings)) as base:
        wheelhouses = ensure_wheelhouse(spec, settings.cache_dir, source_image=base)
        base_tag = base()
    context_dir = context_dir or build_context.prepare(spec, settings.build_dir / "context" / spec.name)
    tag, log_path = container_tag(spec), settings.log_dir / f"docker-build-{spec.name}.log"
    with contextlib.closing(docker_client()) as client:
        previous = [image_id(client, tag), image_id(client, filesystem_tag(spec))]
    with (
        build_network(spec.name, runs.RUN_ID) as (network, address),
        serving_to_docker(wheelhouses, port=settings.wheelhouse_port, address=address) as url,
        progress.step(f"Building container image {tag}"),
    ):
        env = render.provision_env(
            spec,
            target="container",
            wheelhouse_url=url,
            installer=settings.installer,
            wheel_bytecode=wheelhouse.carries_bytecode(spec),
            debian_state=state,
        )
        # Docker's predefined proxy arguments: RUN steps see them, the image's history and layers do not
        args = {"BASE_IMAGE": base_tag, **env, **build_proxy.environment(settings.proxy, settings.no_proxy)}
        build_dir_id = runs.build_dir_id(settings.build_dir)
        hosts, labels = {DOCKER_WHEELHOUSE_HOST: address}, image_labels(build_dir_id)
        double_id = build_image(context_dir, tag, args, network=network, hosts=hosts, labels=labels, log_path=log_path)
        filesystem_id = build_image(
            context_dir,
            filesystem_tag(spec),
            args,
            network=network,
            hosts=hosts,
            target=FILESYSTEM_STAGE,
            labels=labels,
            log_path=log_path.with_suffix(".filesystem.log"),
        )
    superseded = [image for image in previous if image and image not in (double_id, filesystem_id)]
    if remove_unused_images(superseded, build_dir_id=build_dir_id, keep=recorded_doubles(settings.build_dir)):
        progress.note(f"removed the images of {spec.name} this build superseded (no tag or qcow2 names them)")
    return DoubleImages(tag, double_id, filesystem_id)
