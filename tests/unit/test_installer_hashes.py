"""The installers take only the wheels the wheelhouse lists, by hash, and the pip-index installer only what the
lock lists, by hash, wheels only."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

from tests.helpers import REPO
from visa_build.ports import free_port
from visa_build.process import Result, run
from visa_build.wheelhouse import write_manifest
from visa_build.wheelhouse_server import serving


def hashed_pins(wheelhouse: Path, pins: str, tmp_path: Path) -> Result:
    """provision/lib.sh's hashed_pins for `pins`, with `wheelhouse` served over HTTP as in a build."""
    (tmp_path / "pins.txt").write_text(pins)
    script = f'source provision/lib.sh && fetch_sums "{tmp_path}/sums" && hashed_pins "{tmp_path}/sums" "$1"'
    with serving(wheelhouse, port=free_port()) as url:
        return run(
            ["bash", "-c", script, "hashed_pins", str(tmp_path / "pins.txt")],
            timeout=60,
            check=False,
            cwd=str(REPO),
            env={"VISA_WHEELHOUSE_URL": url},
        )


def test_the_installers_take_hashed_wheels_only(tmp_path: Path) -> None:
    house = tmp_path / "house"
    house.mkdir()
    for name in ("Typing_Extensions-4.1-py3-none-any.whl", "numpy-2.4.6-cp311-cp311-manylinux_2_17_x86_64.whl"):
        (house / name).write_bytes(name.encode())
    write_manifest(house)
    (house / "evil-1.0-py3-none-any.whl").write_bytes(b"planted")  # not in SHA256SUMS
    result = hashed_pins(house, "numpy==2.4.6\ntyping-extensions==4.1\n", tmp_path)
    assert result.returncode == 0, result.output
    digest = hashlib.sha256(b"numpy-2.4.6-cp311-cp311-manylinux_2_17_x86_64.whl").hexdigest()
    assert result.lines[0] == f"numpy==2.4.6 --hash=sha256:{digest}", result.lines
    assert result.lines[1].startswith("typing-extensions==4.1 --hash=sha256:") and len(result.lines) == 2
    lib = (REPO / "provision" / "lib.sh").read_text()
    assert lib.count("--require-hashes") >= 2 and "--no-build" in lib and "--only-binary=:all:" in lib


def test_a_pin_without_a_listed_wheel_stops_the_install(tmp_path: Path) -> None:
    house = tmp_path / "house"
    house.mkdir()
    (house / "numpy-2.4.6-cp311-cp311-manylinux_2_17_x86_64.whl").write_bytes(b"numpy")
    write_manifest(house)
    (house / "evil-1.0-py3-none-any.whl").write_bytes(b"planted")
    result = hashed_pins(house, "evil==1.0\n", tmp_path)
    assert result.returncode != 0 and "evil==1.0 has no wheel in the wheelhouse" in result.output, result.output


def wheel_bytes(name: str, version: str) -> bytes:
    """A minimal pure-Python wheel of `name`."""
    buffer = io.BytesIO()
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(buffer, "w") as wheel:
        wheel.writestr(f"{name}/__init__.py", f"VERSION = {version!r}\n")
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        wheel.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr(f"{info}/RECORD", f"{name}/__init__.py,,\n{info}/METADATA,,\n{info}/WHEEL,,\n{info}/RECORD,,\n")
    return buffer.getvalue()


def pip_index_install(tmp_path: Path, files: dict[str, bytes], lock: str) -> Result:
    """lib.sh's install_locked with the pip-index installer, from a simple index holding `files`."""
    index = tmp_path / "index"
    for filename, data in files.items():
        project = index / "simple" / filename.split("-")[0]
        project.mkdir(parents=True, exist_ok=True)
        (project / filename).write_bytes(data)
        (project / "index.html").write_text(f'<a href="{filename}">{filename}</a>\n')
    (tmp_path / "pins.txt").write_text("")
    (tmp_path / "pins.lock").write_text(lock)
    script = f'source provision/lib.sh && install_locked "{tmp_path}/venv" "{tmp_path}/pins.txt" "$1"'
    with serving(index, port=free_port()) as url:
        env = {"VISA_INSTALLER": "pip-index", "VISA_INDEX_URL": f"{url}simple/"}
        return run(
            ["bash", "-c", script, "install", str(tmp_path / "pins.lock")],
            timeout=300,
            check=False,
            cwd=str(REPO),
            env=env,
        )


def test_pip_index_installs_what_the_lock_hashes(tmp_path: Path) -> None:
    wheel = wheel_bytes("probe", "1.0")
    lock = f"probe==1.0 \\\n    --hash=sha256:{hashlib.sha256(wheel).hexdigest()}\n"
    result = pip_index_install(tmp_path, {"probe-1.0-py3-none-any.whl": wheel}, lock)
    assert result.returncode == 0, result.output
    assert (tmp_path / "venv/bin/python").exists()


def test_pip_index_refuses_a_file_the_lock_does_not_hash(tmp_path: Path) -> None:
    lock = f"probe==1.0 \\\n    --hash=sha256:{hashlib.sha256(b'what was locked').hexdigest()}\n"
    result = pip_index_install(tmp_path, {"probe-1.0-py3-none-any.whl": wheel_bytes("probe", "1.0")}, lock)
    assert result.returncode != 0 and "DO NOT MATCH THE HASHES" in result.output, result.output


def test_pip_index_builds_no_sdist_the_spec_does_not_allow(tmp_path: Path) -> None:
    sdist = b"not even opened"
    lock = f"probe==1.0 \\\n    --hash=sha256:{hashlib.sha256(sdist).hexdigest()}\n"
    result = pip_index_install(tmp_path, {"probe-1.0.tar.gz": sdist}, lock)
    assert result.returncode != 0 and "No matching distribution found for probe==1.0" in result.output, result.output
