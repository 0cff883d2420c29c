"""How docker build is asked for: the client's proxy settings (~/.docker/config.json) never reach the build,
whose wheelhouse requests go to this host; its images are labelled with the build folder's id. Which images a
rebuild or `clean` removes: untagged ones of this build folder that nothing uses."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker.errors
import pytest

from visa_build import docker_engine


def test_the_build_ignores_the_docker_clients_proxy_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: dict[str, Any] = {}

    def build(**options: Any) -> list[dict[str, str]]:
        asked.update(options)
        return [{"stream": "Successfully built 0123"}]

    client = SimpleNamespace(
        api=SimpleNamespace(build=build),
        images=SimpleNamespace(get=lambda tag: SimpleNamespace(id="sha256:0123")),
        close=lambda: None,
    )
    monkeypatch.setattr(docker_engine, "docker_client", lambda timeout: client)
    built = docker_engine.build_image(
        tmp_path,
        "visa-build/x:latest",
        {},
        network="visa-build-0badc0de-x",
        hosts={},
        labels=docker_engine.image_labels("0123abcd"),
        log_path=tmp_path / "build.log",
    )
    assert built == "sha256:0123"
    assert asked["use_config_proxy"] is False, "docker-py would add the client's proxy settings as build args"
    assert asked["network_mode"] == "visa-build-0badc0de-x", "the build does not run on the run's own build network"
    assert asked["labels"] == {"org.visa-build.role": "image", "org.visa-build.build-dir-id": "0123abcd"}, (
        "a build folder's runs find the images they made, and only those, by these labels"
    )


class FakeImages:
    """Docker's images: {id: (tags, labels)}; removing one a container uses answers 409, as the engine does."""

    def __init__(self, images: dict[str, tuple[list[str], dict[str, str]]], in_use: set[str]) -> None:
        self.images, self.in_use = images, in_use
        self.removed: list[str] = []

    def get(self, image: str) -> SimpleNamespace:
        if image not in self.images:
            raise docker.errors.ImageNotFound(image)
        tags, labels = self.images[image]
        return SimpleNamespace(id=image, tags=tags, labels=labels)

    def list(self, filters: dict[str, Any]) -> list[SimpleNamespace]:
        key, _, value = filters["label"].partition("=")
        return [self.get(i) for i, (tags, labels) in self.images.items() if not tags and labels.get(key) == value]

    def remove(self, image: str) -> None:
        if image in self.in_use:
            raise docker.errors.APIError(
                "conflict: image is being used by a running container", SimpleNamespace(status_code=409)
            )
        del self.images[image]
        self.removed.append(image)


def test_only_unused_untagged_images_of_this_build_folder_are_removed() -> None:
    ours, theirs = docker_engine.image_labels("ours"), docker_engine.image_labels("theirs")
    images = FakeImages(
        {
            "sha256:superseded": ([], ours),
            "sha256:tagged": (["visa-build/x:latest"], ours),
            "sha256:named-by-a-qcow2": ([], ours),
            "sha256:another-folders": ([], theirs),
            "sha256:in-a-container": ([], ours),
            "sha256:not-visa-builds": ([], {}),
        },
        in_use={"sha256:in-a-container"},
    )
    client = SimpleNamespace(images=images)
    removed = docker_engine.remove_untagged_images("ours", keep={"sha256:named-by-a-qcow2"}, client=client)
    assert removed == ["sha256:superseded"] == images.removed, f"removed {images.removed}"
    asked = [
        "sha256:tagged",
        "sha256:another-folders",
        "sha256:not-visa-builds",
        "sha256:gone",
        "sha256:in-a-container",
    ]
    assert docker_engine.remove_unused_images(asked, build_dir_id="ours", keep=set(), client=client) == []
    assert sorted(images.images) == [
        "sha256:another-folders",
        "sha256:in-a-container",
        "sha256:named-by-a-qcow2",
        "sha256:not-visa-builds",
        "sha256:tagged",
    ]
