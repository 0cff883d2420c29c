"""Provisioning scripts are shellcheck-clean (shellcheck is installed by ./visa-build doctor --fix)."""

from __future__ import annotations

from pathlib import Path

from visa_build.process import run

PROVISION = Path(__file__).resolve().parents[2] / "provision"


def test_provision_scripts_pass_shellcheck() -> None:
    scripts = sorted(str(p) for p in PROVISION.glob("*.sh")) + [str(PROVISION / "files/visa-jupyter-launch")]
    result = run(["shellcheck", "-x", *scripts], timeout=60, check=False, cwd=str(PROVISION.parent))
    assert result.returncode == 0, result.output
