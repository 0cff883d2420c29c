"""The archive's state is read only from an InRelease that gpgv verifies against the archive keyring and whose
Valid-Until has not passed. The fixture is a real, whole InRelease of Debian's bookworm-security suite (a trimmed
file could not be verified); the clock is faked, never the file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from visa_build import archive_state, base_rootfs
from visa_build.debian_package import DEBIAN_KEYRING
from visa_build.distros import DISTROS
from visa_build.errors import VisaBuildError

FIXTURES = Path(__file__).parent / "fixtures"
INRELEASE = (FIXTURES / "bookworm-security.InRelease").read_bytes()
#: Debian's bookworm release key: a real archive key, but not the one that signs the security suite.
OTHER_KEYRING = FIXTURES / "debian-bookworm-stable.gpg"
URL = "http://mirror/debian-security/dists/bookworm-security/InRelease"
#: The fixture is dated Wed, 25 Nov 2026 22:33:12 UTC and valid until Wed, 02 Dec 2026 22:33:12 UTC.
WITHIN = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
AFTER = datetime(2026, 12, 3, 0, 0, tzinfo=UTC)


def _tampered() -> bytes:
    """The fixture with one hex digit of a signed SHA256 line changed, its signature kept."""
    data = bytearray(INRELEASE)
    at = INRELEASE.index(b"SHA256:\n ") + len(b"SHA256:\n ")
    data[at] = ord("0") if data[at] != ord("0") else ord("1")
    return bytes(data)


def test_a_good_signature_within_valid_until_gives_the_signed_fields() -> None:
    fields = archive_state.verified_fields(INRELEASE, URL, DEBIAN_KEYRING, now=WITHIN)
    assert fields["Codename"] == "bookworm-security" and fields["Date"] == "Wed, 25 Nov 2026 22:33:12 UTC"


def test_a_tampered_byte_is_refused() -> None:
    with pytest.raises(VisaBuildError, match="is not signed by the archive keyring.*BADSIG") as raised:
        archive_state.verified_fields(_tampered(), URL, DEBIAN_KEYRING, now=WITHIN)
    assert URL in str(raised.value) and raised.value.tip


def test_an_expired_valid_until_is_refused() -> None:
    with pytest.raises(VisaBuildError, match=r"expired \(Valid-Until: Wed, 02 Dec 2026 22:33:12 UTC") as raised:
        archive_state.verified_fields(INRELEASE, URL, DEBIAN_KEYRING, now=AFTER)
    assert URL in str(raised.value) and raised.value.tip


def test_a_signature_by_a_key_outside_the_keyring_is_refused() -> None:
    with pytest.raises(VisaBuildError, match="is not signed by the archive keyring.*NO_PUBKEY"):
        archive_state.verified_fields(INRELEASE, URL, OTHER_KEYRING, now=WITHIN)


class Mirror:
    """Serves the real InRelease for every suite, and `security` for the -security suite."""

    def __init__(self, security: bytes) -> None:
        self.security = security

    def get(self, url: str, timeout: float) -> Any:
        response = requests.Response()
        response.status_code = 200
        response._content = self.security if "-security/" in url else INRELEASE
        return response


def test_the_state_is_not_read_from_a_tampered_security_suite() -> None:
    sources = base_rootfs.Sources(DISTROS["bookworm"], "http://mirror/debian", "http://mirror/debian-security")
    states = archive_state.read_state(sources, session=Mirror(INRELEASE), now=WITHIN)  # type: ignore[arg-type]
    assert [s.date for s in states] == ["Wed, 25 Nov 2026 22:33:12 UTC"] * 3
    with pytest.raises(VisaBuildError, match="bookworm-security/InRelease is not signed"):
        archive_state.read_state(sources, session=Mirror(_tampered()), now=WITHIN)  # type: ignore[arg-type]
