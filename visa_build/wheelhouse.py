"""The host-side wheelhouse: every locked package as a wheel for the image's interpreter, cached by content.

Wheels are downloaded once, hash-checked against the lock; a package published only as an sdist is built into a
wheel in a throw-away container (sdists.py) when the spec allows it, never on the host or in the image. Bytecode
is compiled into the wheels here too, when the host's Python can (see bytecode.py). Each cache entry carries a
SHA256SUMS manifest that is verified before use; a damaged entry is rebuilt. Images then install with no index
and no TLS.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from . import pip_download, progress, runs, sdists
from .artefact import key_of, sha256_of
from .bytecode import add_bytecode_to_all, host_can_compile_for
from .errors import CommandError, VisaBuildError
from .image_spec import ImageSpec, normalise
from .process import Runner, run

#: The uv release the image installs with; the same as the host's (pyproject.toml).
UV_VERSION = "0.13.8"
#: The uv wheel the guest installs with, pinned by the sha256 PyPI publishes for it (checked at download).
UV_WHEEL_SHA256 = "e18a57b8b352eb7c8feb317b9f6f533c8f0ad9673fd6cf34bbe3cf1a9f6a8984"
_MISSING = re.compile(r"No matching distribution found for ([A-Za-z0-9._-]+)==")


def platform_tags(glibc: str) -> list[str]:
    """Every manylinux tag a system with `glibc` (e.g. '2.36') accepts, newest first."""
    minor = int(glibc.split(".")[1])
    tags = [f"manylinux_2_{m}_x86_64" for m in range(minor, 4, -1)]
    return [*tags, "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]


def download_argv(requirements: Path, dest: Path, *, python: str, glibc: str) -> list[str]:
    """pip download of binary wheels for CPython `python` on `glibc`, hashes required, no resolving."""
    platforms = [arg for tag in platform_tags(glibc) for arg in ("--platform", tag)]
    return pip_download.wheels_argv(
        requirements, dest, "--implementation", "cp", "--python-version", python, *platforms
    )


def lock_entries(text: str) -> dict[str, str]:
    """Split a hash-pinned lock into its requirement blocks (pin line plus its --hash lines), by name."""
    entries: dict[str, str] = {}
    current = ""
    for line in text.splitlines():
        if re.match(r"^[A-Za-z0-9]", line):
            current = normalise(line.split("==", 1)[0])
            entries[current] = line + "\n"
        elif current and line.startswith(" ") and not line.strip().startswith("#"):
            entries[current] += line + "\n"
    return entries


def cache_key(spec: ImageSpec) -> str:
    """Hash of everything the wheelhouse depends on."""
    tools = spec.from_source.tools_lock.read_text() if spec.from_source.tools_lock else ""
    return key_of(
        spec.python,
        spec.distro.glibc,
        UV_VERSION,
        bytecode_tag(spec),
        "download per lock",
        spec.jupyterlab.lock.read_text(),
        spec.data_analysis.lock.read_text(),
        "sdists built offline as nobody",
        repr(spec.from_source.packages),
        tools,
    )


def carries_bytecode(spec: ImageSpec) -> bool:
    """Whether the wheelhouse of `spec` has bytecode compiled into its wheels (the installer then compiles none)."""
    return host_can_compile_for(spec.python)


def bytecode_tag(spec: ImageSpec) -> str:
    """What bytecode the wheels carry: compiled on the host for the image's Python, or none."""
    return f"checked-hash:{sys.implementation.cache_tag}" if carries_bytecode(spec) else "none"


def _regular(path: Path) -> bool:
    """Whether `path` is a regular file itself: not a link (its content is another file's), not a FIFO."""
    return path.is_file() and not path.is_symlink()


