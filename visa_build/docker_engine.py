"""The Docker engine through its SDK: the client, image builds stopped when silent, and removing a run's containers."""

from __future__ import annotations

import collections
import contextlib
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import requests
import urllib3
from docker.client import from_env

from . import progress
from .errors import VisaBuildError

LOGGER = logging.getLogger(__name__)

#: Label on every container visa-build starts, so leftovers of a killed run can be found and removed; and on every
#: image it builds (value IMAGE_ROLE, with the build folder's id: runs.build_dir_id), so one that a rebuild left
#: untagged can be found and removed by a run of the same build folder (another folder's qcow2s may need it).
LABEL = "org.visa-build.role"
IMAGE_ROLE = "image"
BUILD_DIR_LABEL = "org.visa-build.build-dir-id"
RUN_LABEL = "org.visa-build.run"  # the id of the run that started the container (runs.py)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


#: A docker build that prints nothing for this long is stopped (a RUN step that hangs, a server that never answers).
BUILD_SILENCE_SECONDS = 1200


def docker_client(timeout: float = 300) -> Any:
    """The Docker engine's client; a request that gets no data for `timeout` seconds fails."""
    try:
        client = from_env(timeout=timeout)
        client.ping()
    except docker.errors.DockerException as exc:
        raise VisaBuildError(
            f"the Docker engine does not answer: {exc}",
            tip="start it with: ./visa-build doctor --fix (or: dockerd &)",
        ) from None
    return client


def image_labels(build_dir_id: str) -> dict[str, str]:
    """The labels of an image that a build of the build folder `build_dir_id` makes."""
    return {LABEL: IMAGE_ROLE, BUILD_DIR_LABEL: build_dir_id}


def image_id(client: Any, tag: str) -> str | None:
    """The id of the image `tag` names, or None when there is none."""
    try:
        return str(client.images.get(tag).id)
    except docker.errors.ImageNotFound:
        return None


def image_exists(client: Any, tag: str) -> bool:
    return image_id(client, tag) is not None


@contextlib.contextmanager
def build_network(name: str, run_id: str) -> Iterator[tuple[str, str]]:
    """A bridge network of run `run_id` for its builds, removed afterwards; yields its name and gateway address.
    A build on it reaches the archives through the engine's NAT and this host only at that address, never the
    host's loopback services (Glance, the Docker API, a site's local proxy)."""
    client = docker_client()
    labels = {LABEL: "build-network", RUN_LABEL: run_id}
    try:
        network = client.networks.create(f"visa-build-{run_id}-{name}", driver="bridge", labels=labels)
        network.reload()
        gateway = str(network.attrs["IPAM"]["Config"][0]["Gateway"])
    except (docker.errors.APIError, KeyError, IndexError) as exc:
        raise VisaBuildError(
            f"the Docker engine could not make a build network: {exc}",
            tip="a bridge network needs free address pools; `docker network prune` removes unused networks",
        ) from None
    try:
        yield network.name, gateway
    finally:
        _remove_network(network)


def _remove_network(network: Any) -> None:
    """Remove `network` once the engine has let go of the build's last container (a cancelled step's takes a
    moment); gone already counts as removed, one that stays is left to the next run's reaper."""
    for _ in range(30):
        try:
            network.remove()
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError:  # still in use by a container the engine is removing
            time.sleep(1)
    LOGGER.warning("the build network %s is still in use; the next run removes it", network.name)


