"""Ubuntu's archive keyring comes only through a Debian index whose signature verifies: a mirror that serves a
tampered index, or none, stops with one line saying so."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from visa_build import archive_keyring
from visa_build.errors import VisaBuildError
from visa_build.ports import free_port
from visa_build.wheelhouse_server import serving

DEBIAN = "http://deb.debian.org/debian"


def test_a_mirror_with_a_bad_signature_gives_no_keyring(tmp_path: Path) -> None:
    signed = requests.get(f"{DEBIAN}/dists/{archive_keyring.SUITE}/InRelease", timeout=60).text
    assert "Codename:" in signed, "the test needs Debian's real InRelease"
    tampered = tmp_path / "mirror" / "dists" / archive_keyring.SUITE / "InRelease"
    tampered.parent.mkdir(parents=True)
    tampered.write_text(signed.replace("Codename:", "Codename:  ", 1))  # signed text changed, signature kept
    with serving(tmp_path / "mirror", port=free_port()) as url, pytest.raises(VisaBuildError) as raised:
        archive_keyring.ubuntu_keyring(tmp_path / "cache", url.rstrip("/"))
    said = str(raised.value)
    # apt's reason: gpgv's BADSIG (apt 2, Debian 12 and Ubuntu 24.04 hosts), Sequoia's sqv (apt 3, Debian 13)
    assert "could not fetch and verify ubuntu-keyring" in said, said
    assert "BADSIG" in said or "Message has been manipulated" in said, f"apt's reason is not in the error: {said}"
    assert not list((tmp_path / "cache").rglob("*.gpg")), "a keyring was kept from an index that did not verify"


def test_an_unreachable_mirror_gives_no_keyring(tmp_path: Path) -> None:
    with pytest.raises(VisaBuildError, match="could not fetch and verify"):
        archive_keyring.ubuntu_keyring(tmp_path / "cache", f"http://127.0.0.1:{free_port()}/debian")
