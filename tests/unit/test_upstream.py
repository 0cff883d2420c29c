"""The archive's state: read from the three suites' InRelease files; a bad mirror is a clear error."""

from __future__ import annotations

import lzma
from pathlib import Path
from typing import Any

import pytest
import requests

from visa_build import archive_state, base_rootfs
from visa_build.distros import DISTROS
from visa_build.errors import VisaBuildError
from visa_build.process import Result

SOURCES = base_rootfs.Sources(DISTROS["trixie"], "http://mirror/debian", "http://mirror/debian-security")


class FakeMirror:
    """Answers GETs like a mirror: InRelease text per URL, or an error."""

    def __init__(self, files: dict[str, bytes | int | Exception]) -> None:
        self.files, self.asked = files, list[str]()

    def get(self, url: str, timeout: float) -> Any:
        self.asked.append(url)
        answer = self.files.get(url, 404)
        if isinstance(answer, Exception):
            raise answer
        response = requests.Response()
        response.status_code, response._content = (answer, b"") if isinstance(answer, int) else (200, answer)
        return response


def fake_gpgv(argv: list[str], **_: Any) -> Result:
    """gpgv finding a good signature: the signed text is the file itself (tests/unit/test_inrelease.py runs the
    real gpgv on a real InRelease)."""
    Path(argv[argv.index("--output") + 1]).write_bytes(Path(argv[-1]).read_bytes())
    return Result(argv, 0, ["[GNUPG:] GOODSIG 0123456789ABCDEF Debian Archive"])


def _inrelease(suite: str, date: str) -> bytes:
    return f"Origin: Debian\nCodename: {suite}\nDate: {date}\n".encode()


def _mirror(security_date: str = "Wed, 25 Nov 2026 02:22:31 UTC") -> FakeMirror:
    return FakeMirror(
        {
            "http://mirror/debian/dists/trixie/InRelease": _inrelease("trixie", "Sat, 21 Nov 2026"),
            "http://mirror/debian/dists/trixie-updates/InRelease": _inrelease("trixie-updates", "Wed, 25 Nov 2026"),
            "http://mirror/debian-security/dists/trixie-security/InRelease": _inrelease(
                "trixie-security", security_date
            ),
        }
    )


def test_state_covers_the_release_its_updates_and_security() -> None:
    mirror = _mirror()
    states = archive_state.read_state(SOURCES, session=mirror, runner=fake_gpgv)  # type: ignore[arg-type]
    assert [s.suite for s in states] == ["trixie", "trixie-updates", "trixie-security"]
    assert states[2].date == "Wed, 25 Nov 2026 02:22:31 UTC"
    assert len(mirror.asked) == 3


def _key(mirror: FakeMirror) -> str:
    return archive_state.state_key(archive_state.read_state(SOURCES, session=mirror, runner=fake_gpgv))  # type: ignore[arg-type]


def test_a_security_update_changes_the_key_and_nothing_else_does_not() -> None:
    key, same, newer = _key(_mirror()), _key(_mirror()), _key(_mirror("Thu, 26 Nov 2026"))
    assert key == same and key != newer


@pytest.mark.parametrize(
    ("answer", "complaint"),
    [(requests.ConnectionError("refused"), "did not answer"), (404, "answered HTTP 404"), (b"<html>", "HTTP 200")],
)
def test_a_mirror_that_fails_is_named(answer: bytes | int | Exception, complaint: str) -> None:
    mirror = _mirror()
    mirror.files["http://mirror/debian-security/dists/trixie-security/InRelease"] = answer
    with pytest.raises(VisaBuildError, match=complaint) as raised:
        archive_state.read_state(SOURCES, session=mirror, runner=fake_gpgv)  # type: ignore[arg-type]
    assert "debian-security/dists/trixie-security/InRelease" in str(raised.value) and raised.value.tip


def test_the_base_generation_changes_every_rebase_period() -> None:
    day = 86400
    assert base_rootfs.generation(7, 10 * 7 * day) == base_rootfs.generation(7, 10 * 7 * day + 6 * day)
    assert base_rootfs.generation(7, 10 * 7 * day) != base_rootfs.generation(7, 11 * 7 * day)
    assert base_rootfs.generation(0, 10 * 7 * day) == "", "rebase_days 0 never rebuilds the base by age"


def test_ubuntu_security_updates_are_read_from_every_component_the_image_uses() -> None:
    """noble-security's main and universe both hold security updates (guacd and xrdp are in universe)."""
    noble = base_rootfs.Sources(DISTROS["noble"], "http://mirror/ubuntu", "http://mirror/ubuntu-security")
    packages = {
        "main": b"Package: openssl\nVersion: 3.0.13-0ubuntu3.6\n\nPackage: bash\nVersion: 5.2.21-2ubuntu4\n",
        "universe": b"Package: guacd\nVersion: 1.3.0-1.1ubuntu0.1\n",
    }
    base = "http://mirror/ubuntu-security/dists/noble-security"
    mirror = FakeMirror(
        {f"{base}/{area}/binary-amd64/Packages.xz": lzma.compress(text) for area, text in packages.items()}
    )
    versions = archive_state.security_versions(noble, session=mirror)  # type: ignore[arg-type]
    assert versions == {"openssl": "3.0.13-0ubuntu3.6", "bash": "5.2.21-2ubuntu4", "guacd": "1.3.0-1.1ubuntu0.1"}
    assert [line.split()[3:] for line in noble.lines()] == [["main", "universe"]] * 3, noble.lines()
