"""One image, two targets: the booted VM holds exactly the container double's packages (Debian and both Python
environments). The documented VM difference (docs/how-an-image-is-made.md, Decisions for the VM) changes files,
not packages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import docker.errors
import pytest
from docker.client import from_env

from tests.helpers import DATA_ANALYSIS, VENV, Facts, packages
from tests.infra.probe import DPKG_QUERY, parse_dpkg
from visa_build.docker_engine import LABEL
from visa_build.image_spec import normalise

pytestmark = pytest.mark.vm_only

PIP_LIST = ["-s", "-m", "pip", "list", "--format=json", "--disable-pip-version-check"]


@pytest.fixture(scope="module")
def double(pytestconfig: pytest.Config) -> Iterator[Any]:
    """A container of the double's image, not booted: its files are all these tests read."""
    image = pytestconfig.getoption("--double-image")
    if not image:
        pytest.skip("no --double-image: the qcow2 was not filled from a double (visa.fill = guest, or --qcow2)")
    client = from_env()
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        pytest.fail(
            f"the double {image} this qcow2 was filled with is gone from Docker; build-qcow2 again (a rebuild "
            "removes the images it superseded unless a qcow2 under the build folder's images/ names them)"
        )
    container = client.containers.run(
        image, ["sleep", "infinity"], entrypoint=[], detach=True, labels={LABEL: "double-files"}
    )
    try:
        yield container
    finally:
        container.remove(force=True)


def _output(container: Any, argv: list[str]) -> str:
    result = container.exec_run(argv)
    assert result.exit_code == 0, f"{' '.join(argv)} failed in the double: {result.output.decode()[-2000:]}"
    return str(result.output.decode())


def _difference(double: dict[str, str], vm: dict[str, str]) -> list[str]:
    names = sorted(set(double) | set(vm))
    return [
        f"{name}: double {double.get(name, '-')}, VM {vm.get(name, '-')}"
        for name in names
        if double.get(name) != vm.get(name)
    ]


def test_debian_packages_are_the_doubles(double: Any, facts: Facts) -> None:
    in_double = parse_dpkg(_output(double, DPKG_QUERY))
    assert in_double, "the double's package list is empty: dpkg-query printed nothing usable"
    differences = _difference(in_double, facts["debian_packages"])
    assert not differences, "the VM's Debian packages differ from its double's:\n" + "\n".join(differences)


@pytest.mark.parametrize("prefix", [VENV, DATA_ANALYSIS])
def test_python_environments_are_the_doubles(double: Any, facts: Facts, prefix: str) -> None:
    listing = json.loads(_output(double, [f"{prefix}/bin/python", *PIP_LIST]))
    in_double = {normalise(item["name"]): item["version"] for item in listing}
    differences = _difference(in_double, packages(facts, prefix))
    assert not differences, f"{prefix} in the VM differs from the double's:\n" + "\n".join(differences)
