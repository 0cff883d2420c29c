"""C11-C13: "Data Analysis" is the one python3 kernel, runs in the data-analysis environment through the
proxy (REST + websocket), and users' own kernelspecs appear without a restart."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import websocket

from tests.infra.conftest import DATA_ANALYSIS, Instance, as_owner
from visa_build.image_spec import ImageSpec


def execute(jupyter: str, browser: requests.Session, kernel: str, code: str) -> str:
    """Start `kernel` over REST, run `code` over the kernel websocket, return its stdout; the kernel is removed."""
    response = browser.post(f"{jupyter}/api/kernels", json={"name": kernel}, timeout=60)
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


def kernelspecs(jupyter: str) -> dict[str, Any]:
    response = requests.get(f"{jupyter}/api/kernelspecs", timeout=30)
    assert response.status_code == 200, f"GET {jupyter}/api/kernelspecs answered {response.status_code}"
    specs: dict[str, Any] = response.json()["kernelspecs"]
    return specs


def test_python3_is_data_analysis(jupyter: str, spec: ImageSpec) -> None:
    specs = kernelspecs(jupyter)
    assert "python3" in specs, f"no python3 kernelspec; the server sees {sorted(specs)}"
    python3 = specs["python3"]["spec"]
    assert python3["display_name"] == spec.data_analysis.display_name, f"python3 is '{python3['display_name']}'"
    assert python3["argv"][0] == f"{DATA_ANALYSIS}/bin/python", f"python3 runs {python3['argv'][0]}"


def test_only_one_data_analysis_kernel(jupyter: str, spec: ImageSpec) -> None:
    names = [
        name
        for name, item in kernelspecs(jupyter).items()
        if item["spec"]["display_name"] in (spec.data_analysis.display_name, "Python 3 (ipykernel)")
    ]
    assert names == ["python3"], f"kernels that look like the default python3: {names}"


def test_kernel_runs_in_data_analysis_env_through_proxy(jupyter: str, browser: requests.Session) -> None:
    prefix = execute(jupyter, browser, "python3", "import sys; print(sys.prefix)")
    assert prefix == DATA_ANALYSIS, f"the python3 kernel runs in {prefix!r}, not {DATA_ANALYSIS}"


def owner_output(host: Any, instance: Instance, command: str) -> str:
    result = as_owner(host, instance, command)
    assert result.rc == 0, f"as the owner, `{command}` exited {result.rc}:\n{result.stdout}{result.stderr}"
    return str(result.stdout).strip()


@pytest.fixture
def user_env(host: Any, instance: Instance, spec: ImageSpec) -> Iterator[str]:
    """A user's own venv layered on the data-analysis packages (so it has ipykernel), removed afterwards.
    Without pip: the kernel needs none, and ensurepip alone takes half a minute in a TCG guest."""
    env = f"{instance.home}/visa-test-env"
    site = f"lib/python{'.'.join(spec.python.split('.')[:2])}/site-packages"  # the image's interpreter
    owner_output(
        host,
        instance,
        f"python3 -m venv --without-pip {env} && echo {DATA_ANALYSIS}/{site} > {env}/{site}/data-analysis.pth",
    )
    yield env
    owner_output(
        host,
        instance,
        f"rm -rf {env} ~/.local/share/jupyter/kernels/visa-test-env ~/.local/share/jupyter/kernels/python3",
    )


def test_user_kernel_appears_and_starts(
    host: Any, instance: Instance, user_env: str, jupyter: str, browser: requests.Session
) -> None:
    owner_output(host, instance, f"{user_env}/bin/python -m ipykernel install --user --name=visa-test-env")
    specs = kernelspecs(jupyter)
    assert "visa-test-env" in specs, f"a --user kernelspec is not listed without restart: {sorted(specs)}"
    assert specs["visa-test-env"]["spec"]["argv"][0] == f"{user_env}/bin/python"
    prefix = execute(jupyter, browser, "visa-test-env", "import sys; print(sys.prefix)")
    assert prefix == user_env, f"the user's kernel runs in {prefix!r}, not {user_env}"


def test_user_python3_does_not_hide_data_analysis(
    host: Any, instance: Instance, user_env: str, jupyter: str, spec: ImageSpec
) -> None:
    owner_output(host, instance, f"{user_env}/bin/python -m ipykernel install --user --name=python3")
    python3 = kernelspecs(jupyter)["python3"]["spec"]
    assert python3["display_name"] == spec.data_analysis.display_name, (
        f"a user's --name=python3 replaced the image kernel: python3 is now '{python3['display_name']}'"
    )
