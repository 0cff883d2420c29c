"""Users add their own packages to "Data Analysis" as they could to the seed's conda environment: `%pip install`
in a notebook, or the environment's pip in a terminal (with or without --user), into the owner's ~/.local. The
image stays as it was built, and a user package that shadows a pinned one is named in the server's journal."""

from __future__ import annotations

import base64
import hashlib
import io
import time
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from tests.helpers import DATA_ANALYSIS, Facts, Instance, as_owner, execute
from visa_build.image_spec import ImageSpec

#: What under the image's folders had its content or status (mode, owner, links) changed since the marker file.
CHANGED_SINCE = "find /opt/visa /etc/visa -cnewer %s"
WRITE_FILE = "import base64, sys; open(sys.argv[1], 'wb').write(base64.b64decode(sys.argv[2]))"
PROBE = "visa-user-probe"
#: Pure-Python packages of the data-analysis lock that a kernel does not import when it starts.
SHADOW_CANDIDATES = ("cycler", "tzdata", "pyparsing")
#: How a user replaces one of the image's packages (docs/how-an-image-is-made.md, Users' own packages).
SHADOW_FLAGS = "--user --ignore-installed --no-deps"


def make_wheel(name: str, version: str, files: dict[str, str]) -> tuple[str, bytes]:
    """A pure-Python wheel (file name, bytes) made here, so no package index is needed."""
    dist = f"{name.replace('-', '_')}-{version}"
    members = {path: text.encode() for path, text in files.items()}
    members[f"{dist}.dist-info/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    members[f"{dist}.dist-info/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: visa-build-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = [
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip('=')},{len(data)}"
        for path, data in members.items()
    ]
    members[f"{dist}.dist-info/RECORD"] = ("\n".join([*record, f"{dist}.dist-info/RECORD,,"]) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, data in members.items():
            archive.writestr(path, data)
    return f"{dist}-py3-none-any.whl", buffer.getvalue()


@pytest.fixture
def image_unchanged(host: Any) -> Iterator[Callable[[], list[str]]]:
    """image_unchanged() -> what under /opt/visa and /etc/visa changed since the test began (should be nothing)."""
    with host.sudo():
        marker = host.check_output("mktemp /tmp/visa-marker-XXXXXX")
    time.sleep(1)  # ctimes are compared at the file system's resolution

    def changed() -> list[str]:
        with host.sudo():
            return str(host.check_output(CHANGED_SINCE, marker)).splitlines()

    yield changed
    with host.sudo():
        host.run("rm -f %s", marker)


@pytest.fixture
def put_wheel(host: Any, instance: Instance) -> Iterator[Any]:
    """put_wheel(name, version, files) -> its path on the target; the owner's user site is removed afterwards."""
    placed: list[str] = []

    def put(name: str, version: str, files: dict[str, str]) -> str:
        filename, data = make_wheel(name, version, files)
        path = f"/tmp/{filename}"
        with host.sudo():
            host.check_output("python3 -c %s %s %s", WRITE_FILE, path, base64.b64encode(data).decode())
            host.check_output("chmod 0644 %s", path)
        placed.append(path)
        return path

    yield put
    as_owner(host, instance, "rm -rf ~/.local/lib/python3.*/site-packages")  # the test user's own packages
    with host.sudo():
        host.run("rm -f %s", " ".join(placed))


def test_owner_can_write_nothing_of_the_image(facts: Facts) -> None:
    writable = facts["owner_writable"]  # find -writable, run as the owner
    assert writable == [], f"the owner can write these under /opt/visa or /etc/visa: {writable}"


def test_data_analysis_sees_no_system_packages(facts: Facts) -> None:
    leaked = [path for path in facts.environment(DATA_ANALYSIS)["sys_path"] if "dist-packages" in path]
    assert not leaked, f"the system's own packages are on the data-analysis sys.path: {leaked}"


def test_pip_install_in_a_notebook_imports_at_once_from_the_owners_home(
    instance: Instance, jupyter: str, browser: requests.Session, put_wheel: Any, image_unchanged: Any
) -> None:
    wheel = put_wheel(PROBE, "1.0", {"visa_user_probe.py": "WHERE = __file__\n"})
    output = execute(
        jupyter, browser, "python3", f"%pip install {wheel}\nimport visa_user_probe\nprint(visa_user_probe.WHERE)"
    )
    where = output.splitlines()[-1] if output else ""
    assert where.startswith(f"{instance.home}/.local/lib/"), f"%pip install did not land in ~/.local:\n{output}"
    changed = image_unchanged()
    assert changed == [], f"the owner's install changed the image: {changed}"


@pytest.mark.parametrize("flags", ["", "--user"], ids=["no flags", "--user"])
def test_pip_install_in_a_terminal_goes_to_the_owners_home(
    host: Any, instance: Instance, put_wheel: Any, image_unchanged: Any, flags: str
) -> None:
    wheel = put_wheel(PROBE, "1.0", {"visa_user_probe.py": "WHERE = __file__\n"})
    python = f"{DATA_ANALYSIS}/bin/python"
    installed = as_owner(host, instance, f"PIP_NO_INDEX=1 {python} -m pip install {flags} {wheel}")
    assert installed.rc == 0, f"pip install {flags} as the owner failed:\n{installed.stdout}\n{installed.stderr}"
    where = as_owner(host, instance, f"{python} -c 'import visa_user_probe; print(visa_user_probe.WHERE)'")
    assert where.stdout.startswith(f"{instance.home}/.local/lib/"), f"imported from: {where.stdout}{where.stderr}"
    changed = image_unchanged()
    assert changed == [], f"the owner's install changed the image: {changed}"


def test_user_package_shadowing_a_pinned_one_works_and_is_named(
    host: Any, instance: Instance, jupyter: str, browser: requests.Session, put_wheel: Any, spec: ImageSpec
) -> None:
    pinned = {pin.name: pin.version for pin in spec.data_analysis.pins}
    name = next((candidate for candidate in SHADOW_CANDIDATES if candidate in pinned), None)
    if name is None:
        pytest.skip(f"the data-analysis lock pins none of {SHADOW_CANDIDATES}")
    wheel = put_wheel(name, "99.0", {f"{name}/__init__.py": "__version__ = '99.0'\n"})
    # The way docs/how-an-image-is-made.md gives: pip refuses a user install of another version of a package in a
    # venv's own site-packages unless told to ignore the installed one.
    installed = as_owner(
        host, instance, f"PIP_NO_INDEX=1 {DATA_ANALYSIS}/bin/python -m pip install {SHADOW_FLAGS} {wheel}"
    )
    assert installed.rc == 0, f"pip install {SHADOW_FLAGS} as the owner failed:\n{installed.stdout}\n{installed.stderr}"
    since = int(time.time()) - 1
    version = execute(jupyter, browser, "python3", f"import {name}; print({name}.__version__)")
    assert version == "99.0", f"the kernel imports {name} {version}, not the user's 99.0 (which comes first)"
    with host.sudo():
        journal = host.check_output(f"journalctl -u visa-jupyter.service --since @{since} -o cat --no-pager")
    warnings = [line for line in journal.splitlines() if "visa-kernel: WARNING" in line]
    assert warnings, f"the kernel logged no warning about the shadowed {name}:\n{journal[-2000:]}"
    assert f"{name} 99.0 (image: {pinned[name]})" in warnings[-1], f"the warning does not name both: {warnings[-1]}"
