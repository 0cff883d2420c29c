"""Provisioning scripts are shellcheck-clean (shellcheck is installed by ./visa-build doctor --fix), and the
installers take only the wheels the wheelhouse lists, by hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

from visa_build.ports import free_port
from visa_build.process import Result, run
from visa_build.wheelhouse import serving, write_manifest

PROVISION = Path(__file__).resolve().parents[2] / "provision"


def test_provision_scripts_pass_shellcheck() -> None:
    scripts = sorted(str(p) for p in PROVISION.glob("*.sh")) + [str(PROVISION / "files/visa-jupyter-launch")]
    result = run(["shellcheck", "-x", *scripts], timeout=60, check=False, cwd=str(PROVISION.parent))
    assert result.returncode == 0, result.output


def hashed_pins(wheelhouse: Path, pins: str, tmp_path: Path) -> Result:
    """provision/lib.sh's hashed_pins for `pins`, with `wheelhouse` served over HTTP as in a build."""
    (tmp_path / "pins.txt").write_text(pins)
    with serving(wheelhouse, port=free_port()) as url:
        return run(["bash", "-c", f'source provision/lib.sh && hashed_pins "{tmp_path}/pins.txt"'], timeout=60,
                   check=False, cwd=str(PROVISION.parent), env={"VISA_WHEELHOUSE_URL": url})  # fmt: skip


def test_the_installers_take_hashed_wheels_only(tmp_path: Path) -> None:
    house = tmp_path / "house"
    house.mkdir()
    for name in ("Typing_Extensions-4.1-py3-none-any.whl", "numpy-2.4.6-cp311-cp311-manylinux_2_17_x86_64.whl"):
        (house / name).write_bytes(name.encode())
    write_manifest(house)
    (house / "evil-1.0-py3-none-any.whl").write_bytes(b"planted")  # not in SHA256SUMS
    result = hashed_pins(house, "numpy==2.4.6\ntyping-extensions==4.1\n", tmp_path)
    assert result.returncode == 0, result.output
    digest = hashlib.sha256(b"numpy-2.4.6-cp311-cp311-manylinux_2_17_x86_64.whl").hexdigest()
    assert result.lines[0] == f"numpy==2.4.6 --hash=sha256:{digest}", result.lines
    assert result.lines[1].startswith("typing-extensions==4.1 --hash=sha256:") and len(result.lines) == 2
    lib = (PROVISION / "lib.sh").read_text()
    assert lib.count("--require-hashes") >= 2 and "--no-build" in lib and "--only-binary=:all:" in lib


def test_a_pin_without_a_listed_wheel_stops_the_install(tmp_path: Path) -> None:
    house = tmp_path / "house"
    house.mkdir()
    (house / "numpy-2.4.6-cp311-cp311-manylinux_2_17_x86_64.whl").write_bytes(b"numpy")
    write_manifest(house)
    (house / "evil-1.0-py3-none-any.whl").write_bytes(b"planted")
    result = hashed_pins(house, "evil==1.0\n", tmp_path)
    assert result.returncode != 0 and "evil==1.0 has no wheel in the wheelhouse" in result.output, result.output
