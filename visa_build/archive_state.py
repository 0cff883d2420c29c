"""The Debian archive's state: the InRelease files of a release, its -updates and its -security suites. Their
digests are inputs of the image's cache keys, so a night with no Debian change rebuilds nothing and a night
with one rebuilds only the image's thin Debian-updates layer (apt itself checks the signatures it installs by)."""

from __future__ import annotations

import hashlib
import lzma
from dataclasses import dataclass

import requests

from .base_rootfs import Sources
from .errors import VisaBuildError

TIMEOUT = 30


@dataclass(frozen=True)
class SuiteState:
    suite: str  # e.g. bookworm-security
    url: str  # its InRelease
    date: str  # the archive's Date: field
    sha256: str  # of the InRelease file: changes whenever the suite does


def inrelease_urls(sources: Sources) -> list[tuple[str, str]]:
    """(suite, InRelease URL) of each of the image's suites."""
    suites = (line.split()[1:3] for line in sources.lines())  # deb <url> <suite> <component>
    return [(suite, f"{url.rstrip('/')}/dists/{suite}/InRelease") for url, suite in suites]


def read_state(sources: Sources, *, session: requests.Session | None = None) -> tuple[SuiteState, ...]:
    """The current state of each suite, read from the mirrors; VisaBuildError when one cannot be read."""
    http = session or requests.Session()
    states = []
    for suite, url in inrelease_urls(sources):
        try:
            response = http.get(url, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise VisaBuildError(
                f"the mirror did not answer for {url}: {exc}",
                tip="check the network and visa.mirror / visa.security_mirror",
            ) from None
        if response.status_code != 200 or b"Codename:" not in response.content:
            raise VisaBuildError(
                f"{url} answered HTTP {response.status_code}, not an InRelease file",
                tip="check visa.mirror / visa.security_mirror and the release name",
            )
        date = next(
            (line.split(":", 1)[1].strip() for line in response.text.splitlines() if line.startswith("Date:")), ""
        )
        states.append(SuiteState(suite, url, date, hashlib.sha256(response.content).hexdigest()))
    return tuple(states)


def state_key(states: tuple[SuiteState, ...]) -> str:
    """One short digest of every suite's state."""
    digest = hashlib.sha256("".join(f"{s.suite} {s.sha256}\n" for s in states).encode())
    return digest.hexdigest()[:16]


def security_versions(sources: Sources, *, session: requests.Session | None = None) -> dict[str, str]:
    """{package: version} the -security suite offers now (amd64 and all), to mark security updates."""
    _, mirror, suite, *components = sources.lines()[-1].split()
    versions: dict[str, str] = {}
    for component in components:
        versions |= _versions(f"{mirror.rstrip('/')}/dists/{suite}/{component}/binary-amd64/Packages.xz", session)
    return versions


def _versions(url: str, session: requests.Session | None) -> dict[str, str]:
    """{package: version} of one Packages.xz index."""
    try:
        response = (session or requests.Session()).get(url, timeout=TIMEOUT)
        response.raise_for_status()
        text = lzma.decompress(response.content).decode(errors="replace")
    except (requests.RequestException, lzma.LZMAError) as exc:
        raise VisaBuildError(
            f"the security suite's package list {url} could not be read: {exc}", tip="check the security mirror"
        ) from None
    versions: dict[str, str] = {}
    for stanza in text.split("\n\n"):
        fields = dict(row.split(": ", 1) for row in stanza.splitlines() if ": " in row and not row.startswith(" "))
        if "Package" in fields and "Version" in fields:
            versions[fields["Package"]] = fields["Version"]
    return versions
