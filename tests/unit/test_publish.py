"""What publish and promote decide, against a fake Glance: which images they may delete or change, what stops
them, and how promotes running at once end with one current image. Real Glance APIs: tests/publish."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import keystoneauth1.exceptions
import openstack.exceptions
import pytest

from visa_build import jobs, nightly, publish
from visa_build.errors import VisaBuildError
from visa_build.publish import ARCHIVED, CANDIDATE, CURRENT, UPLOADING
from visa_build.release import record
from visa_build.settings import make_publishing

SPEC = "visa-x"
PROJECT = "project-a"
SETTINGS = make_publishing(cloud="test", publish_keep_archived=10)
RELEASE = record.Release(
    folder=Path("/releases/visa-x/20261101T010000Z-aaa"),
    spec_name=SPEC,
    qcow2=Path("/releases/visa-x/20261101T010000Z-aaa/visa-x.qcow2"),
    sha256="a" * 64,
    sha512="b" * 128,
    md5="c" * 32,
    build={"spec": {"release": "bookworm"}, "sizes": {"virtual_bytes": 1 << 30}},
    manifest={
        "system": {"distribution": "debian", "version": "12", "release": "bookworm", "packages": {}},
        "python": {},
    },
)


@dataclasses.dataclass
class Image:
    """The attributes of openstacksdk's Image that publish and promote read."""

    id: str
    tags: list[str]
    properties: dict[str, str]
    status: str = "active"
    created_at: str = "2026-11-01T01:00:00Z"
    hash_algo: str | None = "sha512"
    hash_value: str | None = RELEASE.sha512
    checksum: str | None = RELEASE.md5
    owner: str = PROJECT
    visibility: str = "private"
    is_hidden: bool = False
    is_protected: bool = False


def an_image(image_id: str, release: str, state: str, **attrs: Any) -> Image:
    """An image of SPEC and `release` in `state` (a visa-* tag, or "" for none)."""
    tags = [publish.spec_tag(SPEC), *([state] if state else [])]
    sha256 = RELEASE.sha256 if release == RELEASE.name else "f" * 64
    return Image(image_id, tags, {"visa_release": release, "visa_sha256": sha256}, **attrs)


class UploadStarted(Exception):
    """The fake's create_image: publish decided to upload."""


class FakeImages:
    """conn.image of openstacksdk over a dict of images; every listing and get is a copy, as Glance's answers are.
    `on_tag(image_id, tag)` runs after each tag is added (another client acting at that moment)."""

    def __init__(self, *images: Image) -> None:
        self.stored = {image.id: image for image in images}
        self.changes: list[tuple[str, str, object]] = []
        self.queries: list[dict[str, object]] = []
        self.on_tag: Callable[[str, str], None] = lambda image_id, tag: None
        self.delete_failures: list[Exception] = []  # raised by the next deletes, one each

    def _copy(self, image: Image) -> Image:
        return dataclasses.replace(image, tags=list(image.tags), properties=dict(image.properties))

    def _get(self, image: Any) -> Image:
        found = self.stored.get(getattr(image, "id", image))
        if found is None:
            raise openstack.exceptions.NotFoundException(f"no image {image}")
        return found

    def images(self, **query: object) -> list[Image]:
        self.queries.append(query)
        return [
            self._copy(image)
            for image in self.stored.values()
            if query["tag"] in image.tags
            and image.is_hidden == query["is_hidden"]
            and query.get("owner", image.owner) == image.owner
        ]

    def get_image(self, image: Any) -> Image:
        return self._copy(self._get(image))

    def update_image(self, image: Any, *, visibility: str | None = None, is_hidden: bool | None = None) -> Image:
        """Attributes only: openstacksdk's update_image with a property sends every other property as removed."""
        stored = self._get(image)
        for key, value in (("visibility", visibility), ("is_hidden", is_hidden)):
            if value is not None:
                setattr(stored, key, value)
                self.changes.append(("update", stored.id, (key, value)))
        return self._copy(stored)

    def update_image_properties(self, image: Any, *, meta: dict[str, str]) -> None:
        stored = self._get(image)
        stored.properties |= meta
        self.changes.append(("properties", stored.id, meta))

    def add_tag(self, image: Any, tag: str) -> None:
        stored = self._get(image)
        if tag not in stored.tags:
            stored.tags.append(tag)
        self.changes.append(("add_tag", stored.id, tag))
        self.on_tag(stored.id, tag)

    def remove_tag(self, image: Any, tag: str) -> None:
        stored = self._get(image)
        if tag not in stored.tags:  # as Glance answers
            raise openstack.exceptions.NotFoundException(f"tag {tag} not found")
        stored.tags.remove(tag)
        self.changes.append(("remove_tag", stored.id, tag))

    def delete_image(self, image: Any, ignore_missing: bool = True) -> None:
        if self.delete_failures:
            raise self.delete_failures.pop(0)
        self.stored.pop(getattr(image, "id", image))
        self.changes.append(("delete", getattr(image, "id", image), None))

    def create_image(self, *args: object, **kwargs: object) -> Image:
        raise UploadStarted


