"""Content-keyed artefacts: stored with a sha256 sidecar, verified before use, removed when damaged."""

from __future__ import annotations

from pathlib import Path

import pytest

from visa_build import artefact


def test_stored_file_is_intact_until_damaged(tmp_path: Path) -> None:
    partial = tmp_path / "x.partial"
    partial.write_bytes(b"image")
    final = tmp_path / "out" / "x.qcow2"
    artefact.store(partial, final)
    assert not partial.exists() and artefact.is_intact(final)
    final.write_bytes(b"imagf")  # one byte flipped
    assert not artefact.is_intact(final)
    assert not final.exists() and not artefact.sidecar(final).exists(), "a damaged entry must be removed"


@pytest.mark.parametrize("sidecar_text", ["", "\n", "garbled"])
def test_an_empty_or_garbled_sidecar_is_rebuilt_with_one_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], sidecar_text: str
) -> None:
    final = tmp_path / "x.qcow2"
    final.write_bytes(b"image")
    artefact.sidecar(final).write_text(sidecar_text)
    assert not artefact.is_intact(final)
    assert not final.exists() and not artefact.sidecar(final).exists(), "a damaged entry must be removed"
    lines = [line for line in capfd.readouterr().err.splitlines() if "x.qcow2" in line]
    assert len(lines) == 1 and "damaged" in lines[0] and "rebuilding" in lines[0], lines


def test_file_without_sidecar_is_not_an_entry(tmp_path: Path) -> None:
    half = tmp_path / "x.qcow2"
    half.write_bytes(b"half-written")
    assert not artefact.is_intact(half)


def test_key_depends_on_every_part_and_their_order() -> None:
    assert artefact.key_of("a", "b") != artefact.key_of("b", "a")
    assert artefact.key_of("ab", "") != artefact.key_of("a", "b")
    assert artefact.key_of(b"x") == artefact.key_of("x")