def write_manifest(directory: Path) -> None:
    """SHA256SUMS of the wheels in `directory` (regular files only: anything else is left unlisted, so damage)."""
    lines = [f"{sha256_of(path)}  {path.name}" for path in sorted(directory.glob("*.whl")) if _regular(path)]
    (directory / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def damaged_files(directory: Path) -> list[str]:
    """What is wrong with the wheelhouse in `directory`, [] when intact: a missing, empty or garbled SHA256SUMS,
    a listed wheel that is gone, changed or not a regular file, or a file SHA256SUMS does not list (nothing
    unlisted is served)."""
    manifest = directory / "SHA256SUMS"
    if not manifest.is_file():
        return ["SHA256SUMS (missing)"]
    listed, bad = {"SHA256SUMS"}, []
    for number, line in enumerate(manifest.read_text(errors="replace").splitlines(), start=1):
        digest, _, name = line.partition("  ")
        if not (re.fullmatch(r"[0-9a-f]{64}", digest) and name.endswith(".whl") and "/" not in name):
            bad.append(f"SHA256SUMS (line {number} is damaged)")
            continue
        listed.add(name)
        path = directory / name
        if not _regular(path) or sha256_of(path) != digest:
            bad.append(name)
    if listed == {"SHA256SUMS"} and not bad:
        bad.append("SHA256SUMS (lists no wheel)")
    bad += [f"{path.name} (not listed)" for path in sorted(directory.iterdir()) if path.name not in listed]
    return bad


def _download(
    spec: ImageSpec, dest: Path, store: Path, have: set[str], runner: Runner, source_image: Callable[[], str]
) -> None:
    """Download into `dest` each locked wheel that is not there yet (`have`: the sha256 of those that are), and
    build the sdist-only pins (or take their wheels from an earlier build of the same sources and tools)."""
    glibc = spec.distro.glibc
    from_source: list[dict[str, str]] = []  # each lock's sdist-only pins: {name: lock entry}
    requirements = _requirements_file(dest)
    # One download per lock: the two environments may pin a shared dependency (e.g. numpy) differently, so a
    # package without a wheel in one lock may have one at the other's pin.
    for lock in (spec.jupyterlab.lock, spec.data_analysis.lock):
        entries = {
            name: block
            for name, block in lock_entries(lock.read_text()).items()
            if not set(sdists.LOCK_HASH.findall(block)) & have
        }
        sdist_only: set[str] = set()
        while wheels := {name: block for name, block in entries.items() if name not in sdist_only}:
            requirements.write_text("".join(wheels.values()))
            try:
                runner(
                    download_argv(requirements, dest, python=spec.python, glibc=glibc),
                    timeout=1800,
                    on_line=progress.line,
                )
                break
            except CommandError as exc:
                missing = [normalise(m) for line in exc.tail for m in _MISSING.findall(line)]
                if not missing or missing[0] in sdist_only or missing[0] not in entries:
                    raise
                sdist_only.add(_allowed_from_source(spec, missing[0], glibc))
        from_source.append({name: entries[name] for name in sorted(sdist_only)})
    for requirements_text in _source_builds(from_source):
        _built_from_source(spec, requirements_text, dest, store, runner, source_image)
    if UV_WHEEL_SHA256 not in have:
        requirements.write_text(f"uv=={UV_VERSION} --hash=sha256:{UV_WHEEL_SHA256}\n")
        runner(
            pip_download.wheels_argv(requirements, dest, "--platform", "manylinux_2_17_x86_64"),
            timeout=600,
            on_line=progress.line,
        )


def _source_builds(per_lock: list[dict[str, str]]) -> list[str]:
    """The requirements of each build from source: one for both locks' sdist-only pins, or one per lock when they
    pin a package differently (one build cannot install two versions of a package)."""
    merged: dict[str, str] = {}
    for pins in per_lock:
        for name, entry in pins.items():
            if merged.setdefault(name, entry) != entry:
                return ["".join(pins.values()) for pins in per_lock if pins]
    return ["".join(merged.values())] if merged else []


def _built_from_source(
    spec: ImageSpec, requirements: str, dest: Path, store: Path, runner: Runner, source_image: Callable[[], str]
) -> None:
    """Wheels of the sdist-only `requirements` into `dest`: built in a container, or copied from an intact earlier
    build of the same sources, build tools, Python and glibc (kept in the store with its SHA256SUMS)."""
    assert spec.from_source.tools_lock is not None  # a spec that allows sources names their tools (config.py)
    tools = spec.from_source.tools_lock
    kept = store / "built" / key_of(requirements, tools.read_text(), spec.python, spec.distro.glibc)
    with runs.exclusive(store.parent / "locks" / f"built-{kept.name}.lock", f"the build of {kept.name}"):
        _build_or_take(spec, requirements, tools, dest, kept, runner, source_image)


def _build_or_take(
    spec: ImageSpec,
    requirements: str,
    tools: Path,
    dest: Path,
    kept: Path,
    runner: Runner,
    source_image: Callable[[], str],
) -> None:
    if kept.is_dir() and not damaged_files(kept):
        names = [wheel.name for wheel in sorted(kept.glob("*.whl"))]
        for name in names:
            shutil.copyfile(kept / name, dest / name)
        progress.note(f"built from source by an earlier build (same sources and tools): {', '.join(names)}")
        return
    built = sdists.build_wheels(requirements, tools, dest, python=spec.python, image=source_image(), runner=runner)
    progress.note(f"built from source in a container, as nobody, offline: {', '.join(built)}")
    shutil.rmtree(kept, ignore_errors=True)  # a damaged earlier build
    kept.parent.mkdir(parents=True, exist_ok=True)
    scratch = runs.scratch_dir(kept.parent, f".{kept.name}-")
    try:
        for name in built:
            shutil.copyfile(dest / name, scratch / name)
        write_manifest(scratch)
        scratch.rename(kept)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _requirements_file(dest: Path) -> Path:
    """Where the downloads of `dest` write their requirements (beside it: nothing unlisted goes into it)."""
    return dest.parent / f"{dest.name}.requirements.txt"


def _allowed_from_source(spec: ImageSpec, name: str, glibc: str) -> str:
    """`name`, when the spec allows building it from source; otherwise the error that stops the build."""
    if name not in spec.from_source.packages:
        raise VisaBuildError(
            f"{name} (locked) has no wheel for CPython {spec.python} on glibc {glibc}, and "
            f"{spec.directory / 'image.toml'} does not allow building it from source",
            tip="pin a version that has wheels, or add it to [wheels] build_from_source (built in a throw-away "
            "container of the Debian base, as nobody, offline)",
        )
    progress.note(f"{name} has no wheel for this platform: it will be built from source in a container")
    return name


def wheel_store(cache_root: Path) -> Path:
    """Every wheel downloaded before, as its index published it, in a folder named by its sha256 (beside it, in a
    folder named by the interpreter's cache tag, the same wheel with bytecode); and under `built/`, the wheels
    built from sdists. A new wheelhouse takes from it what its locks allow, so a pin change downloads, builds
    and compiles only the changed pins."""
    return cache_root / "wheels"


def _target_tags(spec: ImageSpec) -> set[Tag]:
    """The wheel tags the image's interpreter and glibc install."""
    version = tuple(int(part) for part in spec.python.split(".")[:2])
    platforms = platform_tags(spec.distro.glibc)
    return {
        *cpython_tags(version, platforms=platforms),
        *compatible_tags(version, f"cp{version[0]}{version[1]}", platforms),
    }


def _allowed_digests(spec: ImageSpec) -> set[str]:
    """The sha256 of every wheel the locks allow, and uv's."""
    locks = spec.jupyterlab.lock.read_text() + spec.data_analysis.lock.read_text()
    return set(sdists.LOCK_HASH.findall(locks)) | {UV_WHEEL_SHA256}


def _compiled_copy(store: Path, digest: str, name: str) -> Path:
    """Where the store keeps wheel `name` (published with sha256 `digest`) with this interpreter's bytecode."""
    return store / digest / sys.implementation.cache_tag / name


def _intact_copy(compiled: Path) -> bool:
    """Whether a compiled wheel in the store is a regular file with the sha256 its .sha256 beside it names."""
    sidecar = compiled.with_name(f"{compiled.name}.sha256")
    return (
        _regular(compiled) and _regular(sidecar) and sha256_of(compiled) == sidecar.read_text(errors="replace").strip()
    )


@dataclass
class _Taken:
    published: dict[str, str] = field(default_factory=dict)  # {name: published sha256} of each wheel taken
    compiled: set[str] = field(default_factory=set)  # the names of those taken with their bytecode in them


def _take_from_store(store: Path, spec: ImageSpec, dest: Path) -> _Taken:
    """Copy into `dest` each stored wheel whose sha256 the locks allow and whose tags the image installs, with its
    bytecode when the wheelhouse carries bytecode and the store has it intact (its .sha256 beside it)."""
    wanted, taken = _target_tags(spec), _Taken()
    for digest in sorted(_allowed_digests(spec)):
        for wheel in (store / digest).glob("*.whl"):
            try:
                tags = parse_wheel_filename(wheel.name)[3]
            except InvalidWheelFilename:
                continue
            if not (tags & wanted and _regular(wheel) and sha256_of(wheel) == digest):
                continue
            compiled = _compiled_copy(store, digest, wheel.name)
            if carries_bytecode(spec) and _intact_copy(compiled):
                shutil.copyfile(compiled, dest / wheel.name)
                taken.compiled.add(wheel.name)
            else:
                shutil.copyfile(wheel, dest / wheel.name)
            taken.published[wheel.name] = digest
    return taken


def _store_lock(store: Path) -> contextlib.AbstractContextManager[None]:
    """Held while a run takes from the store or adds to it (runs side by side share it)."""
    return runs.exclusive(store.parent / "locks" / "wheel-store.lock", "the wheel store")


def _store_file(kept: Path, content: Path | str) -> None:
    """Make `kept` in the store from `content` (a file to copy, or a text), atomically: a killed run leaves a
    partial file beside it, never a short one."""
    kept.parent.mkdir(parents=True, exist_ok=True)
    partial = kept.with_name(f"{kept.name}.{runs.RUN_ID}.partial")
    if isinstance(content, Path):
        shutil.copyfile(content, partial)
    else:
        partial.write_text(content)
    partial.replace(kept)


def _keep_in_store(store: Path, downloaded: Path, allowed: set[str], taken: _Taken) -> dict[str, str]:
    """Keep each wheel in `downloaded` that the locks allow (before bytecode goes into it) in the store, under its
    sha256; returns {name: sha256} of them and of those taken from the store without bytecode (already there,
    their sha256 checked when taken)."""
    digests = {name: digest for name, digest in taken.published.items() if name not in taken.compiled}
    for wheel in sorted(downloaded.glob("*.whl")):
        if wheel.name in taken.published:
            continue
        digest = sha256_of(wheel)
        if digest not in allowed:
            continue  # built from an sdist: kept with its build (_built_from_source)
        digests[wheel.name] = digest
        if not (store / digest / wheel.name).is_file():
            _store_file(store / digest / wheel.name, wheel)
    return digests


def _compile_and_keep(store: Path, wheels: list[Path], digests: dict[str, str]) -> int:
    """Compile bytecode into `wheels`, keeping each compiled published wheel (`digests`) in the store with its
    sha256 beside it; returns how many modules were compiled."""
    count = add_bytecode_to_all(wheels)
    with _store_lock(store):
        for wheel in wheels:
            if wheel.name in digests:
                compiled = _compiled_copy(store, digests[wheel.name], wheel.name)
                _store_file(compiled, wheel)
                _store_file(compiled.with_name(f"{compiled.name}.sha256"), sha256_of(wheel) + "\n")
    return count


def cache_path(cache_root: Path, spec: ImageSpec) -> Path:
    """Where the wheelhouse of `spec` is cached."""
    return cache_root / "wheelhouse" / cache_key(spec)


def ensure_wheelhouse(
    spec: ImageSpec, cache_root: Path, *, source_image: Callable[[], str], runner: Runner = run
) -> Path:
    """The verified wheelhouse directory for `spec`, downloading it when absent or damaged (one run at a time).
    `source_image` gives the Docker image sdists are built in (the image's Debian base), when there are any."""
    final = cache_path(cache_root, spec)
    with runs.exclusive(cache_root / "locks" / f"wheelhouse-{final.name}.lock", f"the wheelhouse {final.name}"):
        return _ensure_wheelhouse(spec, final, wheel_store(cache_root), runner, source_image)


def _ensure_wheelhouse(
    spec: ImageSpec, final: Path, store: Path, runner: Runner, source_image: Callable[[], str]
) -> Path:
    if final.is_dir():
        with progress.step(f"Verifying wheelhouse {final.name}"):
            bad = damaged_files(final)
        if not bad:
            progress.note(f"wheelhouse {final.name}: cached, intact ({len(list(final.glob('*.whl')))} wheels)")
            return final
        progress.note(f"wheelhouse {final.name} is damaged ({', '.join(bad[:3])}...): rebuilding it")
        shutil.rmtree(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    with progress.step(f"Downloading wheelhouse {final.name} for Python {spec.python}"):
        scratch = runs.scratch_dir(final.parent, f".{final.name}-")
        try:
            with _store_lock(store):
                taken = _take_from_store(store, spec, scratch)
            progress.line(
                f"{len(taken.published)} wheels taken from earlier downloads (sha256 checked against the locks), "
                f"{len(taken.compiled)} of them with their bytecode"
            )
            _download(spec, scratch, store, set(taken.published.values()), runner, source_image)
            with _store_lock(store):
                digests = _keep_in_store(store, scratch, _allowed_digests(spec), taken)
            if carries_bytecode(spec):
                fresh = [wheel for wheel in sorted(scratch.glob("*.whl")) if wheel.name not in taken.compiled]
                progress.line(f"compiling bytecode into {len(fresh)} wheels (the guest then compiles nothing)")
                progress.line(f"{_compile_and_keep(store, fresh, digests)} modules compiled")
            write_manifest(scratch)
            scratch.rename(final)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            _requirements_file(scratch).unlink(missing_ok=True)
    return final
