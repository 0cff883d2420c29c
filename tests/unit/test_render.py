"""Pure rendering of the files provisioning installs, checked against golden files."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers import REPO
from visa_build import render
from visa_build.image_spec import load_image_spec

GOLDEN = Path(__file__).parent / "golden"
SPEC = load_image_spec(REPO / "images/visa-jupyter")


def test_jupyter_server_config_matches_golden() -> None:
    assert render.jupyter_server_config(SPEC) == (GOLDEN / "jupyter_server_config.py").read_text()


def test_service_env_matches_golden() -> None:
    assert render.service_env(SPEC) == (GOLDEN / "visa-jupyter.env").read_text()


def test_pins_file_is_exact_and_sorted() -> None:
    lines = render.pins_file(SPEC.data_analysis.pins).splitlines()
    names = [line.split("==")[0] for line in lines]
    assert names == sorted(names) and len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z0-9-]+==\S+", line) for line in lines), lines


def test_dockerfile_args_mirror_provision_env() -> None:
    dockerfile = (REPO / "docker/Dockerfile").read_text()
    args = set(re.findall(r"^ARG (VISA_\w+)", dockerfile, re.M))
    env = render.provision_env(
        SPEC, target="container", wheelhouse_url="http://x/", installer="uv", wheel_bytecode=True, debian_state="0"
    )
    assert args == set(env), f"Dockerfile ARGs {sorted(args)} != provision variables {sorted(env)}"
