"""The launcher (provision/files/visa-jupyter-launch) run on this host with stubs for cloud-init, getent and
setpriv: what it refuses (exit 78), what it retries (exit 75), and how it starts JupyterLab."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

LAUNCHER = Path(__file__).resolve().parents[2] / "provision/files/visa-jupyter-launch"
META = {"id": "1234", "owner": "alice"}


def launch(
    tmp_path: Path,
    *,
    meta: dict[str, str] | None = META,
    cloud_init_up: bool = True,
    passwd: str = "alice:x:1001:1001::{home}:/bin/bash",
) -> tuple[int, str, list[str]]:
    """Run the launcher; returns its exit code, its log and the argv it gave setpriv (empty if none). In
    `passwd`, {home} is a home folder that exists."""
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    passwd = passwd.format(home=home)
    (tmp_path / "meta.json").write_text(json.dumps(meta) if meta is not None else "")
    scripts = {
        "cloud-init": f"""[ "{int(cloud_init_up)}" = 1 ] || exit 1
case "$2" in ds.meta_data) exit 0 ;; ds.meta_data.meta) [ -s {tmp_path}/meta.json ] || exit 1
  cat {tmp_path}/meta.json ;; *) exit 2 ;; esac""",
        "getent": f"echo '{passwd}'",
        "setpriv": f'printf "%s\\n" "$@" > {tmp_path}/setpriv.args',
    }
    for name, body in scripts.items():
        (stubs / name).write_text(f"#!/bin/bash\n{body}\n")
        (stubs / name).chmod(0o755)
    env_file = tmp_path / "visa-jupyter.env"
    env_file.write_text("VISA_JUPYTER_PORT=8888\nVISA_OWNER_WAIT_SECONDS=2\nVISA_JUPYTER_LOG_LEVEL=INFO\n")
    ran = subprocess.run(
        ["bash", str(LAUNCHER)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": f"{stubs}:/usr/bin:/bin", "VISA_JUPYTER_ENV": str(env_file)},
    )
    args_file = tmp_path / "setpriv.args"
    return ran.returncode, ran.stderr, args_file.read_text().splitlines() if args_file.exists() else []


@pytest.mark.parametrize(
    ("passwd", "message"),
    [
        ("daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin", "is a system account"),
        ("www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin", "is a system account"),
        ("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin", "is a system account"),
        ("alice:x:1001:0::{home}:/bin/bash", "has gid 0"),
    ],
)
def test_system_accounts_are_never_the_owner(tmp_path: Path, passwd: str, message: str) -> None:
    owner = passwd.split(":")[0]
    code, log, started = launch(tmp_path, meta={"id": "1234", "owner": owner}, passwd=passwd)
    assert code == 78 and message in log, f"exit {code}, log:\n{log}"
    assert started == [], "JupyterLab must not be started for a system account"


def test_cloud_init_not_answering_is_a_retry_not_bad_metadata(tmp_path: Path) -> None:
    code, log, started = launch(tmp_path, cloud_init_up=False)
    assert code == 75 and "cloud-init query does not answer" in log, f"exit {code}, log:\n{log}"
    assert started == []


def test_metadata_without_visa_keys_is_bad_metadata(tmp_path: Path) -> None:
    code, log, _ = launch(tmp_path, meta=None)
    assert code == 78 and "metadata has no instance id" in log, f"exit {code}, log:\n{log}"


def test_the_home_is_entered_as_the_owner(tmp_path: Path) -> None:
    code, log, started = launch(tmp_path)
    assert code == 0, f"exit {code}, log:\n{log}"
    assert started[:3] == ["--reuid=1001", "--regid=1001", "--init-groups"], started
    chdir = started.index("-C")
    assert started[chdir - 1] == "env" and started[chdir + 1] == str(tmp_path / "home"), (
        "the cd into the home must happen after setpriv (as the owner), with env -C"
    )
    assert "--ServerApp.base_url=/jupyter/1234/" in started
