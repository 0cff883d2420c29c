"""The Debian-updates layer checks that apt read the archive in the state the build read and keyed the layer
by (provision/apt-state.sh): its digest of apt's InRelease files is visa_build/archive_state.state_key's."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.helpers import REPO
from visa_build import archive_state
from visa_build.process import run

SUITES = ("bookworm", "bookworm-updates", "bookworm-security")
FILE = {
    "bookworm": "deb.debian.org_debian_dists_bookworm_InRelease",
    "bookworm-updates": "deb.debian.org_debian_dists_bookworm-updates_InRelease",
    "bookworm-security": "deb.debian.org_debian-security_dists_bookworm-security_InRelease",
}


def apt_state(lists: Path, codename: str = "bookworm") -> str:
    script = 'source provision/apt-state.sh && apt_state "$1" "$2"'
    result = run(["bash", "-c", script, "apt_state", str(lists), codename], timeout=30, cwd=str(REPO))
    return result.output.strip()


def lists_of(tmp_path: Path, contents: dict[str, bytes]) -> Path:
    lists = tmp_path / "lists"
    lists.mkdir(exist_ok=True)
    (lists / "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages").write_bytes(b"Package: x\n")
    for suite, content in contents.items():
        (lists / FILE[suite]).write_bytes(content)
    return lists


def test_apt_s_state_is_the_state_the_build_keys_the_layer_by(tmp_path: Path) -> None:
    contents = {suite: f"Suite: {suite}\nDate: Fri, 27 Nov 2026\n".encode() for suite in SUITES}
    build_read = tuple(
        archive_state.SuiteState(suite, f"http://m/{suite}", "", hashlib.sha256(contents[suite]).hexdigest())
        for suite in SUITES
    )
    assert apt_state(lists_of(tmp_path, contents)) == archive_state.state_key(build_read)


def test_another_sync_of_one_suite_is_another_state(tmp_path: Path) -> None:
    contents = {suite: f"Suite: {suite}\n".encode() for suite in SUITES}
    before = apt_state(lists_of(tmp_path, contents))
    (tmp_path / "lists" / FILE["bookworm-security"]).write_bytes(b"Suite: bookworm-security\nDate: later\n")
    after = apt_state(tmp_path / "lists")
    assert before and after and before != after, (before, after)


def test_a_missing_or_doubled_suite_has_no_state(tmp_path: Path) -> None:
    contents = {suite: suite.encode() for suite in SUITES[:2]}
    assert apt_state(lists_of(tmp_path, contents)) == "", "a state without the -security suite"
    lists = lists_of(tmp_path, {"bookworm-security": b"one"})
    (lists / "other.mirror_debian-security_dists_bookworm-security_InRelease").write_bytes(b"two")
    assert apt_state(lists) == "", "a state of one of two -security suites"
