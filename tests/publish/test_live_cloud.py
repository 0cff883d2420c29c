"""Publishing to a real cloud's test project (opt-in): VISA_LIVE_CLOUD names a cloud of clouds.yaml. A small
image is published, published again, promoted `shared`, and then deleted with everything of its spec."""

from __future__ import annotations

import os
import secrets

import pytest

from visa_build import publish
from visa_build.release import record
from visa_build.settings import make_publishing

from .conftest import MakeRelease

CLOUD = os.environ.get("VISA_LIVE_CLOUD", "")

pytestmark = [
    pytest.mark.live_cloud,
    pytest.mark.skipif(not CLOUD, reason="set VISA_LIVE_CLOUD to a cloud of clouds.yaml that names a test project"),
]


def test_publish_and_promote_on_a_live_cloud(make_release: MakeRelease) -> None:
    spec = f"visa-live-test-{secrets.token_hex(3)}"
    settings = make_publishing(cloud=CLOUD, publish_visibility="shared")
    conn = publish.connect(CLOUD)
    try:
        release = record.read_release(make_release(spec, "20261101T010000Z"))
        image, uploaded = publish.publish(conn, release, settings)
        assert uploaded and image.status == "active" and image.visibility == "private"
        again, uploaded_again = publish.publish(conn, release, settings)
        assert not uploaded_again and again.id == image.id
        promoted = publish.promote(conn, spec, settings)
        assert promoted.current.id == image.id and promoted.current.visibility == "shared"
    finally:
        for leftover in publish.spec_images(conn, spec, settings):
            conn.image.delete_image(leftover, ignore_missing=True)
