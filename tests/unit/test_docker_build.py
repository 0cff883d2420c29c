"""How docker build is asked for: the client's proxy settings (~/.docker/config.json) never reach the build,
whose wheelhouse requests go to this host."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

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
        labels=docker_engine.image_labels(tmp_path / "build"),
        log_path=tmp_path / "build.log",
    )
    assert built == "sha256:0123"
    assert asked["use_config_proxy"] is False, "docker-py would add the client's proxy settings as build args"
    assert asked["network_mode"] == "visa-build-0badc0de-x", "the build does not run on the run's own build network"
    assert asked["labels"] == {
        "org.visa-build.role": "image",
        "org.visa-build.build-dir": str((tmp_path / "build").resolve()),
    }, "a build folder's runs find the images they made, and only those, by these labels"
