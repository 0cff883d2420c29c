"""Which Packer runs: PATH's when it is 1.6.6 or newer, else Debian 12's package, which apt downloads from bookworm
(signatures checked) and which is unpacked into the build folder's tools, not installed on the host."""

from __future__ import annotations

from pathlib import Path

import pytest

from visa_build import doctor, packer_binary
from visa_build.errors import VisaBuildError
from visa_build.ports import free_port
from visa_build.process import run

DEBIAN = "http://deb.debian.org/debian"


def _on_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, says: str) -> Path:
    """A fake `packer` alone on PATH that answers `version` with `says`."""
    folder = tmp_path / "bin"
    folder.mkdir()
    fake = folder / "packer"
    fake.write_text(f'#!/bin/sh\n[ "$1" = version ] && echo "{says}"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:/usr/sbin:/sbin")  # /usr/bin has the host's packer
    return fake


@pytest.mark.parametrize("says", ["Packer v1.6.6", "Packer v1.11.2\n\nYour version of Packer is out of date!"])
def test_a_packer_on_path_from_1_6_6_on_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, says: str) -> None:
    fake = _on_path(monkeypatch, tmp_path, says)
    chosen = packer_binary.choose(tmp_path / "build")
    assert chosen.path == str(fake) and chosen.version >= (1, 6, 6), chosen


def test_an_older_packer_on_path_is_refused_saying_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = _on_path(monkeypatch, tmp_path, "Packer v1.5.0")
    with pytest.raises(packer_binary.PackerNotFoundError) as raised:
        packer_binary.choose(tmp_path / "build")
    assert f"no Packer 1.6.6 or newer ({fake} is 1.5.0)" in str(raised.value), raised.value
    assert "doctor --fix fetches Debian 12's packer" in raised.value.tip, raised.value.tip
    finding = next(f for f in doctor.examine(tmp_path / "build") if f.check == "packer")
    assert not finding.ok and "1.5.0" in finding.detail and "bookworm" in finding.fix, finding


def test_an_older_packer_on_path_falls_back_to_the_one_in_the_tools(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _on_path(monkeypatch, tmp_path, "Packer v1.5.0")
    unpacked = packer_binary.tools_folder(tmp_path / "build") / "1.6.6" / "usr" / "bin" / "packer"
    unpacked.parent.mkdir(parents=True)
    unpacked.write_text('#!/bin/sh\necho "Packer v1.6.6"\n')
    unpacked.chmod(0o755)
    assert packer_binary.choose(tmp_path / "build") == packer_binary.Packer(str(unpacked), (1, 6, 6))


def test_debian_12s_packer_is_downloaded_by_apt_and_unpacked_into_the_tools(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """For real: apt's private configuration reads bookworm's signed index; the unpacked packer runs."""
    _on_path(monkeypatch, tmp_path, "Packer v1.5.0")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin:/usr/sbin:/sbin")  # apt-get and dpkg-deb
    build = tmp_path / "build"
    fetched = packer_binary.fetch(build, DEBIAN)
    assert fetched.path == str(packer_binary.tools_folder(build) / "1.6.6" / "usr" / "bin" / "packer"), fetched
    assert run([fetched.path, "version"], timeout=60).output.startswith("Packer v1.6.6")
    assert packer_binary.choose(build) == fetched, "the fetched packer is the one every call runs"
    assert sorted(p.name for p in packer_binary.tools_folder(build).parent.iterdir()) == ["packer", "packer.lock"]


def test_a_mirror_without_the_package_leaves_no_packer(tmp_path: Path) -> None:
    mirror = f"http://127.0.0.1:{free_port()}/debian"
    with pytest.raises(VisaBuildError) as raised:
        packer_binary.fetch(tmp_path / "build", mirror)
    assert f"apt could not fetch and verify packer from {mirror} bookworm" in str(raised.value), raised.value
    assert "carries bookworm" in raised.value.tip, raised.value.tip
    assert not list((tmp_path / "build").rglob("packer")), "nothing may be left of a failed fetch"
