"""One package of a Debian suite, downloaded by apt with a private configuration (its own sources, lists, cache and
empty status), so apt checks the suite's signed index against the host's Debian archive keyring and the package
against that index; nothing is installed on the host, and the host's own apt sources are not read."""

from __future__ import annotations

from pathlib import Path

from . import progress
from .errors import CommandError, VisaBuildError
from .process import Runner, run

#: The host's Debian archive keyring: the root of the trust chain (on Ubuntu, `debian-archive-keyring` in universe).
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


def apt_options(root: Path) -> list[str]:
    """apt options that make `root` its whole world: its own sources, lists, cache and (empty) status."""
    return [
        *("-o", f"Dir::Etc::SourceList={root / 'sources.list'}", "-o", f"Dir::Etc::SourceParts={root / 'parts'}"),
        *("-o", f"Dir::State={root / 'state'}", "-o", f"Dir::State::status={root / 'status'}"),
        *("-o", f"Dir::Cache={root / 'cache'}", "-o", f"Dir::Etc::Preferences={root / 'preferences'}"),
        *("-o", f"Dir::Etc::PreferencesParts={root / 'parts'}", "-o", "APT::Architecture=amd64"),
        *("-o", "Acquire::Languages=none", "-o", "APT::Sandbox::User=root"),
    ]


def download(package: str, suite: str, mirror: str, work: Path, *, runner: Runner = run) -> Path:
    """The .deb of `package` from `mirror`'s `suite` (main), verified by apt and downloaded under `work` (a new,
    empty folder the caller removes)."""
    if not DEBIAN_KEYRING.is_file():
        raise VisaBuildError(
            f"{DEBIAN_KEYRING} is missing: {package} from Debian {suite} cannot be verified without it",
            tip="apt-get install debian-archive-keyring (on Ubuntu it is in universe)",
        )
    for folder in ("parts", "state/lists/partial", "cache/archives/partial", "deb"):
        (work / folder).mkdir(parents=True)
    (work / "status").touch()
    (work / "sources.list").write_text(f"deb [signed-by={DEBIAN_KEYRING}] {mirror} {suite} main\n")
    options = apt_options(work)
    try:
        runner(["apt-get", *options, "-q", "--error-on=any", "update"], timeout=600, on_line=progress.line)
        runner(["apt-get", *options, "-q", "download", package], timeout=600, cwd=str(work / "deb"))
    except CommandError as exc:
        said = next((line for line in exc.tail if line.startswith(("E:", "W:"))), "no reason given")
        raise VisaBuildError(
            f"apt could not fetch and verify {package} from {mirror} {suite}: {said}",
            tip=f"check that visa.mirror answers and carries {suite}; apt refuses an index whose signature does not "
            "verify",
        ) from None
    (deb,) = (work / "deb").glob(f"{package}_*.deb")
    return deb


def unpacked(package: str, suite: str, mirror: str, work: Path, *, runner: Runner = run) -> Path:
    """The files of `package` from `mirror`'s `suite`, downloaded as `download` does and unpacked (not installed)
    into a folder under `work` named after the .deb (e.g. chrony_4.3-2+deb12u3_amd64)."""
    deb = download(package, suite, mirror, work / "apt", runner=runner)
    files = work / deb.stem
    runner(["dpkg-deb", "-x", str(deb), str(files)], timeout=120)
    return files
