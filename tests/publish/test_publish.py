"""Publishing and promoting releases through a real Glance API (see conftest.py), checked with openstacksdk and
with Glance's own REST API."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import requests

from visa_build import publish
from visa_build.errors import VisaBuildError
from visa_build.release import record
from visa_build.settings import make_publishing

from .conftest import MakeRelease, small_qcow2

SETTINGS = make_publishing(
    cloud="glance-test", publish_visibility="community", publish_keep_archived=1, publish_no_keystone=True
)


def glance_image(endpoint: str, image_id: str) -> dict[str, Any]:
    """The image as Glance's REST API shows it (not through the SDK)."""
    answer = requests.get(f"{endpoint}/v2/images/{image_id}", timeout=30)
    assert answer.status_code == 200, f"GET /v2/images/{image_id}: HTTP {answer.status_code} {answer.text[:200]}"
    return dict(answer.json())


def listed_ids(endpoint: str, **query: str) -> set[str]:
    answer = requests.get(f"{endpoint}/v2/images", params=query, timeout=30)
    assert answer.status_code == 200, answer.text[:200]
    return {image["id"] for image in answer.json()["images"]}


def test_a_release_goes_up_as_a_private_checked_candidate(clouds: dict[str, str], make_release: MakeRelease) -> None:
    release = record.read_release(make_release("visa-pub-a", "20261101T010000Z").parent)  # via `latest`
    conn = publish.connect("glance-test")
    image, uploaded = publish.publish(conn, release, SETTINGS)
    assert uploaded, "the first publish of a release must upload it"
    seen = glance_image(clouds["glance-test"], image.id)
    assert seen["status"] == "active", seen
    assert seen["visibility"] == "private", "a candidate must be private: VISA's users must not see it"
    assert set(seen["tags"]) == {"visa-image:visa-pub-a", "visa-candidate"}, seen["tags"]
    assert (seen["disk_format"], seen["container_format"]) == ("qcow2", "bare")
    assert seen["os_hash_value"] == hashlib.new(seen["os_hash_algo"], release.qcow2.read_bytes()).hexdigest()
    assert seen["min_disk"] == 1 and seen["min_ram"] == 2048, (seen["min_disk"], seen["min_ram"])
    expected = {
        "os_distro": "debian",
        "os_version": "12",
        "os_type": "linux",
        "visa_image": "visa-pub-a",
        "visa_release": release.name,
        "visa_sha256": release.sha256,
        "visa_jupyterlab": "4.2.5",
        "visa_kernels": "Data Analysis",
    }
    assert {key: seen.get(key) for key in expected} == expected
    assert "hw_qemu_guest_agent" not in seen, "the image carries no guest agent, so Glance must not promise one"


def test_publishing_the_same_release_again_changes_nothing(clouds: dict[str, str], make_release: MakeRelease) -> None:
    release = record.read_release(make_release("visa-pub-b", "20261101T010000Z"))
    conn = publish.connect("glance-test")
    first, _ = publish.publish(conn, release, SETTINGS)
    before = glance_image(clouds["glance-test"], first.id)
    again, uploaded = publish.publish(conn, release, SETTINGS)
    assert not uploaded and again.id == first.id, "a second publish of the same sha256 must not upload"
    assert glance_image(clouds["glance-test"], first.id) == before, "the second publish changed the image"
    assert len(publish.spec_images(conn, "visa-pub-b", SETTINGS)) == 1


def test_promote_makes_current_archives_hides_and_retires(clouds: dict[str, str], make_release: MakeRelease) -> None:
    endpoint, conn = clouds["glance-test"], publish.connect("glance-test")
    ids = []
    for night, pattern in (("20261101T010000Z", 1), ("20261102T010000Z", 2), ("20261103T010000Z", 3)):
        image, _ = publish.publish(
            conn, record.read_release(make_release("visa-pub-c", night, pattern=pattern)), SETTINGS
        )
        ids.append(image.id)
        promoted = publish.promote(conn, "visa-pub-c", SETTINGS)
        assert promoted.current.id == image.id
        seen = glance_image(endpoint, image.id)
        assert seen["visibility"] == "community" and "visa-current" in seen["tags"], seen
        assert "visa-candidate" not in seen["tags"] and not seen["os_hidden"]
    first, second, third = ids
    assert [i.id for i in promoted.archived] == [second] and [i.id for i in promoted.deleted] == [first], (
        "the third promotion must archive the second image and delete the first (keep_archived = 1)"
    )
    archived = glance_image(endpoint, second)
    assert "visa-archived" in archived["tags"] and archived["os_hidden"], archived
    assert second not in listed_ids(endpoint, visibility="all"), "an archived image must be hidden from lists"
    assert third in listed_ids(endpoint, visibility="all")
    assert second in listed_ids(endpoint, os_hidden="true", visibility="all")
    assert requests.get(f"{endpoint}/v2/images/{first}", timeout=30).status_code == 404


