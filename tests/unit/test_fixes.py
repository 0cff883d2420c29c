"""A security update in CHANGES.md names the CVEs it fixes, read from the package's own changelog in the image.
The fixture is the head of a real changelog.Debian.gz (libssl3 3.0.22-1~deb12u2 from bookworm-security, its
first eight entries)."""

from __future__ import annotations

import gzip
from pathlib import Path

from visa_build.release import changes, fixes

FIXTURE = Path(__file__).parent / "fixtures" / "libssl3.changelog.Debian.gz"
CHANGELOG = gzip.decompress(FIXTURE.read_bytes()).decode()
OLD, NEW = "3.0.19-1~deb12u2", "3.0.22-1~deb12u2"


def test_the_cves_named_between_the_old_and_the_new_version_are_found() -> None:
    found = fixes.cves_between(CHANGELOG, OLD, NEW)
    assert found[:2] == ["CVE-2026-84782", "CVE-2026-35189"], "the newest entry comes first"
    assert "CVE-2026-42767" in found and "CVE-2026-45447" in found, "every entry after the old version counts"
    assert len(found) == 21 == len(set(found))
    assert "CVE-2026-28387" not in found, "the old version's own fixes were already in the last release"


def test_an_update_whose_entries_name_no_cve_says_so() -> None:
    assert fixes.cves_between(CHANGELOG, "3.0.19-1~deb12u2", "3.0.20-1~deb12u1") == []
    assert fixes.cves_between(CHANGELOG, "3.0.20-1~deb12u2", "3.0.22-1~deb12u1")[0] == "CVE-2026-42767"


def _image(tmp_path: Path) -> Path:
    """An image root holding libssl3's changelog, and libssl-dev's doc folder as a link to it (as Debian ships)."""
    doc = tmp_path / "root/usr/share/doc"
    (doc / "libssl3").mkdir(parents=True)
    (doc / "libssl3/changelog.Debian.gz").write_bytes(FIXTURE.read_bytes())
    (doc / "libssl-dev").symlink_to("libssl3")
    (doc / "escape").symlink_to("/usr/share/doc/libssl3")  # absolute: would be the host's, never read
    (doc / "apt").mkdir()  # a native package: its changelog is changelog.gz
    (doc / "apt/changelog.gz").write_bytes(FIXTURE.read_bytes())
    return tmp_path / "root"


def test_fixes_are_read_from_the_image_by_binary_package(tmp_path: Path) -> None:
    updates = [("libssl3:amd64", OLD, NEW), ("libssl-dev:amd64", OLD, NEW), ("escape", OLD, NEW), ("gone", "1", "2")]
    found = fixes.read_fixes(_image(tmp_path), [*updates, ("apt", OLD, NEW)])
    assert found["libssl3:amd64"] == found["libssl-dev:amd64"] and len(found["libssl3:amd64"] or []) == 21
    assert found["apt"] == found["libssl3:amd64"], "a native package's changelog.gz is read as well"
    assert found["escape"] is None and found["gone"] is None


def test_changes_md_names_each_security_updates_fixes_or_says_there_are_none(tmp_path: Path) -> None:
    """dpkg names Multi-Arch packages `libssl3:amd64`; the security suite's index names them `libssl3`."""
    parts = {
        changes.SYSTEM: changes.PartChanges(
            upgraded=[("bash", "5.2.15-2+b7", "5.2.15-2+b8"), ("libssl3:amd64", OLD, NEW), ("zlib1g:amd64", "1", "2")]
        )
    }
    security = {"libssl3": NEW, "bash": "5.2.15-2+b8", "zlib1g": "2"}
    updates = changes.security_updates(parts, security)
    assert [name for name, _, _ in updates] == ["bash", "libssl3:amd64", "zlib1g:amd64"]
    found = fixes.read_fixes(_image(tmp_path), updates) | {"bash": []}
    text = changes.to_markdown("Changes", parts, security, found)
    assert f"- upgraded libssl3:amd64 {OLD} -> {NEW} (security): fixes CVE-2026-84782, CVE-2026-35189," in text
    assert "- upgraded bash 5.2.15-2+b7 -> 5.2.15-2+b8 (security): its changelog names no CVE\n" in text
    assert "- upgraded zlib1g:amd64 1 -> 2 (security): its changelog is not in the image\n" in text
