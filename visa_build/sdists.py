"""Locked packages published only as source (sdists), built into the wheels the image installs. Nothing of them runs
on the host or as root: each sdist is fetched as a plain file (its URL from the package index's simple API, its
sha256 from the lock, checked before the file is kept: pip download would run its build hooks to read metadata),
the build tools' wheels by hash, and the build runs in a throw-away container of the image's base, as nobody,
with no network and a read-only root filesystem. The wheels therefore match the image's own Python and glibc."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import stat
import zipfile
from pathlib import Path
from urllib.parse import urljoin

import docker.errors
import requests
from packaging.utils import InvalidWheelFilename, canonicalize_version, parse_wheel_filename

from . import interrupts, pip_download, progress, runs
from .docker_engine import LABEL, RUN_LABEL, docker_client
from .errors import VisaBuildError
from .image_spec import normalise
from .process import Runner

NOBODY = 65534
#: The package index sdists are fetched from (its PEP 691 JSON simple API).
SIMPLE_INDEX = "https://pypi.org/simple"
#: What an sdist's file name may be: a plain name (no folder, no link), a source archive.
_SDIST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*\.(tar\.gz|zip)")
_PIN_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")
#: A sha256 a hash-pinned lock allows, as its `--hash` option names it.
LOCK_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")
TIMEOUT = 60
#: Seconds the build container may take.
BUILD_TIMEOUT = 1800
#: What the build container may use: no capability, no privilege gained through setuid, bounded processes and memory.
SANDBOX = {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges"], "pids_limit": 512, "mem_limit": "4g"}
#: Run in the container: a venv with the locked build tools (pip from its own wheel), then the wheels.
BUILD_SCRIPT = """set -eu
python3 -m venv --without-pip /tmp/tools
for pip_wheel in /build/tools/pip-*.whl; do :; done
/tmp/tools/bin/python "$pip_wheel/pip" install --quiet --no-index --find-links /build/tools --no-deps \
  --require-hashes --disable-pip-version-check -r /build/tools.lock
/tmp/tools/bin/python -m pip wheel --no-index --find-links /build/sources --no-deps --no-build-isolation \
  --require-hashes --disable-pip-version-check --progress-bar off -r /build/sources.txt -w /out
"""


def tools_download_argv(requirements: Path, dest: Path, *, python: str) -> list[str]:
    """pip download of the build tools' wheels by hash, without resolving (a wheel runs no code to be read)."""
    return pip_download.wheels_argv(requirements, dest, "--implementation", "cp", "--python-version", python)


def pinned_hashes(requirements: str) -> dict[tuple[str, str], set[str]]:
    """{(normalised name, version): the sha256 digests the lock allows} of hash-pinned requirement blocks."""
    pins: dict[tuple[str, str], set[str]] = {}
    current: tuple[str, str] | None = None
    for line in requirements.splitlines():
        if match := _PIN_LINE.match(line):
            current = (normalise(match.group(1)), match.group(2))
            pins[current] = set()
        if current is not None:
            pins[current] |= set(LOCK_HASH.findall(line))
    return pins


def fetch_sdists(
    requirements: str, dest: Path, *, index: str = SIMPLE_INDEX, http: requests.Session | None = None
) -> list[Path]:
    """Fetch the sdist of each pin of `requirements` into `dest` as a file: the index names it, its sha256 must be
    one the lock lists, and only a verified file keeps its name. No code of the package runs."""
    session = http or requests.Session()
    dest.mkdir(parents=True, exist_ok=True)
    fetched = []
    for (name, version), allowed in pinned_hashes(requirements).items():
        if not allowed:
            raise VisaBuildError(
                f"{name}=={version} has no --hash in the lock: its source is not fetched",
                tip="lock the spec again: ./visa-build lock-files --image <spec>",
            )
        url, filename = _sdist_url(session, index, name, version, allowed)
        fetched.append(_download_checked(session, url, dest / filename, allowed))
    return fetched


def _sdist_url(session: requests.Session, index: str, name: str, version: str, allowed: set[str]) -> tuple[str, str]:
    """The URL and file name of the sdist of name==version whose sha256 the lock allows, as the index lists it."""
    page = f"{index.rstrip('/')}/{name}/"
    try:
        response = session.get(page, headers={"Accept": "application/vnd.pypi.simple.v1+json"}, timeout=TIMEOUT)
        response.raise_for_status()
        files = response.json()["files"]
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
        raise VisaBuildError(
            f"the package index did not list {name} at {page}: {exc}",
            tip="check the network, or that the index serves PEP 691 JSON",
        ) from None
    for entry in files:
        filename, digest = entry.get("filename", ""), entry.get("hashes", {}).get("sha256", "")
        if digest in allowed and _SDIST_NAME.fullmatch(filename) and f"-{version}." in filename:
            return urljoin(page, entry["url"]), filename
    raise VisaBuildError(
        f"{page} lists no source archive of {name} {version} with a sha256 the lock allows",
        tip="the lock and the index disagree: lock the spec again, or check the index",
    )


