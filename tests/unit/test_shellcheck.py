"""Every shell script of the project is shellcheck-clean (shellcheck is installed by ./visa-build doctor --fix):
the provisioning scripts, the launcher and the desktop's helpers, the ./visa-build wrapper and the CI entry point."""

from __future__ import annotations

from tests.helpers import REPO
from visa_build.process import run

SCRIPTS = [
    *sorted(str(p.relative_to(REPO)) for p in (REPO / "provision").glob("*.sh")),
    "provision/files/visa-jupyter-launch",
    *sorted(str(p.relative_to(REPO)) for p in (REPO / "provision/files/desktop").glob("visa-*") if p.suffix == ""),
    "visa-build",
    ".ci/run",
]


def test_shell_scripts_pass_shellcheck() -> None:
    result = run(["shellcheck", "-x", *SCRIPTS], timeout=60, check=False, cwd=str(REPO))
    assert result.returncode == 0, f"shellcheck found problems:\n{result.output}"