@dataclasses.dataclass
class FakeConnection:
    image: FakeImages
    current_project_id: str | None = PROJECT


def glance(*images: Image, project: str | None = PROJECT) -> FakeConnection:
    return FakeConnection(FakeImages(*images), project)


def hours_ago(hours: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).isoformat(timespec="seconds").replace("+00:00", "Z")


def states(conn: FakeConnection) -> dict[str, list[str]]:
    """The visa-* state tags of each stored image."""
    return {i.id: [tag for tag in i.tags if tag in publish.STATES] for i in conn.image.stored.values()}


# publish: what it may delete


def test_a_deactivated_image_of_the_release_stops_publish_and_stays() -> None:
    conn = glance(an_image("img-1", RELEASE.name, CURRENT, status="deactivated"))
    with pytest.raises(VisaBuildError, match="img-1, deactivated") as error:
        publish.publish(conn, RELEASE, SETTINGS)
    assert "openstack image set --activate img-1" in error.value.tip
    assert conn.image.changes == [], "a deactivated image must be neither deleted nor uploaded again"


def test_an_upload_younger_than_the_grace_period_is_another_publishs_and_stays() -> None:
    conn = glance(an_image("img-1", RELEASE.name, UPLOADING, status="saving", created_at=hours_ago(1)))
    with pytest.raises(VisaBuildError, match="is being uploaded to Glance as img-1") as error:
        publish.publish(conn, RELEASE, SETTINGS)
    assert "6 h" in error.value.tip
    assert conn.image.changes == [], "another publish's upload must not be deleted"


def test_an_upload_older_than_the_grace_period_is_removed_and_the_release_uploaded(tmp_path: Path) -> None:
    conn = glance(an_image("img-1", RELEASE.name, UPLOADING, status="queued", created_at=hours_ago(7)))
    qcow2 = tmp_path / "visa-x.qcow2"
    qcow2.write_bytes(b"QFI")
    with pytest.raises(UploadStarted):
        publish.publish(conn, dataclasses.replace(RELEASE, qcow2=qcow2), SETTINGS)
    assert conn.image.changes == [("delete", "img-1", None)]


@pytest.mark.parametrize("state", [CANDIDATE, CURRENT, ARCHIVED, ""])
def test_a_finished_image_that_does_not_match_is_reported_never_deleted(state: str) -> None:
    conn = glance(an_image("img-1", RELEASE.name, state, hash_value="0" * 128))
    with pytest.raises(VisaBuildError, match="is in Glance as img-1 .*which is not the release's file"):
        publish.publish(conn, RELEASE, SETTINGS)
    assert conn.image.changes == []


def test_a_hash_algorithm_publish_cannot_check_is_an_error_not_a_mismatch() -> None:
    conn = glance(an_image("img-1", RELEASE.name, CURRENT, hash_algo="sha384", hash_value="0" * 96))
    with pytest.raises(VisaBuildError, match="Glance hashes img-1 with 'sha384'") as error:
        publish.publish(conn, RELEASE, SETTINGS)
    assert "hashing_algorithm" in error.value.tip
    assert conn.image.changes == [], "the current image must stay"


def test_a_matching_image_is_kept_as_it_is() -> None:
    conn = glance(an_image("img-1", RELEASE.name, CURRENT))
    image, uploaded = publish.publish(conn, RELEASE, SETTINGS)
    assert (image.id, uploaded, conn.image.changes) == ("img-1", False, [])


# which project's images


def test_a_token_of_no_project_is_refused_unless_there_is_no_keystone() -> None:
    conn = glance(an_image("img-1", RELEASE.name, CURRENT, owner="project-b"), project=None)
    with pytest.raises(VisaBuildError, match="a token of no project") as error:
        publish.publish(conn, RELEASE, SETTINGS)
    assert "visa.publish_no_keystone" in error.value.tip
    assert conn.image.queries == [], "nothing may be listed without a project to keep to"
    image, _ = publish.publish(conn, RELEASE, make_publishing(cloud="test", publish_no_keystone=True))
    assert image.id == "img-1" and "owner" not in conn.image.queries[0]


def test_only_the_projects_own_images_are_listed() -> None:
    conn = glance(an_image("theirs", "20261102T010000Z-bbb", CANDIDATE, owner="project-b"))
    with pytest.raises(VisaBuildError, match="no candidate image"):
        publish.promote(conn, SPEC, make_publishing(cloud="test", publish_no_keystone=True))
    assert {query["owner"] for query in conn.image.queries} == {PROJECT}
    assert conn.image.changes == []


# promote: one current image, also when two run at once or one stopped half-way


def three_releases() -> FakeConnection:
    return glance(
        an_image("r1", "20261101T010000Z-aaa", CURRENT),
        an_image("r2", "20261102T010000Z-bbb", CANDIDATE),
        an_image("r3", "20261103T010000Z-ccc", CANDIDATE),
    )


