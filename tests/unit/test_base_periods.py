"""A new rebuild period's base untags the bases of its line two or more periods older (base_docker.py); the
period before stays, and other lines, other visa.rebase_days and unlabelled images are never touched."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import docker
from visa_build import base_docker, base_rootfs
from visa_build.distros import DISTROS

DEBIAN = "http://deb.debian.org/debian"
SECURITY = "http://deb.debian.org/debian-security"


def sources(generation: str, mirror: str = DEBIAN) -> base_rootfs.Sources:
    return base_rootfs.Sources(DISTROS["bookworm"], mirror, SECURITY, generation)


class Images:
    """Docker's images: {tag: labels}; removing `refused` answers an error, as an engine would."""

    def __init__(self, images: dict[str, dict[str, str]], refused: str = "") -> None:
        self.images, self.refused = images, refused

    def list(self, filters: dict[str, Any]) -> list[SimpleNamespace]:
        key, _, value = filters["label"].partition("=")
        return [
            SimpleNamespace(tags=[tag], labels=labels)
            for tag, labels in self.images.items()
            if labels.get(key) == value
        ]

    def remove(self, tag: str) -> None:
        if tag == self.refused:
            raise docker.errors.DockerException("conflict: unable to remove repository reference")
        del self.images[tag]


def test_the_line_is_every_input_but_the_period() -> None:
    line = base_docker.base_labels(sources("2900x7d"))[base_docker.LINE_LABEL]
    assert base_docker.base_labels(sources("2901x7d"))[base_docker.LINE_LABEL] == line
    assert base_docker.base_labels(sources("2901x7d", mirror="http://m/debian"))[base_docker.LINE_LABEL] != line
    assert base_docker.base_labels(sources("2901x7d"))[base_docker.PERIOD_LABEL] == "2901x7d"


def test_bases_two_or_more_periods_older_are_untagged() -> None:
    labels = base_docker.base_labels

    images = Images(
        {
            "visa-build/base:bookworm-older": labels(sources("2898x7d")),
            "visa-build/base:bookworm-old": labels(sources("2899x7d")),
            "visa-build/base:bookworm-before": labels(sources("2900x7d")),
            "visa-build/base:bookworm-now": labels(sources("2901x7d")),
            "visa-build/base:bookworm-other-mirror": labels(sources("2890x7d", mirror="http://m/debian")),
            "visa-build/base:bookworm-other-days": labels(sources("1000x14d")),
            "visa-build/base:bookworm-refused": labels(sources("2800x7d")),
            "visa-build/visa-ci:latest": labels(sources("2898x7d")),  # built on the older base: its labels too
        },
        refused="visa-build/base:bookworm-refused",
    )
    untagged = base_docker.untag_superseded_bases(sources("2901x7d"), SimpleNamespace(images=images))
    assert sorted(untagged) == ["visa-build/base:bookworm-old", "visa-build/base:bookworm-older"], untagged
    assert sorted(images.images) == [
        "visa-build/base:bookworm-before",
        "visa-build/base:bookworm-now",
        "visa-build/base:bookworm-other-days",
        "visa-build/base:bookworm-other-mirror",
        "visa-build/base:bookworm-refused",
        "visa-build/visa-ci:latest",
    ], "an image built on a base was untagged with it"


def test_a_build_never_rebased_by_age_untags_nothing_and_is_never_untagged() -> None:
    images = Images(
        {
            "visa-build/base:bookworm-periodic": base_docker.base_labels(sources("2800x7d")),
            "visa-build/base:bookworm-never": base_docker.base_labels(sources("")),
        }
    )
    assert base_docker.untag_superseded_bases(sources(""), SimpleNamespace(images=images)) == []
    assert base_docker.untag_superseded_bases(sources("2901x7d"), SimpleNamespace(images=images)) == [
        "visa-build/base:bookworm-periodic"
    ], "a base of no period was untagged, or an old periodic one kept"
