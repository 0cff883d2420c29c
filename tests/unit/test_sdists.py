"""Sdists are fetched as files, never prepared by pip on the host: the index names the file, the lock's sha256
must match before the file keeps its name, and no code of the package runs. The build sandbox's output is taken
only as the pins' wheels, and the sandbox has no capabilities. Children get no OS_* credentials."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from visa_build import sdists
from visa_build.errors import VisaBuildError
from visa_build.ports import free_port
from visa_build.process import Result, run
from visa_build.wheelhouse_server import serving


def hostile_sdist(marker: Path) -> bytes:
    """probe-1.0.tar.gz whose setup.py writes `marker`: anything that prepares it on the host leaves the file."""
    setup = (
        f"open({str(marker)!r}, 'w').write('ran')\nfrom setuptools import setup\nsetup(name='probe', version='1.0')\n"
    )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in (("probe-1.0/setup.py", setup), ("probe-1.0/PKG-INFO", "Name: probe\nVersion: 1.0\n")):
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            archive.addfile(info, io.BytesIO(text.encode()))
    return buffer.getvalue()


def index_with(root: Path, files: dict[str, bytes], listed: dict[str, str] | None = None) -> None:
    """A simple index under root/simple/probe/ (PEP 691 JSON) listing `files` (by their sha256, or `listed`)."""
    page = root / "simple" / "probe"
    page.mkdir(parents=True)
    entries = []
    for name, data in files.items():
        (root / "files").mkdir(exist_ok=True)
        (root / "files" / name).write_bytes(data)
        digest = (listed or {}).get(name, hashlib.sha256(data).hexdigest())
        entries.append({"filename": name, "url": f"../../files/{name}", "hashes": {"sha256": digest}})
    (page / "index.html").write_text(json.dumps({"meta": {"api-version": "1.0"}, "name": "probe", "files": entries}))


def test_an_sdist_is_fetched_by_hash_and_none_of_its_code_runs(tmp_path: Path) -> None:
    marker = tmp_path / "setup-py-ran"
    sdist = hostile_sdist(marker)
    index_with(tmp_path / "index", {"probe-1.0.tar.gz": sdist, "probe-0.9.tar.gz": b"older"})
    lock = f"probe==1.0 \\\n    --hash=sha256:{hashlib.sha256(sdist).hexdigest()}\n"
    with serving(tmp_path / "index", port=free_port()) as url:
        fetched = sdists.fetch_sdists(lock, tmp_path / "sources", index=f"{url}simple")
    assert [p.name for p in fetched] == ["probe-1.0.tar.gz"]
    assert fetched[0].read_bytes() == sdist, "the fetched file is not the locked sdist"
    assert not marker.exists(), "the sdist's setup.py ran on the host"


def test_a_file_whose_sha256_the_lock_does_not_allow_is_refused_and_not_kept(tmp_path: Path) -> None:
    locked = hostile_sdist(tmp_path / "marker")
    # The index claims the locked digest but serves other bytes (a tampered mirror).
    index_with(
        tmp_path / "index",
        {"probe-1.0.tar.gz": b"tampered"},
        listed={"probe-1.0.tar.gz": hashlib.sha256(locked).hexdigest()},
    )
    lock = f"probe==1.0 --hash=sha256:{hashlib.sha256(locked).hexdigest()}\n"
    with serving(tmp_path / "index", port=free_port()) as url, pytest.raises(VisaBuildError, match="does not allow"):
        sdists.fetch_sdists(lock, tmp_path / "sources", index=f"{url}simple")
    assert list((tmp_path / "sources").iterdir()) == [], "a refused download left a file behind"


@pytest.mark.parametrize("filename", ["../probe-1.0.tar.gz", "probe-1.0.whl", "probe-1.0.tar.gz/x"])
def test_a_listed_name_that_is_not_a_plain_source_archive_is_not_fetched(tmp_path: Path, filename: str) -> None:
    data = b"x"
    page = tmp_path / "index" / "simple" / "probe"
    page.mkdir(parents=True)
    entry = {"filename": filename, "url": "../../f", "hashes": {"sha256": hashlib.sha256(data).hexdigest()}}
    (page / "index.html").write_text(json.dumps({"files": [entry]}))
    lock = f"probe==1.0 --hash=sha256:{hashlib.sha256(data).hexdigest()}\n"
    with serving(tmp_path / "index", port=free_port()) as url, pytest.raises(VisaBuildError, match="lists no source"):
        sdists.fetch_sdists(lock, tmp_path / "sources", index=f"{url}simple")


def test_the_sdist_build_runs_pip_on_the_host_for_wheels_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """build_wheels asks the host's pip for the build tools' wheels only; sdists come from fetch_sdists."""
    calls: list[list[str]] = []

    def runner(argv: list[str], **_: Any) -> Result:
        calls.append(argv)
        return Result(argv, 0, [])

    fetched: list[str] = []

    def fetch(requirements: str, dest: Path) -> list[Path]:
        fetched.append(requirements)
        return []

    monkeypatch.setattr(sdists, "fetch_sdists", fetch)
    monkeypatch.setattr(sdists, "_run_build", lambda image, work, out: (out / GOOD).write_bytes(wheel_bytes()))
    tools = tmp_path / "tools.lock"
    tools.write_text("")
    sdists.build_wheels(
        "probe==1.0 --hash=sha256:" + "0" * 64 + "\n", tools, tmp_path, python="3.11.2", image="base", runner=runner
    )
    assert fetched, "the sdists were not fetched as files"
    pip_calls = [argv for argv in calls if "pip" in argv]
    assert pip_calls and all("--only-binary=:all:" in argv for argv in pip_calls), f"pip on the host: {pip_calls}"


def test_children_get_no_openstack_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OS_PASSWORD", "s3cr3t")
    monkeypatch.setenv("OS_CLOUD", "production")
    seen = run(["env"], timeout=30).lines
    assert not [line for line in seen if line.startswith("OS_")], f"a child saw credentials: {seen}"
    assert os.environ["OS_CLOUD"] == "production", "visa-build's own environment must keep them (Glance is in-process)"


def wheel_bytes(dist_info: str = "probe-1.0") -> bytes:
    """A wheel whose metadata folder is `dist_info`.dist-info (with its RECORD)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("probe/__init__.py", "")
        archive.writestr(f"{dist_info}.dist-info/RECORD", "probe/__init__.py,,\n")
    return buffer.getvalue()


