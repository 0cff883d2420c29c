"""Packer driving: var files, argv and the -machine-readable parser (no Packer run here)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from visa_build import packer, packer_build


def test_var_file_quotes_values_and_escapes_templates() -> None:
    text = packer.var_file({"b": "x${y}", "a": 2, "c": ["1", "2"], "d": {"K": "v"}, "e": False})
    assert text == 'a = 2\nb = "x$${y}"\nc = ["1", "2"]\nd = { "K" = "v" }\ne = false\n'


def test_var_file_keeps_text_beyond_ascii_as_utf8() -> None:
    """Not JSON's \\u escapes: Packer 1.6 rejects the surrogate pair of an emoji."""
    assert packer.var_file({"name": "Data 🚀 é"}) == 'name = "Data 🚀 é"\n'


def test_build_argv_is_machine_readable_and_cleans_up_on_error() -> None:
    argv = packer.build_argv("/opt/packer", Path("/t"), Path("/v.pkrvars.hcl"))
    assert argv == ["/opt/packer", "build", "-machine-readable", "-on-error=cleanup", "-var-file=/v.pkrvars.hcl", "/t"]


@pytest.mark.parametrize(("text", "needed"), [("Packer v1.6.6", False), ("Packer v1.11.2\n", True)])
def test_plugin_block_only_from_packer_1_7(text: str, needed: bool) -> None:
    assert packer.needs_plugin_block(packer.parse_version(text)) is needed


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "1700000000,qemu.visa,ui,say,==> qemu.visa: Starting VM%!(PACKER_COMMA) booting",
            packer.Event("step", "Starting VM, booting"),
        ),
        ("1700000000,qemu.visa,ui,message,    qemu.visa: installing", packer.Event("message", "installing")),
        ("1700000000,qemu.visa,ui,error,==> qemu.visa: cp: no such file", packer.Event("error", "cp: no such file")),
        ("1700000000,,ui,say,==> qemu.visa: Connected to SSH!", packer.Event("step", "Connected to SSH!")),
        ("1700000000,,ui,error,Build 'qemu.visa' errored", packer.Event("error", "Build 'qemu.visa' errored")),
        ("not,a machine line", None),
        ("2021/01/01 12:00:00 plain log", None),
    ],
)
def test_parse_line(line: str, expected: packer.Event | None) -> None:
    assert packer.parse_line(line) == expected


def test_build_log_collects_artefact_files_and_errors() -> None:
    log = packer.BuildLog()
    steps: list[str] = []
    handle = log.handler(steps.append, lambda text: None)
    for line in [
        "1,qemu.visa,ui,say,==> qemu.visa: Gracefully halting virtual machine...",
        "2,qemu.visa,artifact,0,files-count,1",
        "3,qemu.visa,artifact,0,file,0,/out/visa.qcow2",
        "4,,ui,error,something broke",
    ]:
        handle(line)
    assert steps == ["Gracefully halting virtual machine..."]
    assert log.files == ["/out/visa.qcow2"]
    assert log.errors == ["something broke"]


def test_the_var_file_with_the_index_credentials_is_private_from_its_creation(tmp_path: Path) -> None:
    previous = os.umask(0)  # the widest umask: whatever a mode leaves open shows
    try:
        work = packer_build.private_folder(tmp_path / "packer" / "visa-ci-image")
        var_path = packer_build.write_private(work / "visa-ci-image.pkrvars.hcl", 'index_url = "https://u:t@x"\n')
    finally:
        os.umask(previous)
    assert stat.S_IMODE(work.stat().st_mode) == 0o700, "others could enter the folder with the var file"
    assert stat.S_IMODE(var_path.stat().st_mode) == 0o600, "others could read the index's credentials"
    assert var_path.read_text() == 'index_url = "https://u:t@x"\n'