def build_image(
    context: Path,
    tag: str,
    buildargs: dict[str, str],
    *,
    network: str,
    hosts: dict[str, str],
    log_path: Path,
    target: str | None = None,
    labels: dict[str, str] | None = None,
    dockerfile: str = "docker/Dockerfile",
    silence: float = BUILD_SILENCE_SECONDS,
) -> str:
    """docker build of context/`dockerfile` (up to its stage `target`, or all of it) on the Docker `network` (a
    build_network's name), with `hosts` in its /etc/hosts (to reach the wheelhouse); returns the image id. A build
    silent for `silence` seconds is stopped (the engine cancels it when the client goes) with the log's tail."""
    client = docker_client(timeout=silence)
    tail: collections.deque[str] = collections.deque(maxlen=40)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # Closing the client ends the build's connection: on an error or a stop signal the engine cancels the build.
    with contextlib.closing(client), log_path.open("w") as log:
        stream = client.api.build(
            path=str(context),
            dockerfile=dockerfile,
            tag=tag,
            buildargs=buildargs,
            network_mode=network,
            extra_hosts=hosts,
            use_config_proxy=False,  # a client's proxy settings would send the host's wheelhouse requests to it
            rm=True,
            forcerm=True,
            decode=True,
            pull=False,
            target=target,
            labels=labels,
            timeout=silence,
        )
        for chunk in _until_silent(stream, silence, tag, tail, log_path):
            text = chunk.get("stream") or chunk.get("status") or ""
            for line in _ANSI.sub("", text).splitlines():
                if line.strip():
                    log.write(line + "\n")
                    tail.append(line)
                    progress.line(line)
            if "error" in chunk:
                shown = "\n".join(f"    {line}" for line in tail)
                raise VisaBuildError(
                    f"docker build of {tag} failed: {chunk['error'].strip()}\n  last output:\n{shown}",
                    tip=f"the full build log is {log_path}",
                )
        return str(client.images.get(tag).id)


def remove_untagged_images(build_dir_id: str, *, keep: set[str], client: Any = None) -> list[str]:
    """Remove the images builds of build folder `build_dir_id` made that no tag names any more (a rebuild moved
    their tag), but those in `keep` or in use; returns the ids removed."""
    client = client or docker_client()
    built_here = {"dangling": True, "label": f"{BUILD_DIR_LABEL}={build_dir_id}"}
    dangling = [str(image.id) for image in client.images.list(filters=built_here)]
    return remove_unused_images(dangling, build_dir_id=build_dir_id, keep=keep, client=client)


def remove_unused_images(image_ids: list[str], *, build_dir_id: str, keep: set[str], client: Any = None) -> list[str]:
    """Remove each of `image_ids` that a build of build folder `build_dir_id` made, that no tag names, is not in
    `keep` and that no container or other image uses (Docker refuses those), with its parent steps no other image
    shares; returns the ids removed. Only disk space is at stake: an image Docker does not remove is kept, noted."""
    client = client or docker_client()
    removed = []
    for image in image_ids:
        if image in keep:
            continue
        try:
            found = client.images.get(image)
            if found.tags or found.labels.get(BUILD_DIR_LABEL) != build_dir_id:
                continue
            client.images.remove(image)  # not forced
        except docker.errors.ImageNotFound:
            continue  # removed with a child removed before it, or by another run
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: in use by a container, or the parent of another image
                progress.note(f"kept the unused image {image}: Docker did not remove it ({exc})")
            continue
        except docker.errors.DockerException as exc:
            progress.note(f"kept the unused image {image}: {exc}")
            continue
        removed.append(image)
    return removed


def _until_silent(
    stream: Iterator[dict[str, Any]], silence: float, tag: str, tail: collections.deque[str], log_path: Path
) -> Iterator[dict[str, Any]]:
    """The build's output, or a clear error once it has been silent for `silence` seconds."""
    try:
        yield from stream
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError):  # the stream reads urllib3 itself
        shown = "\n".join(f"    {line}" for line in tail)
        raise VisaBuildError(
            f"docker build of {tag} printed nothing for {silence:.0f} s and was stopped:\n  last output:\n{shown}",
            tip=f"a RUN step hangs (e.g. a server that accepts and never answers); the full log is {log_path}",
        ) from None


def remove_containers_of(run_id: str) -> int:
    """Remove the containers, then the build networks, of run `run_id` (a killed run's); returns how many
    containers."""
    client = docker_client()
    leftovers = client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"})
    for container in leftovers:
        try:
            container.remove(force=True)
        except docker.errors.APIError as exc:  # gone, or being removed, by another run's reaper: done
            if not isinstance(exc, docker.errors.NotFound) and exc.status_code != 409:
                raise
    for network in client.networks.list(filters={"label": f"{RUN_LABEL}={run_id}"}):
        _remove_network(network)
    return len(leftovers)
