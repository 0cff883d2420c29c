"""The Debian archive's state: the InRelease files of a release, its -updates and its -security suites. Their
digests are inputs of the image's cache keys, so a night with no Debian change rebuilds nothing and a night
with one rebuilds only the image's thin Debian-updates layer. Each InRelease is trusted only when gpgv verifies
it against the archive keyring and its Valid-Until has not passed, so a mirror cannot hide a security update by
replaying an old one (apt itself checks the signatures it installs by)."""

from __future__ import annotations

import hashlib
import lzma
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import requests

from . import build_proxy
from .base_rootfs import Sources
from .debian_package import DEBIAN_KEYRING
from .errors import VisaBuildError
from .process import Runner, run

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


def read_state(
    sources: Sources,
    *,
    session: requests.Session | None = None,
    runner: Runner = run,
    now: datetime | None = None,
) -> tuple[SuiteState, ...]:
    """The current state of each suite, read from the mirrors and verified with the archive keyring (`now`: the
    clock Valid-Until is checked against); VisaBuildError when one cannot be read or verified."""
    http = session or requests.Session()
    keyring = Path(sources.keyring) if sources.keyring else DEBIAN_KEYRING
    states = []
    for suite, url in inrelease_urls(sources):
        try:
            response = http.get(url, timeout=TIMEOUT)
        except requests.exceptions.ProxyError as exc:
            raise VisaBuildError(
                f"the proxy {build_proxy.current()} (visa.proxy) did not pass the request for {url}: {exc}",
                tip="check that the proxy runs and lets this host reach the mirror, or fix visa.proxy",
            ) from None
        except requests.RequestException as exc:
            raise VisaBuildError(
                f"the mirror did not answer for {url}: {exc}",
                tip="check the network, visa.mirror / visa.security_mirror (and visa.proxy when set)",
            ) from None
        if response.status_code != 200 or b"Codename:" not in response.content:
            raise VisaBuildError(
                f"{url} answered HTTP {response.status_code}, not an InRelease file",
                tip="check visa.mirror / visa.security_mirror and the release name",
            )
        fields = verified_fields(response.content, url, keyring, now=now or datetime.now(UTC), runner=runner)
        states.append(SuiteState(suite, url, fields.get("Date", ""), hashlib.sha256(response.content).hexdigest()))
    return tuple(states)


def verified_fields(
    inrelease: bytes, url: str, keyring: Path, *, now: datetime, runner: Runner = run
) -> dict[str, str]:
    """The header fields of an InRelease file, read from the text its signature covers: VisaBuildError unless gpgv
    finds a good signature by a key of `keyring`, and none bad, and its Valid-Until (if any) is after `now`."""
    with tempfile.TemporaryDirectory(prefix="visa-inrelease-") as work:
        signed, text = Path(work, "InRelease"), Path(work, "signed")
        signed.write_bytes(inrelease)
        argv = ["gpgv", "--status-fd", "1", "--keyring", str(keyring), "--output", str(text), str(signed)]
        status = [
            line.split()[1] for line in runner(argv, timeout=60, check=False).lines if line.startswith("[GNUPG:] ")
        ]
        if "GOODSIG" not in status or {"BADSIG", "EXPKEYSIG", "REVKEYSIG"} & set(status):
            said = ", ".join(s for s in status if s.endswith(("SIG", "PUBKEY"))) or "no signature"
            raise VisaBuildError(
                f"{url} is not signed by the archive keyring {keyring} (gpgv: {said})",
                tip="the mirror serves a damaged or forged InRelease: use another visa.mirror / visa.security_mirror",
            )
        header = text.read_text(errors="replace").split("\n\n", 1)[0]
    fields = dict(line.split(": ", 1) for line in header.splitlines() if ": " in line and not line.startswith(" "))
    _check_valid_until(fields.get("Valid-Until"), url, now)
    return fields


def _check_valid_until(valid_until: str | None, url: str, now: datetime) -> None:
    """VisaBuildError when the suite's Valid-Until has passed (or cannot be read): a replayed, stale InRelease."""
    if valid_until is None:
        return
    try:
        expired = parsedate_to_datetime(valid_until) <= now
    except (TypeError, ValueError):
        expired = True
    if expired:
        raise VisaBuildError(
            f"{url} expired (Valid-Until: {valid_until}; now {now.astimezone(UTC):%a, %d %b %Y %H:%M:%S} UTC)",
            tip="the mirror is stale or replays an old InRelease: use an up-to-date visa.mirror / visa.security_mirror",
        )


def state_key(states: tuple[SuiteState, ...]) -> str:
    """One short digest of every suite's state (provision/apt-state.sh computes it alike from apt's lists, and
    45-debian-updates.sh compares its 16 characters)."""
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
