"""What a security update fixed: the CVE ids a Debian package's own changelog names between the release's old
version and its new one, read from `/usr/share/doc/<package>/changelog.Debian.gz` in the image. No tracker is
needed (none answers from the build hosts). The changelog is parsed here: an entry starts with a header line
`source (version) suites; urgency=...` at column 0, and versions are ordered as dpkg orders them."""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path

from .changes import compare_debian

CVE = re.compile(r"\bCVE-\d{4}-\d{4,}\b")
HEADER = re.compile(r"^[a-z0-9][a-z0-9.+-]* \((?P<version>[^()\s]+)\) [^;]*;")


def cves_between(changelog: str, old: str, new: str) -> list[str]:
    """The CVE ids that the entries of `changelog` newer than `old` and not newer than `new` name, each once, in
    the changelog's order (newest first)."""
    found: dict[str, None] = {}
    counted = False
    for line in changelog.splitlines():
        header = HEADER.match(line)
        if header:
            version = header["version"]
            counted = compare_debian(version, old) > 0 and compare_debian(version, new) <= 0
        elif counted:
            found |= dict.fromkeys(CVE.findall(line))
    return list(found)


#: A package's changelog: a Debian revision's (changelog.Debian.gz), or a native package's own (changelog.gz, e.g.
#: apt), in the same format.
CHANGELOGS = ("changelog.Debian.gz", "changelog.gz")


def changelog(root: Path, package: str) -> str | None:
    """The Debian changelog of `package` (`libssl3` or `libssl3:amd64`) in the image mounted at `root`; None when
    the image holds none (or its doc folder points outside the image)."""
    folder = root / "usr/share/doc" / package.split(":")[0]
    for name in CHANGELOGS:
        path = folder / name
        try:
            if path.resolve().is_relative_to(root.resolve()):
                return gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
        except (OSError, EOFError, zlib.error):
            continue
    return None


def read_fixes(root: Path, updates: list[tuple[str, str, str]]) -> dict[str, list[str] | None]:
    """{package: the CVE ids it fixes} of each (package, old, new) update, from the image mounted at `root`;
    None for a package whose changelog the image does not hold."""
    fixes: dict[str, list[str] | None] = {}
    for name, old, new in updates:
        text = changelog(root, name)
        fixes[name] = None if text is None else cves_between(text, old, new)
    return fixes