def test_a_protected_archived_image_is_never_deleted(clouds: dict[str, str], make_release: MakeRelease) -> None:
    conn = publish.connect("glance-test")
    old, _ = publish.publish(conn, record.read_release(make_release("visa-pub-d", "20261101T010000Z")), SETTINGS)
    publish.promote(conn, "visa-pub-d", SETTINGS)
    conn.image.update_image(old, is_protected=True)
    for night, pattern in (("20261102T010000Z", 2), ("20261103T010000Z", 3)):
        publish.publish(conn, record.read_release(make_release("visa-pub-d", night, pattern=pattern)), SETTINGS)
        promoted = publish.promote(conn, "visa-pub-d", SETTINGS)
    assert [(image.id, why) for image, why in promoted.kept] == [(old.id, "protected")]
    assert glance_image(clouds["glance-test"], old.id)["status"] == "active"
    conn.image.update_image(old, is_protected=False)


def test_public_visibility_needs_the_admin_role(clouds: dict[str, str], make_release: MakeRelease) -> None:
    conn = publish.connect("glance-test")
    publish.publish(conn, record.read_release(make_release("visa-pub-e", "20261101T010000Z")), SETTINGS)
    public = make_publishing(cloud="glance-test", publish_visibility="public", publish_no_keystone=True)
    with pytest.raises(VisaBuildError, match=r"does not allow this \(HTTP 403\)") as error:
        publish.promote(conn, "visa-pub-e", public)
    assert "community or shared" in error.value.tip


def test_an_interrupted_upload_leaves_no_image(clouds: dict[str, str], make_release: MakeRelease) -> None:
    release = record.read_release(make_release("visa-pub-f", "20261101T010000Z", megabytes=40))
    conn = publish.connect("glance-test")

    def interrupt(sent: int, total: int) -> None:
        if sent > total // 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        publish.publish(conn, release, SETTINGS, on_sent=interrupt)
    assert publish.spec_images(conn, "visa-pub-f", SETTINGS) == [], "an interrupted upload must be deleted from Glance"
    image, uploaded = publish.publish(conn, release, SETTINGS)
    assert uploaded and image.status == "active"


def test_an_image_glance_stored_differently_is_refused_and_deleted(
    clouds: dict[str, str], make_release: MakeRelease
) -> None:
    release = record.read_release(make_release("visa-pub-g", "20261101T010000Z"))
    small_qcow2(release.qcow2, pattern=9, megabytes=0.2)  # the file changes after it was checked
    conn = publish.connect("glance-test")
    with pytest.raises(VisaBuildError, match="Glance stored something else"):
        publish.publish(conn, release, SETTINGS)
    assert publish.spec_images(conn, "visa-pub-g", SETTINGS) == [], "a mismatching upload must not stay as a candidate"


def test_bad_credentials_are_named(clouds: dict[str, str]) -> None:
    with pytest.raises(VisaBuildError, match=r"refused the credentials \(HTTP 401\)"):
        publish.connect("glance-keystone")


def test_an_unreachable_endpoint_is_named(clouds: dict[str, str]) -> None:
    with pytest.raises(VisaBuildError, match="cannot be reached") as error:
        publish.connect("glance-unreachable")
    assert "glance-unreachable" in str(error.value)


def test_an_unknown_cloud_is_a_config_error(clouds: dict[str, str]) -> None:
    with pytest.raises(VisaBuildError, match="'no-such-cloud' is not configured"):
        publish.connect("no-such-cloud")


def test_a_full_quota_is_named_and_leaves_no_image(clouds: dict[str, str], make_release: MakeRelease) -> None:
    release = record.read_release(make_release("visa-pub-h", "20261101T010000Z", megabytes=3))
    settings = make_publishing(cloud="glance-quota", publish_no_keystone=True)
    conn = publish.connect("glance-quota")
    with pytest.raises(VisaBuildError, match="quota"):
        publish.publish(conn, release, settings)
    assert publish.spec_images(conn, "visa-pub-h", settings) == []


def test_a_failed_record_is_never_published(tmp_path: Path, make_release: MakeRelease) -> None:
    folder = make_release("visa-pub-i", "20261101T010000Z")
    failed = folder.rename(folder.with_name(folder.name + "-failed"))
    with pytest.raises(VisaBuildError, match="failed night"):
        record.read_release(failed)