def _download_checked(session: requests.Session, url: str, target: Path, allowed: set[str]) -> Path:
    """`url` streamed to a partial file beside `target`, renamed to `target` only when its sha256 is allowed."""
    partial = target.with_name(f".{target.name}.partial")
    digest = hashlib.sha256()
    try:
        with session.get(url, stream=True, timeout=TIMEOUT) as response, partial.open("xb") as out:
            response.raise_for_status()
            for chunk in response.iter_content(1 << 16):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() not in allowed:
            raise VisaBuildError(
                f"{url} has sha256 {digest.hexdigest()}, which the lock does not allow: not used",
                tip="the index served other content than was locked; check the index or lock again",
            )
        partial.rename(target)
    except requests.RequestException as exc:
        raise VisaBuildError(f"downloading {url} failed: {exc}", tip="check the network and try again") from None
    finally:
        partial.unlink(missing_ok=True)
    return target


def build_wheels(
    requirements: str, tools_lock: Path, dest: Path, *, python: str, image: str, runner: Runner
) -> list[str]:
    """Build the sdists of `requirements` (hash-pinned lock blocks) into wheels in `dest`, in a container of
    `image` whose python3 is `python`; returns the wheels' names."""
    work = runs.scratch_dir(dest.parent, ".sdists-")
    work.chmod(0o755)  # read by nobody in the container (public sources only)
    try:
        (work / "sources.txt").write_text(requirements)
        shutil.copyfile(tools_lock, work / "tools.lock")
        fetch_sdists(requirements, work / "sources")
        runner(
            tools_download_argv(work / "tools.lock", work / "tools", python=python),
            timeout=600,
            on_line=progress.line,
        )
        out = work / "out"
        out.mkdir()
        os.chown(out, NOBODY, NOBODY)
        _run_build(image, work, out)
        wheels = checked_wheels(out, set(pinned_hashes(requirements)))
        for wheel in wheels:
            shutil.move(wheel, dest / wheel.name)
        return [wheel.name for wheel in wheels]
    finally:
        with interrupts.shielded():
            shutil.rmtree(work, ignore_errors=True)


def checked_wheels(out: Path, expected: set[tuple[str, str]]) -> list[Path]:
    """The wheels the sandbox wrote to `out`, one per `expected` (normalised name, version). Its output is not
    trusted by name: each entry must be a regular file (no link, no FIFO), a zip whose file name and
    `*.dist-info/RECORD` name an expected pin; VisaBuildError for anything else, or a pin without a wheel."""
    wanted = {_pin(name, version) for name, version in expected}
    wheels, built = [], set()
    for path in sorted(out.iterdir()):
        pin, problem = _wheel_pin(path)
        if not problem and pin not in wanted:
            problem = f"a wheel of {pin[0]} {pin[1]}, which was not to be built"
        if problem:
            raise VisaBuildError(
                f"the sdist build wrote {path.name}, which is {problem}: none of its output is used",
                tip="a package's build wrote something other than its wheel; do not build it from source",
            )
        wheels.append(path)
        built.add(pin)
    if missing := sorted(f"{name}=={version}" for name, version in wanted - built):
        raise VisaBuildError(
            f"the sdist build made no wheel of {', '.join(missing)}",
            tip="see the build's output above; pin a version with wheels",
        )
    return wheels


def _pin(name: str, version: str) -> tuple[str, str]:
    return normalise(name), canonicalize_version(version, strip_trailing_zero=False)


def _wheel_pin(path: Path) -> tuple[tuple[str, str], str]:
    """(the pin, "") of the wheel at `path`: its file name and its `*.dist-info/RECORD` agree; else (_, why not)."""
    if not stat.S_ISREG(path.lstat().st_mode):
        return ("", ""), "not a regular file"
    try:
        name, version, _, _ = parse_wheel_filename(path.name)
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
    except (InvalidWheelFilename, zipfile.BadZipFile):
        return ("", ""), "not a wheel"
    pin = _pin(name, str(version))
    for member in members:
        stem = member.removesuffix(".dist-info/RECORD")
        record_name, _, record_version = stem.rpartition("-")
        if stem != member and "/" not in stem and _pin(record_name, record_version) == pin:
            return pin, ""
    return pin, f"not a wheel of {pin[0]} {pin[1]} (no {pin[0]}-{pin[1]}.dist-info/RECORD)"


def _run_build(image: str, work: Path, out: Path) -> None:
    client = docker_client()
    container = client.containers.create(
        image,
        ["sh", "-c", BUILD_SCRIPT],
        user=f"{NOBODY}:{NOBODY}",
        network_disabled=True,
        read_only=True,
        environment={"HOME": "/tmp", "PIP_NO_CACHE_DIR": "1"},
        tmpfs={"/tmp": "exec"},
        volumes={str(work): {"bind": "/build", "mode": "ro"}, str(out): {"bind": "/out", "mode": "rw"}},
        labels={LABEL: "sdist-build", RUN_LABEL: runs.RUN_ID},
        **SANDBOX,
    )
    try:
        container.start()
        try:
            code = container.wait(timeout=BUILD_TIMEOUT)["StatusCode"]
            outcome = "" if code == 0 else f"exit {code}"
        except requests.RequestException:
            outcome = f"not done after {BUILD_TIMEOUT} s"
        lines = container.logs().decode(errors="replace").splitlines()
        for line in lines:
            progress.line(line)
        if outcome:
            tail = "\n".join(f"    {line}" for line in lines[-20:])
            raise VisaBuildError(
                f"building wheels from source in a container of {image} failed ({outcome}):\n{tail}",
                tip="only pure-Python sdists build there (no compiler, no network); pin a version with wheels",
            )
    finally:
        with interrupts.shielded(), contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
