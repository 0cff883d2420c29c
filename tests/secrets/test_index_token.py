"""An index URL that carries a token never reaches a log: a real in-guest build of images/ci with the pip-index
installer and `user:token@` in visa.index_url (an address where nothing listens, so the install fails as soon as
pip asks), then every file the run wrote under build/logs, its own output and what is left under build/packer
are searched for the token.

It boots the base qcow2 under TCG (made by mmdebstrap when absent): minutes, too long for CI's budget, so it is
opt-in: VISA_SLOW_BUILD_TESTS=1 (docs/testing.md)."""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.skipif(
    os.environ.get("VISA_SLOW_BUILD_TESTS") != "1", reason="a TCG build of minutes: set VISA_SLOW_BUILD_TESTS=1"
)


def test_an_index_token_is_in_no_log_of_a_real_build(pytestconfig: pytest.Config) -> None:
    build = Path(pytestconfig.getoption("--visa-build-dir")).resolve()
    token = f"visa-token-{secrets.token_hex(8)}"
    started = time.time()
    env = {
        **os.environ,
        "INVOKE_VISA_BUILD_DIR": str(build),
        "INVOKE_VISA_INDEX_URL": f"https://visa-user:{token}@127.0.0.1:9/simple",
        "NO_COLOR": "1",
    }
    run = subprocess.run(
        ["./visa-build", "build-qcow2", "--image", "images/ci", "--fill", "guest", "--installer", "pip-index"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 1, f"the install from a closed port must fail the build:\n{output[-3000:]}"
    assert "with pip-index" in output, f"the build did not reach the pip-index install:\n{output[-3000:]}"
    written = [path for path in (build / "logs").rglob("*") if path.is_file() and path.stat().st_mtime >= started]
    written += [path for path in (build / "packer").rglob("*") if path.is_file()]
    assert any(path.name.startswith("packer-") for path in written), "the build wrote no Packer log"
    leaked = [str(path) for path in written if token in path.read_text(errors="replace")]
    assert token not in output, "the token is in the run's output"
    assert not leaked, f"the token is in: {leaked}"