def test_promoting_again_without_a_candidate_changes_nothing(clouds: dict[str, str], make_release: MakeRelease) -> None:
    conn = publish.connect("glance-test")
    image, _ = publish.publish(conn, record.read_release(make_release("visa-pub-j", "20261101T010000Z")), SETTINGS)
    publish.promote(conn, "visa-pub-j", SETTINGS)
    before = glance_image(clouds["glance-test"], image.id)
    again = publish.promote(conn, "visa-pub-j", SETTINGS)
    assert again.current.id == image.id and not again.archived and not again.deleted
    assert glance_image(clouds["glance-test"], image.id) == before


def test_promoting_with_nothing_published_is_a_clear_error(clouds: dict[str, str]) -> None:
    with pytest.raises(VisaBuildError, match="visa-pub-none: no candidate image in Glance"):
        publish.promote(publish.connect("glance-test"), "visa-pub-none", SETTINGS)


def test_a_deactivated_image_of_the_release_stops_publish_and_stays(
    clouds: dict[str, str], make_release: MakeRelease
) -> None:
    release = record.read_release(make_release("visa-pub-k", "20261101T010000Z"))
    conn = publish.connect("glance-test")
    image, _ = publish.publish(conn, release, SETTINGS)
    conn.image.deactivate_image(image)
    with pytest.raises(VisaBuildError, match=f"{image.id}, deactivated") as error:
        publish.publish(conn, release, SETTINGS)
    assert f"--activate {image.id}" in error.value.tip
    assert glance_image(clouds["glance-test"], image.id)["status"] == "deactivated", "it must stay as the admin left it"
    assert [i.id for i in publish.spec_images(conn, "visa-pub-k", SETTINGS)] == [image.id], "nothing uploaded again"


def test_another_publishs_upload_of_the_release_is_left_alone(
    clouds: dict[str, str], make_release: MakeRelease
) -> None:
    release = record.read_release(make_release("visa-pub-l", "20261101T010000Z"))
    conn = publish.connect("glance-test")
    uploading = conn.image.create_image(
        "another publish's upload",
        disk_format="qcow2",
        container_format="bare",
        tags=[publish.spec_tag("visa-pub-l"), publish.UPLOADING],
        visibility="private",
        meta={"visa_release": release.name, "visa_sha256": release.sha256},
    )
    with pytest.raises(VisaBuildError, match=f"is being uploaded to Glance as {uploading.id}"):
        publish.publish(conn, release, SETTINGS)
    assert glance_image(clouds["glance-test"], uploading.id)["status"] == "queued"
    assert [i.id for i in publish.spec_images(conn, "visa-pub-l", SETTINGS)] == [uploading.id]


class TaggedThen:
    """conn.image with `then(image, tag)` run after each tag Glance added: another client acting at that moment."""

    def __init__(self, image: Any, then: Any) -> None:
        self._image, self._then = image, then

    def __getattr__(self, name: str) -> Any:
        return getattr(self._image, name)

    def add_tag(self, image: Any, tag: str) -> None:
        self._image.add_tag(image, tag)
        self._then(image, tag)


def test_two_promotes_at_once_leave_one_current_image(clouds: dict[str, str], make_release: MakeRelease) -> None:
    endpoint, conn = clouds["glance-test"], publish.connect("glance-test")
    names = []
    for night, pattern in (("20261101T010000Z", 1), ("20261102T010000Z", 2), ("20261103T010000Z", 3)):
        release = record.read_release(make_release("visa-pub-m", night, pattern=pattern))
        publish.publish(conn, release, SETTINGS)
        names.append(release.name)
    publish.promote(conn, "visa-pub-m", SETTINGS, release=names[0])
    other: list[publish.Promotion] = []

    def promote_at_once(image: Any, tag: str) -> None:
        if tag == publish.CURRENT and not other:
            other.append(publish.promote(conn, "visa-pub-m", SETTINGS, release=names[2]))

    racing = type("Racing", (), {"image": TaggedThen(conn.image, promote_at_once), "current_project_id": None})()
    ours = publish.promote(racing, "visa-pub-m", SETTINGS, release=names[1])
    images = publish.spec_images(conn, "visa-pub-m", SETTINGS)
    current = {i.id for i in images if "visa-current" in glance_image(endpoint, i.id)["tags"]}
    assert current == {ours.current.id} == {other[0].current.id}, "one current image, the one both promotes name"
    assert ours.current.properties["visa_release"] == names[2], "the promotion made last stays current"
    left = sorted(publish.state_of(i) for i in images)
    assert left == ["visa-archived", "visa-current"], f"one archived image is kept (keep_archived = 1): {left}"