def test_two_promotes_at_once_leave_one_current_image() -> None:
    conn = three_releases()
    other: list[publish.Promotion] = []

    def promote_at_once(image_id: str, tag: str) -> None:
        if image_id == "r2" and tag == CURRENT and not other:  # the other promote runs between our steps
            other.append(publish.promote(conn, SPEC, SETTINGS, release="20261103T010000Z-ccc"))

    conn.image.on_tag = promote_at_once
    ours = publish.promote(conn, SPEC, SETTINGS, release="20261102T010000Z-bbb")
    current = [image_id for image_id, tags in states(conn).items() if CURRENT in tags]
    assert current == ["r3"], f"current images after two promotes at once: {states(conn)}"
    assert ours.current.id == other[0].current.id == "r3", "both promotes must agree on the current image"
    assert states(conn) == {"r1": [ARCHIVED], "r2": [ARCHIVED], "r3": [CURRENT]}
    assert all(conn.image.stored[i].is_hidden for i in ("r1", "r2")) and not conn.image.stored["r3"].is_hidden


def test_a_tag_removed_meanwhile_does_not_stop_a_promote() -> None:
    conn = three_releases()

    def remove_candidate_meanwhile(image_id: str, tag: str) -> None:
        if tag == CURRENT:
            conn.image.stored[image_id].tags.remove(CANDIDATE)

    conn.image.on_tag = remove_candidate_meanwhile
    promoted = publish.promote(conn, SPEC, SETTINGS)
    assert promoted.current.id == "r3"
    assert states(conn) == {"r1": [ARCHIVED], "r2": [ARCHIVED], "r3": [CURRENT]}


@pytest.mark.parametrize("left", [[CURRENT], [CANDIDATE, CURRENT]], ids=["candidate tag removed", "both tags"])
def test_a_promote_stopped_half_way_is_completed_by_the_next_and_then_nothing_changes(left: list[str]) -> None:
    conn = three_releases()
    stopped = conn.image.stored["r3"]  # made current, r1 and r2 not yet archived
    stopped.tags = [publish.spec_tag(SPEC), *left]
    stopped.properties[publish.PROMOTED_AT] = "2026-11-03T02:00:00.000000+00:00"
    first = publish.promote(conn, SPEC, SETTINGS)
    assert first.current.id == "r3" and sorted(i.id for i in first.archived) == ["r1", "r2"]
    assert states(conn) == {"r1": [ARCHIVED], "r2": [ARCHIVED], "r3": [CURRENT]}
    conn.image.changes.clear()
    again = publish.promote(conn, SPEC, SETTINGS)
    assert again.current.id == "r3" and again.archived == [] and conn.image.changes == []


def test_a_candidate_older_than_the_current_image_is_archived_not_promoted() -> None:
    conn = glance(an_image("r1", "20261101T010000Z-aaa", CANDIDATE), an_image("r2", "20261102T010000Z-bbb", CURRENT))
    promoted = publish.promote(conn, SPEC, SETTINGS)
    assert promoted.current.id == "r2" and states(conn) == {"r1": [ARCHIVED], "r2": [CURRENT]}


def test_promoting_an_older_release_archives_the_newer_current_one() -> None:
    conn = glance(an_image("r1", "20261101T010000Z-aaa", CANDIDATE), an_image("r2", "20261102T010000Z-bbb", CURRENT))
    promoted = publish.promote(conn, SPEC, SETTINGS, release="20261101T010000Z-aaa")
    assert promoted.current.id == "r1" and states(conn) == {"r1": [CURRENT], "r2": [ARCHIVED]}


# the CI jobs' release: named by the night's record copy


@pytest.mark.parametrize("verdict", ["released", "unchanged"])
def test_the_record_copy_names_the_release_the_night_left_as_latest(tmp_path: Path, verdict: nightly.Verdict) -> None:
    releases = tmp_path / "releases" / SPEC
    folder = record.write(releases, "20261101T010000Z-aaa", {"build.json": "{}", "visa-x.qcow2": "qcow2"})
    record.set_latest(releases, folder.name)
    night = nightly.Night(SPEC, verdict, "summary", folder if verdict == "released" else None)
    jobs._copy_record(night, releases, tmp_path / "record")
    assert (tmp_path / "record" / jobs.RELEASE_FILE).read_text() == "20261101T010000Z-aaa\n"
    assert not (tmp_path / "record" / "visa-x.qcow2").exists()


def test_a_failed_nights_record_copy_names_no_release(tmp_path: Path) -> None:
    releases = tmp_path / "releases" / SPEC
    record.set_latest(releases, record.write(releases, "20261101T010000Z-aaa", {"build.json": "{}"}).name)
    failed = record.write(releases, "20261102T010000Z-bbb-failed", {"ERROR.txt": "boom"})
    jobs._copy_record(nightly.Night(SPEC, "failed", "summary", failed), releases, tmp_path / "record")
    assert not (tmp_path / "record" / jobs.RELEASE_FILE).exists(), "a failed night's pipeline publishes nothing"


def test_an_unfinished_upload_is_deleted_when_the_first_request_meets_a_closed_connection() -> None:
    conn = glance(an_image("img-1", RELEASE.name, UPLOADING))
    conn.image.delete_failures.append(keystoneauth1.exceptions.ConnectionError("Connection reset by peer"))
    publish._discard(conn, "img-1")
    assert conn.image.stored == {}, "Glance closes the connection after refusing an upload; the delete must retry"
