"""pip download on the host, of wheels only and each by the hash its lock gives: a wheel is a file pip reads
without running any of its code (sdists are fetched by sdists.fetch_sdists)."""

from __future__ import annotations

import sys
from pathlib import Path


def wheels_argv(requirements: Path, dest: Path, *selectors: str) -> list[str]:
    """pip download of the hash-pinned `requirements` into `dest`, wheels only, no resolving; `selectors` name
    the target (--implementation, --python-version, --platform)."""
    return [
        *(sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--require-hashes"),
        *("--progress-bar", "off", "--disable-pip-version-check", *selectors),
        *("-r", str(requirements), "-d", str(dest)),
    ]
