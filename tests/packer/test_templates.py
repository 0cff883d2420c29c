"""The Packer templates are formatted and valid for the Packer builds run (packer_binary.choose's: PATH's when it is
1.6.6 or newer, else Debian 12's in the build folder's tools)."""

from __future__ import annotations

from pathlib import Path

import pytest

from visa_build import packer, packer_binary, vm
from visa_build.process import run
from visa_build.render import SECRET_ENV

VALID: dict[str, packer.VarValue] = {
    "image_name": "visa-ci",
    "vm_name": "visa-build-0a1b2c3d-visa-ci",
    "base_image": "base.qcow2",
    "base_image_checksum": "sha256:" + "0" * 64,
    "accelerator": "tcg",
    "output_directory": "out",
    "seed_dir": "seed",
    "ssh_private_key_file": "id_ed25519",
    "serial_log": "serial.log",
    "context_dir": "ctx",
    "provision_env": {"VISA_TARGET": "vm"},
    "provision_scripts": ["10-system-packages.sh"],
}


@pytest.fixture(scope="module")
def program(request: pytest.FixtureRequest) -> str:
    return packer_binary.choose(Path(request.config.getoption("--visa-build-dir"))).path


def _validate(program: str, tmp_path: Path, **overrides: packer.VarValue) -> str:
    (tmp_path / "seed").mkdir()
    (tmp_path / "ctx").mkdir()
    for name in ("seed/user-data", "seed/meta-data", "seed/network-config", "base.qcow2"):
        (tmp_path / name).write_text("x")
    vm.keypair(tmp_path)
    values = {**VALID, **overrides}
    values = {
        k: str(tmp_path / str(v)) if k in ("seed_dir", "ssh_private_key_file", "base_image", "context_dir") else v
        for k, v in values.items()
    }
    var_path = tmp_path / "test.pkrvars.hcl"
    var_path.write_text(packer.var_file(values), encoding="utf-8")
    result = run(packer.validate_argv(program, packer.TEMPLATES, var_path), timeout=120, check=False, cwd=str(tmp_path))
    return ("ok" if result.returncode == 0 else "") + result.output


def test_templates_are_formatted(program: str) -> None:
    result = run(packer.fmt_check_argv(program, packer.TEMPLATES), timeout=60, check=False)
    assert result.returncode == 0, f"run: packer fmt {packer.TEMPLATES}\n{result.output}"


@pytest.mark.parametrize(  # the published image (either compression), a cached intermediate stage
    ("compress", "compression"), [(True, "zlib"), (True, "zstd"), (False, "zlib")]
)
def test_templates_validate(program: str, tmp_path: Path, compress: bool, compression: str) -> None:
    output = _validate(program, tmp_path, compress=compress, compression=compression)
    assert output.startswith("ok"), output


@pytest.mark.parametrize(
    ("override", "complaint"),
    [
        ({"accelerator": "hvf"}, "must be kvm or tcg"),
        ({"base_image_checksum": "none"}, "must start with sha256"),
        ({"compression": "xz"}, "must be zlib or zstd"),
    ],
)
def test_templates_reject_bad_values(program: str, tmp_path: Path, override: dict[str, str], complaint: str) -> None:
    output = _validate(program, tmp_path, **override)
    assert not output.startswith("ok") and complaint in output, output


def test_an_index_token_never_reaches_packers_output(program: str, tmp_path: Path) -> None:
    """VISA_INDEX_URL goes to Packer as a sensitive variable (packer_build splits it off): Packer prints
    <sensitive> for it, here in `packer inspect` as in PACKER_LOG."""
    token = "s3cr3t-visa-token"
    env = {"VISA_TARGET": "vm", "VISA_INDEX_URL": f"https://user:{token}@pypi.example.org/simple"}
    values = {
        **VALID,
        "provision_env": {k: v for k, v in env.items() if k not in SECRET_ENV},
        "provision_secrets": {k: v for k, v in env.items() if k in SECRET_ENV},
    }
    assert _validate(program, tmp_path, **values).startswith("ok")
    inspected = _inspect(program, tmp_path)
    assert "<sensitive>" in inspected and token not in inspected, inspected


def test_a_display_name_with_emoji_reaches_packer_unchanged(program: str, tmp_path: Path) -> None:
    """Packer 1.6 rejects JSON's surrogate pairs (\\ud83d\\ude80): the var file carries the name as UTF-8."""
    name = "Data 🚀 Analysis é"
    output = _validate(program, tmp_path, provision_env={"VISA_TARGET": "vm", "VISA_KERNEL_DISPLAY_NAME": name})
    assert output.startswith("ok"), output
    assert f'\\"VISA_KERNEL_DISPLAY_NAME\\" = \\"{name}\\"' in _inspect(program, tmp_path)


def _inspect(program: str, tmp_path: Path) -> str:
    """`packer inspect` of the var file `_validate` wrote: the variables as Packer read them."""
    var_path = tmp_path / "test.pkrvars.hcl"
    argv = [program, "inspect", f"-var-file={var_path}", str(packer.TEMPLATES)]
    return run(argv, timeout=120, check=False, cwd=str(tmp_path)).output
