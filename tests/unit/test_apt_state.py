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


def apt_states(lists: Path, codename: str = "bookworm") -> list[str]:
    script = 'source provision/apt-state.sh && apt_states "$1" "$2"'
    result = run(["bash", "-u", "-c", script, "apt_states", str(lists), codename], timeout=30, cwd=str(REPO))
    return result.lines


def lists_of(tmp_path: Path, contents: dict[str, bytes]) -> Path:
    lists = tmp_path / "lists"
    lists.mkdir(exist_ok=True)
    (lists / "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages").write_bytes(b"Package: x\n")
    (lists / "deb.debian.org_debian_dists_bookworm-backports_InRelease").write_bytes(b"not one of the suites")
    for suite, content in contents.items():
        (lists / FILE[suite]).write_bytes(content)
    return lists


def state_read(contents: dict[str, bytes]) -> str:
    """The state the build reads from a mirror serving `contents`."""
    states = (archive_state.SuiteState(s, f"http://m/{s}", "", hashlib.sha256(contents[s]).hexdigest()) for s in SUITES)
    return archive_state.state_key(tuple(states))


def test_apt_s_state_is_the_state_the_build_keys_the_layer_by(tmp_path: Path) -> None:
    contents = {suite: f"Suite: {suite}\nDate: Fri, 27 Nov 2026\n".encode() for suite in SUITES}
    assert apt_states(lists_of(tmp_path, contents)) == [state_read(contents)]


def test_another_sync_of_one_suite_is_another_state(tmp_path: Path) -> None:
    contents = {suite: f"Suite: {suite}\n".encode() for suite in SUITES}
    lists = lists_of(tmp_path, contents)
    (lists / FILE["bookworm-security"]).write_bytes(b"Suite: bookworm-security\nDate: later\n")
    assert apt_states(lists) != [state_read(contents)], "a later -security sync reads as the build's state"


def test_a_site_s_own_source_of_a_suite_adds_a_state_and_keeps_the_build_s(tmp_path: Path) -> None:
    contents = {suite: suite.encode() for suite in SUITES}
    lists = lists_of(tmp_path, contents)
    (lists / "apt.example.org_debian_dists_bookworm_InRelease").write_bytes(b"the site's bookworm")
    states = apt_states(lists)
    assert len(states) == 2 and state_read(contents) in states, states


def test_a_missing_suite_has_no_state(tmp_path: Path) -> None:
    contents = {suite: suite.encode() for suite in SUITES[:2]}
    assert apt_states(lists_of(tmp_path, contents)) == [], "a state without the -security suite"
