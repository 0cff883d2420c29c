"""Build settings from the invoke config (`visa.*` keys, INVOKE_VISA_* variables), validated once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from .errors import ConfigError

Installer = Literal["uv", "pip"]


@dataclass(frozen=True)
class Settings:
    image_dir: Path  # images/<name>
    build_dir: Path  # every generated file lives under it
    installer: Installer
    base_image: str  # "" = build one from the Debian mirror; else an existing Docker image, e.g. debian:bookworm
    mirror: str  # Debian mirror for the base image
    wheelhouse_port: int

    @property
    def cache_dir(self) -> Path:
        return self.build_dir / "cache"

    @property
    def log_dir(self) -> Path:
        return self.build_dir / "logs"


def make_settings(
    *, image: str, build_dir: str, installer: str, base_image: str, mirror: str, wheelhouse_port: int
) -> Settings:
    if installer not in get_args(Installer):
        raise ConfigError(
            f"visa.installer = {installer!r} is not valid; allowed: {', '.join(get_args(Installer))}",
            tip="set INVOKE_VISA_INSTALLER=uv (or pass --installer uv)",
        )
    if not 1024 <= int(wheelhouse_port) <= 65535:
        raise ConfigError(
            f"visa.wheelhouse_port = {wheelhouse_port!r} is not valid; use a free port 1024-65535",
            tip="set INVOKE_VISA_WHEELHOUSE_PORT",
        )
    if not mirror.startswith(("http://", "https://")):
        raise ConfigError(f"visa.mirror = {mirror!r} is not a URL", tip="e.g. http://deb.debian.org/debian")
    return Settings(
        image_dir=Path(image),
        build_dir=Path(build_dir).resolve(),
        installer=installer,  # type: ignore[arg-type]  # checked against Installer above
        base_image=base_image,
        mirror=mirror,
        wheelhouse_port=int(wheelhouse_port),
    )
