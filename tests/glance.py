"""Real Glance APIs for the publishing tests: Glance from its PyPI release (tests/glance.lock, installed
with --require-hashes into <build>/glance/venv-<lock digest>), run by uwsgi with sqlite and the file store.
`noauth` is Glance's unauthenticated deployment (no Keystone); `keystone` puts Keystone's token check in front,
so a client with a user and password but no Keystone token is refused with 401, as a cloud refuses bad
credentials. The `clouds` fixture starts them for a test session."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from visa_build.ports import free_port

LOCK = Path(__file__).with_name("glance.lock")


def ensure_venv(build_dir: Path) -> Path:
    """The Glance environment for the pinned lock, installed once (a stamp marks a finished install)."""
    venv = build_dir / "glance" / f"venv-{hashlib.sha256(LOCK.read_bytes()).hexdigest()[:12]}"
    stamp = venv / ".installed"
    if not stamp.exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        subprocess.run(
            [str(venv / "bin/pip"), "install", "-q", "--require-hashes", "-r", str(LOCK)], check=True, timeout=1800
        )
        stamp.touch()
    return venv


def _config(venv: Path, work: Path, *, flavor: str, extra: str) -> Path:
    conf = work / "conf"
    conf.mkdir(parents=True)
    (work / "store").mkdir()
    keystone = (
        "[keystone_authtoken]\nwww_authenticate_uri = http://127.0.0.1:9/v3\nauth_url = http://127.0.0.1:9\n"
        if flavor == "keystone"
        else ""
    )
    (conf / "glance-api.conf").write_text(
        f"[DEFAULT]\nenabled_backends = fs:file\n{extra}\n"
        f"[paste_deploy]\nflavor = {flavor if flavor == 'keystone' else ''}\n"
        f"config_file = {venv}/etc/glance/glance-api-paste.ini\n"
        f"[database]\nconnection = sqlite:///{work}/glance.sqlite\n"
        f"[glance_store]\ndefault_backend = fs\n[fs]\nfilesystem_store_datadir = {work}/store\n"
        # Glance's legacy rules: without Keystone there are no project roles for the new defaults to match
        f"[oslo_policy]\nenforce_new_defaults = false\n{keystone}"
    )
    subprocess.run(
        [str(venv / "bin/glance-manage"), "--config-file", str(conf / "glance-api.conf"), "db_sync"],
        check=True,
        timeout=300,
        capture_output=True,
    )
    return conf


@contextlib.contextmanager
def running_glance(venv: Path, work: Path, *, flavor: str = "noauth", extra: str = "") -> Iterator[str]:
    """A Glance API on 127.0.0.1 for the block; yields its endpoint. Its log is work/uwsgi.log."""
    conf = _config(venv, work, flavor=flavor, extra=extra)
    port = free_port()
    argv = [
        str(venv / "bin/uwsgi"),
        "--http11-socket",
        f"127.0.0.1:{port}",
        "--module",
        "glance.wsgi.api:application",
        "--virtualenv",
        str(venv),
        "--master",
        "--processes",
        "1",
        "--threads",
        "4",
        "--die-on-term",
        "--need-app",
    ]
    with (work / "uwsgi.log").open("wb") as log:
        server = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env={"OS_GLANCE_CONFIG_DIR": str(conf), "PATH": "/usr/bin:/bin"}
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{endpoint}/v2/images", timeout=5).status_code in (200, 401):
                    break
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Glance did not start on {endpoint}; see {work}/uwsgi.log")
            time.sleep(0.5)
        yield endpoint
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="session")
def clouds(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Three real Glance APIs (open; behind Keystone, refusing the credentials given; with a 1 MB storage
    quota) and a closed port, as clouds of a clouds.yaml that OS_CLIENT_CONFIG_FILE names for the session;
    yields {cloud: endpoint}."""
    venv = ensure_venv(Path(pytestconfig.getoption("--visa-build-dir")).resolve())
    root = tmp_path_factory.mktemp("glance")
    with (
        running_glance(venv, root / "open") as open_glance,
        running_glance(venv, root / "keystone", flavor="keystone") as keystone_glance,
        running_glance(venv, root / "quota", extra="user_storage_quota = 1MB") as quota_glance,
    ):
        endpoints = {
            "glance-test": open_glance,
            "glance-keystone": keystone_glance,
            "glance-quota": quota_glance,
            "glance-unreachable": f"http://127.0.0.1:{free_port()}",
        }
        config: dict[str, dict[str, dict[str, Any]]] = {
            "clouds": {
                name: {"auth_type": "none", "image_endpoint_override": endpoint} for name, endpoint in endpoints.items()
            }
        }
        # a user and password that Glance behind Keystone refuses (HTTP 401)
        config["clouds"]["glance-keystone"] |= {
            "auth_type": "http_basic",
            "auth": {"username": "visa", "password": "wrong", "endpoint": keystone_glance},
        }
        path = root / "clouds.yaml"
        path.write_text(yaml.safe_dump(config))
        saved = os.environ.get("OS_CLIENT_CONFIG_FILE")
        os.environ["OS_CLIENT_CONFIG_FILE"] = str(path)
        try:
            yield endpoints
        finally:
            if saved is None:
                del os.environ["OS_CLIENT_CONFIG_FILE"]
            else:
                os.environ["OS_CLIENT_CONFIG_FILE"] = saved