GOOD = "probe-1.0-py3-none-any.whl"


def plant_link(out: Path, host_file: Path) -> None:
    host_file.write_bytes(wheel_bytes())  # a host file, valid as a wheel: the link is refused all the same
    (out / GOOD).symlink_to(host_file)


PLANTED: dict[str, Callable[[Path, Path], object]] = {
    "a symlink": plant_link,
    "a FIFO": lambda out, _: os.mkfifo(out / "probe-1.1-py3-none-any.whl"),
    "a file that is not a zip": lambda out, _: (out / "probe-1.1-py3-none-any.whl").write_bytes(b"#!/bin/sh\n"),
    "a zip of another package": lambda out, _: (out / "other-1.0-py3-none-any.whl").write_bytes(
        wheel_bytes("other-1.0")
    ),
    "a zip named as the pin, of another package": lambda out, _: (out / "probe-1.0-py2-none-any.whl").write_bytes(
        wheel_bytes("other-1.0")
    ),
    "a folder": lambda out, _: (out / "probe-1.0-py2-none-any.whl").mkdir(),
}


def build_with_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plant: Callable[[Path], object]) -> list[str]:
    """build_wheels of probe==1.0, whose sandbox writes what `plant` puts into its output folder."""
    monkeypatch.setattr(sdists, "fetch_sdists", lambda requirements, dest: [])
    monkeypatch.setattr(sdists, "_run_build", lambda image, work, out: plant(out))
    monkeypatch.setattr(os, "chown", lambda *_: None)  # the unit tests do not run as root
    tmp_path.mkdir(exist_ok=True)
    tools = tmp_path / "tools.lock"
    tools.write_text("")
    (tmp_path / "house").mkdir()
    return sdists.build_wheels(
        "probe==1.0 --hash=sha256:" + "0" * 64 + "\n",
        tools,
        tmp_path / "house",
        python="3.11.2",
        image="base",
        runner=lambda argv, **_: Result(argv, 0, []),
    )


@pytest.mark.parametrize("what", PLANTED)
def test_a_sandbox_output_that_is_not_the_pins_wheel_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, what: str
) -> None:
    def plant(out: Path) -> None:
        if what != "a symlink":
            (out / GOOD).write_bytes(wheel_bytes())
        PLANTED[what](out, tmp_path / "host-file")

    with pytest.raises(VisaBuildError, match="the sdist build wrote .* none of its output is used"):
        build_with_output(tmp_path, monkeypatch, plant)
    assert list((tmp_path / "house").iterdir()) == [], "a refused build's output reached the wheelhouse"


def test_the_pins_wheel_is_taken_and_a_missing_one_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = build_with_output(tmp_path, monkeypatch, lambda out: (out / GOOD).write_bytes(wheel_bytes()))
    assert built == [GOOD] and (tmp_path / "house" / GOOD).read_bytes() == wheel_bytes()
    with pytest.raises(VisaBuildError, match="made no wheel of probe==1.0"):
        build_with_output(tmp_path / "again", monkeypatch, lambda out: None)


class FakeContainer:
    def start(self) -> None: ...

    def wait(self, timeout: float) -> dict[str, int]:
        return {"StatusCode": 0}

    def logs(self) -> bytes:
        return b""

    def remove(self, force: bool) -> None: ...


def test_the_build_container_has_no_capabilities_and_bounded_resources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: dict[str, Any] = {}

    def create(image: str, command: list[str], **options: Any) -> FakeContainer:
        created.update(options)
        return FakeContainer()

    client = SimpleNamespace(containers=SimpleNamespace(create=create))
    monkeypatch.setattr(sdists, "docker_client", lambda: client)
    sdists._run_build("base", tmp_path, tmp_path / "out")
    assert created["cap_drop"] == ["ALL"] and created["security_opt"] == ["no-new-privileges"], created
    assert created["pids_limit"] > 0 and created["mem_limit"], created
    assert created["network_disabled"] and created["read_only"] and created["user"] == "65534:65534", created
