"""Ubuntu's archive keyring, which a Debian host does not have: taken from Debian's own `ubuntu-keyring` package by
apt, so the trust runs from the host's Debian keyring, through Debian's signed index of that package, to the key
that signs Ubuntu's InRelease files. apt and mmdebstrap verify every Ubuntu index with it; verification is never
turned off."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from . import artefact, progress
from .errors import CommandError, VisaBuildError
from .process import Runner, run

#: The Debian suite whose signed index carries the package, and what the package and the keyring are called.
SUITE = "trixie"
PACKAGE = "ubuntu-keyring"
KEYRING = "usr/share/keyrings/ubuntu-archive-keyring.gpg"
#: The host's Debian archive keyring: the root of the trust chain.
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


def ubuntu_keyring(cache_dir: Path, debian_mirror: str, *, runner: Runner = run) -> Path:
    """The verified Ubuntu archive keyring, cached under cache_dir/keyrings (fetched when absent or damaged)."""
    final = cache_dir / "keyrings" / "ubuntu-archive-keyring.gpg"
    if artefact.is_intact(final):
        return final
    if not DEBIAN_KEYRING.is_file():
        raise VisaBuildError(
            f"{DEBIAN_KEYRING} is missing: Ubuntu's keyring cannot be verified without it",
            tip="apt-get install debian-archive-keyring",
        )
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".keyring-", dir=final.parent))
    try:
        with progress.step(f"Fetching Ubuntu's archive keyring from Debian {SUITE}'s signed {PACKAGE} package"):
            for folder in ("parts", "state/lists/partial", "cache/archives/partial", "deb", "files"):
                (work / folder).mkdir(parents=True)
            (work / "status").touch()
            (work / "sources.list").write_text(f"deb [signed-by={DEBIAN_KEYRING}] {debian_mirror} {SUITE} main\n")
            options = apt_options(work)
            try:
                runner(["apt-get", *options, "-q", "--error-on=any", "update"], timeout=600, on_line=progress.line)
                runner(["apt-get", *options, "-q", "download", PACKAGE], timeout=600, cwd=str(work / "deb"))
            except CommandError as exc:
                said = next((line for line in exc.tail if line.startswith(("E:", "W:"))), "no reason given")
                raise VisaBuildError(
                    f"apt could not fetch and verify {PACKAGE} from {debian_mirror} {SUITE}: {said}",
                    tip="check that visa.mirror answers; apt refuses an index whose signature does not verify",
                ) from None
            (deb,) = (work / "deb").glob(f"{PACKAGE}_*.deb")
            runner(["dpkg-deb", "-x", str(deb), str(work / "files")], timeout=120)
            shutil.copyfile(work / "files" / KEYRING, work / "keyring.gpg")
            artefact.store(work / "keyring.gpg", final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final
