"""Sdists are built in a throw-away container as nobody, with no network and a read-only root filesystem: a probe
sdist whose build records what it could do, built with the real build-tool lock in the image the suite tests
(a Debian with the image's python3, like the base the wheelhouse uses)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.helpers import REPO
from visa_build import process, sdists
from visa_build.image_spec import load_image_spec

#: The probe's build backend (setuptools) runs this: what the build could do ends up in the wheel.
SETUP = """
import json, os, socket
from setuptools import setup
found = {"uid": os.getuid(), "gid": os.getgid()}
try:
    socket.create_connection(("pypi.org", 443), timeout=5).close()
    found["network"] = "reached pypi.org"
except OSError as exc:
    found["network"] = type(exc).__name__
try:
    open("/usr/visa-probe", "w").close()
    found["root_filesystem"] = "writable"
except OSError:
    found["root_filesystem"] = "read-only"
os.makedirs("probe", exist_ok=True)
open("probe/__init__.py", "w").write("FOUND = " + repr(json.dumps(found)) + "\\n")
setup(name="probe", version="1.0", packages=["probe"])
"""


def probe_sdist(folder: Path) -> Path:
    """probe-1.0.tar.gz with SETUP as its setup.py."""
    files = {"probe-1.0/setup.py": SETUP, "probe-1.0/PKG-INFO": "Metadata-Version: 2.1\nName: probe\nVersion: 1.0\n"}
    path = folder / "probe-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_sdists_build_as_nobody_offline_on_a_read_only_root(pytestconfig: pytest.Config, tmp_path: Path) -> None:
    image = pytestconfig.getoption("--visa-image")
    if not image:
        pytest.skip("needs a Debian image with python3: pass --visa-image (invoke test-container does)")
    spec = load_image_spec(Path(pytestconfig.getoption("--image-spec")))
    tools_lock = load_image_spec(REPO / "images/visa-jupyter").from_source.tools_lock
    assert tools_lock is not None
    work = tmp_path / "work"
    (work / "sources").mkdir(parents=True)
    work.chmod(0o755)
    sdist = probe_sdist(work / "sources")
    (work / "sources.txt").write_text(f"probe==1.0 --hash=sha256:{hashlib.sha256(sdist.read_bytes()).hexdigest()}\n")
    (work / "tools.lock").write_text(tools_lock.read_text())
    process.run(sdists.tools_download_argv(work / "tools.lock", work / "tools", python=spec.python), timeout=600)
    out = work / "out"
    out.mkdir()
    out.chmod(0o777)
    sdists._run_build(image, work, out)
    wheels = list(out.glob("probe-1.0-*.whl"))
    assert wheels, f"no probe wheel was built: {list(out.iterdir())}"
    with zipfile.ZipFile(wheels[0]) as wheel:
        found = json.loads(wheel.read("probe/__init__.py").decode().split("= ", 1)[1].strip().strip("'"))
    assert (found["uid"], found["gid"]) == (sdists.NOBODY, sdists.NOBODY), f"built as {found}"
    assert found["network"] != "reached pypi.org", "the build reached the network"
    assert found["root_filesystem"] == "read-only", "the build could write to the container's /usr"
