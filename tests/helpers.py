"""What the test folders share: the project's paths, the image's fixed paths, the facts gathered on a target,
and running things on it as its owner or in its kernels."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket

from visa_build.image_spec import ImageSpec, load_image_spec, normalise

REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO / "images"
#: How late the owner account of tests/double's late-owner double is created: well past what a restart-based
#: retry survives (systemd gives up after 5 starts in 10 s, ILL's supervisor example after 3 tries), yet short,
#: since the whole container suite waits for it.
LATE_SECONDS = 30
#: What pyproject.toml maps into the wheel as visa_build/_project/ (visa_build/resources.py).
PROJECT_TREES = ("provision", "docker", "packer", "images", "ci", "tests/infra", "tests/double", "tests/vm")
PROJECT_FILES = ("tests/__init__.py", "tests/conftest.py", "tests/helpers.py")


def image_spec(config: pytest.Config) -> ImageSpec:
    """The spec the target was built from (--image-spec)."""
    return load_image_spec(Path(config.getoption("--image-spec")))


VENV = "/opt/visa/jupyter/jupyterlab"
DATA_ANALYSIS = "/opt/visa/envs/data-analysis"
CONFIG = "/etc/visa/jupyter_server_config.py"


class Facts:
    """What probe.py gathered on the target; a fact it could not gather fails the tests that read it."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    def __getitem__(self, name: str) -> Any:
        if name not in self.raw:
            pytest.fail(f"the probe gathered no fact '{name}' on the target (facts: {sorted(self.raw)})")
        value = self.raw[name]
        if isinstance(value, dict) and set(value) == {"error"}:
            pytest.fail(f"the fact '{name}' could not be gathered on the target: {value['error']}")
        return value

    def environment(self, prefix: str) -> dict[str, Any]:
        found: dict[str, Any] = self[f"env:{prefix}"]
        return found


@dataclass(frozen=True)
class Instance:
    id: str
    owner: str
    home: str


def as_owner(host: Any, instance: Instance, command: str) -> Any:
    """Run `command` with bash as the owner, in their home, as a JupyterLab terminal does; the result (rc too)."""
    with host.sudo():
        return host.run("runuser -u %s -- bash -c %s", instance.owner, f"cd && {command}")


def packages(facts: Facts, prefix: str) -> dict[str, str]:
    """{normalised name: version} of what `prefix`'s pip sees installed."""
    listing = facts.environment(prefix)["packages"]
    return {normalise(name): version for name, version in listing.items()}


def execute(jupyter: str, browser: requests.Session, kernel: str, code: str, *, path: str = "") -> str:
    """Start `kernel` over REST (in folder `path` of the server's root, as for a notebook there), run `code` over
    the kernel websocket, return its stdout; the kernel is removed."""
    model = {"name": kernel, "path": path} if path else {"name": kernel}
    response = browser.post(f"{jupyter}/api/kernels", json=model, timeout=60)
    assert response.status_code == 201, f"starting kernel {kernel} answered {response.status_code}: {response.text}"
    kernel_id = response.json()["id"]
    try:
        cookies = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
        channel = websocket.create_connection(
            f"{jupyter.replace('http', 'ws', 1)}/api/kernels/{kernel_id}/channels",
            timeout=120,
            cookie=cookies,
        )
        try:
            msg_id = uuid.uuid4().hex
            channel.send(
                json.dumps(
                    {
                        "header": {
                            "msg_id": msg_id,
                            "msg_type": "execute_request",
                            "username": "visa-build",
                            "session": uuid.uuid4().hex,
                            "version": "5.3",
                        },
                        "parent_header": {},
                        "metadata": {},
                        "channel": "shell",
                        "buffers": [],
                        "content": {
                            "code": code,
                            "silent": False,
                            "store_history": False,
                            "user_expressions": {},
                            "allow_stdin": False,
                            "stop_on_error": True,
                        },
                    }
                )
            )
            stdout = []
            while True:
                message = json.loads(channel.recv())
                if message.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = message["msg_type"]
                if kind == "stream":
                    stdout.append(message["content"]["text"])
                elif kind == "error":
                    pytest.fail(f"kernel {kernel} raised {message['content']['ename']}: {message['content']['evalue']}")
                elif kind == "status" and message["content"]["execution_state"] == "idle":
                    return "".join(stdout).strip()
        finally:
            channel.close()
    finally:
        browser.delete(f"{jupyter}/api/kernels/{kernel_id}", timeout=60)


def rsa_key(path: Path, bits: int = 1024) -> Path:
    """A fresh RSA private key at `path`, as VISA signs desktop tokens with (openssl)."""
    argv = ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{bits}", "-out", str(path)]
    subprocess.run(argv, check=True, capture_output=True)
    return path


def desktop_token(key: Path, user: str, issued: int | None = None) -> str:
    """VISA's desktop token: "<user>,<unix seconds>;<base64 SHA256withRSA signature of the part before ';'>"."""
    payload = f"{user},{int(time.time()) if issued is None else issued}"
    argv = ["openssl", "dgst", "-sha256", "-sign", str(key), "-binary"]
    signed = subprocess.run(argv, input=payload.encode(), capture_output=True, check=True).stdout
    return f"{payload};{base64.b64encode(signed).decode()}"


def opened_lab(jupyter: str) -> requests.Session:
    """An HTTP session like a browser's that has just opened /lab: it holds a fresh _xsrf cookie for POSTs (a
    restarted server may sign it anew)."""
    session = requests.Session()
    response = session.get(f"{jupyter}/lab", timeout=30)
    assert response.status_code == 200, f"GET {jupyter}/lab answered {response.status_code}"
    session.headers["X-XSRFToken"] = session.cookies.get("_xsrf") or ""
    return session
