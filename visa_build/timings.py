"""How long each Packer stage took last time (per spec, stage and accelerator), for the next build's ETA."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path


def _file(cache_dir: Path) -> Path:
    return cache_dir / "stage-seconds.json"


def _load(cache_dir: Path) -> dict[str, float]:
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads(_file(cache_dir).read_text())
        if isinstance(loaded, dict):
            return {str(k): float(v) for k, v in loaded.items() if isinstance(v, int | float)}
    return {}  # none yet, or unreadable: an ETA is a nicety, never a reason to fail a build


def previous(cache_dir: Path, key: str) -> float | None:
    """Seconds the last successful build of `key` took, if one is known."""
    return _load(cache_dir).get(key)


def record(cache_dir: Path, key: str, seconds: float) -> None:
    """Remember a successful build's duration (written atomically)."""
    known = _load(cache_dir) | {key: round(seconds, 1)}
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=cache_dir, prefix=".stage-seconds-")
    with os.fdopen(fd, "w") as handle:
        json.dump(known, handle, indent=1, sort_keys=True)
    os.replace(temporary, _file(cache_dir))


def eta(elapsed: float, expected: float | None) -> str:
    """'[  42s]' or, with an expected duration, '[  42s of ~150s]'."""
    return f"[{elapsed:5.0f}s]" if expected is None else f"[{elapsed:5.0f}s of ~{expected:.0f}s]"
