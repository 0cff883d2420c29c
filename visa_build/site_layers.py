"""A site's layers of the image (image.toml [layers]), checked as the spec is loaded: distribution packages, local
.debs named with their sha256, a folder of files copied into the image (the overlay) with their modes, scripts
run as root at build time in order, and boot hooks run once per instance id. Each becomes its own Docker layer
(render.site_layer_steps) before the distribution's updates layer."""

from __future__ import annotations

import hashlib
import re
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import ConfigError

KEYS = ("packages", "debs", "overlay", "overlay_modes", "scripts", "boot_hooks")
#: Debian policy's package names (5.6.1).
PACKAGE_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")
SHA256 = re.compile(r"[0-9a-f]{64}")
MODE = re.compile(r"0?[0-7]{3,4}")
#: What a script or hook is called in the image: its position and file name.
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class SiteDeb:
    path: Path
    sha256: str


@dataclass(frozen=True)
class SiteLayers:
    packages: tuple[str, ...] = ()
    debs: tuple[SiteDeb, ...] = ()
    overlay: Path | None = None  # a folder whose tree is copied onto the image's /
    overlay_modes: tuple[tuple[str, str], ...] = ()  # (path in the overlay, octal mode); others 0644 or 0755
    scripts: tuple[Path, ...] = ()  # run as root at build time, in this order
    boot_hooks: tuple[Path, ...] = ()  # run once per instance id at boot, after cloud-init, in this order

    def __bool__(self) -> bool:
        return any((self.packages, self.debs, self.overlay, self.scripts, self.boot_hooks))


def _error(where: str, key: str, value: object, allowed: str) -> ConfigError:
    return ConfigError(f"{where}: [layers] {key} = {value!r} is not valid; {allowed}", tip=f"edit {where}")


def _list(table: dict[str, Any], key: str, where: str) -> list[Any]:
    value = table.get(key, [])
    if not isinstance(value, list):
        raise _error(where, key, value, "expected a list")
    return value


def _inside(directory: Path, value: object, key: str, where: str) -> Path:
    """A path the spec names, which must stay in the spec's folder, also through symlinks."""
    if not isinstance(value, str) or not value:
        raise _error(where, key, value, "name a path in the spec's folder")
    path = directory / value
    if not path.resolve().is_relative_to(directory.resolve()):
        raise _error(where, key, value, f"name a path inside {directory} (no '..' or symlink out of it)")
    return path


def _file(directory: Path, value: object, key: str, where: str) -> Path:
    path = _inside(directory, value, key, where)
    if not path.is_file():
        raise _error(where, key, value, f"name an existing file in {directory}")
    if not FILE_NAME.fullmatch(path.name):
        raise _error(where, key, value, "use a file name of letters, digits, '.', '_' and '-'")
    return path


def _debs(table: dict[str, Any], directory: Path, where: str) -> tuple[SiteDeb, ...]:
    debs = []
    for entry in _list(table, "debs", where):
        if not (isinstance(entry, dict) and set(entry) == {"file", "sha256"}):
            raise _error(where, "debs", entry, 'write each as { file = "<file>.deb", sha256 = "<sha256>" }')
        path = _file(directory, entry["file"], "debs", where)
        expected = entry["sha256"]
        if not (isinstance(expected, str) and SHA256.fullmatch(expected)):
            raise _error(where, "debs", entry, "give the sha256 as 64 lower-case hex digits")
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != expected:
            raise ConfigError(
                f"{where}: [layers] debs {entry['file']} has sha256 {actual}, but the spec says {expected}",
                tip="check the file (a wrong or damaged download?), then its sha256: sha256sum <file>",
            )
        debs.append(SiteDeb(path, expected))
    return tuple(debs)


def _overlay(table: dict[str, Any], directory: Path, where: str) -> tuple[Path | None, tuple[tuple[str, str], ...]]:
    if "overlay" not in table:
        if "overlay_modes" in table:
            raise _error(where, "overlay_modes", table["overlay_modes"], "set overlay (the folder) first")
        return None, ()
    overlay = _inside(directory, table["overlay"], "overlay", where)
    if not overlay.is_dir() or overlay.is_symlink():
        raise _error(where, "overlay", table["overlay"], f"name a folder in {directory}")
    for path in sorted(overlay.rglob("*")):
        kind = path.lstat().st_mode
        if stat.S_ISLNK(kind):
            raise ConfigError(
                f"{where}: [layers] overlay holds a symlink, {path.relative_to(overlay)}: it could point outside "
                "the overlay, so overlays hold only files and folders",
                tip=f"replace {path} with the file it points to",
            )
        if not (stat.S_ISREG(kind) or stat.S_ISDIR(kind)):
            raise _error(where, "overlay", str(path.relative_to(overlay)), "hold only files and folders")
    modes = table.get("overlay_modes", {})
    if not isinstance(modes, dict):
        raise _error(where, "overlay_modes", modes, 'write a table: { "etc/app.conf" = "0640" }')
    checked = []
    for name, mode in sorted(modes.items()):
        inner = PurePosixPath(name)
        if inner.is_absolute() or ".." in inner.parts or not (overlay / inner).exists():
            raise _error(where, "overlay_modes", name, f"name a file or folder in the overlay {overlay}")
        if not (isinstance(mode, str) and MODE.fullmatch(mode)):
            raise _error(where, "overlay_modes", f"{name} = {mode!r}", 'give an octal mode as a string, e.g. "0640"')
        checked.append((str(inner), mode.rjust(4, "0")))
    return overlay, tuple(checked)


def load(table: dict[str, Any], directory: Path, where: str) -> SiteLayers:
    """The [layers] table of the spec at `where`; its files are named from `directory`, the site's spec folder."""
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise _error(where, unknown[0], table[unknown[0]], f"known keys: {', '.join(KEYS)}")
    packages = _list(table, "packages", where)
    for name in packages:
        if not (isinstance(name, str) and PACKAGE_NAME.fullmatch(name)):
            raise _error(where, "packages", name, "name distribution packages, e.g. htop")
    overlay, modes = _overlay(table, directory, where)
    scripts = tuple(_file(directory, value, "scripts", where) for value in _list(table, "scripts", where))
    hooks = tuple(_file(directory, value, "boot_hooks", where) for value in _list(table, "boot_hooks", where))
    return SiteLayers(tuple(packages), _debs(table, directory, where), overlay, modes, scripts, hooks)
