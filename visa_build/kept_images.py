"""The qcow2s a build folder keeps per spec (build/images/<spec>/): after each build of a spec, its newest
`visa.keep_images` qcow2s stay, the one the build returned always among them. Older ones go with the files
beside them (checksum, build key, manifest, double record), and so do the container doubles they were filled
beside when no tag, container or kept qcow2 uses them. So a nightly build host's disk does not fill with past
nights."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from . import progress
from .docker_engine import remove_unused_images
from .double_build import DOUBLE_RECORD_SUFFIX, recorded_doubles
from .errors import VisaBuildError
from .runs import build_dir_id


def prune(
    current: Path, keep: int, build_dir: Path, *, remove_images: Callable[..., list[str]] = remove_unused_images
) -> list[Path]:
    """Remove the qcow2s beside `current` (its spec's: the one this build returned, built now or found cached)
    but the newest `keep` by build time (the file's), `current` always kept (keep 0: none removed), with their
    files and their doubles; returns the qcow2s removed."""
    if keep == 0:
        return []
    others = sorted((p for p in current.parent.glob("*.qcow2") if p != current), key=_built_at, reverse=True)
    removed: list[Path] = []
    doubles: list[str] = []
    for qcow2 in others[keep - 1 :]:
        record = qcow2.with_name(qcow2.stem + DOUBLE_RECORD_SUFFIX)
        try:
            named = record.read_text().split() if record.is_file() else []
            # the files named after the qcow2, the qcow2 last: an interrupted removal is found again next time
            for path in sorted(qcow2.parent.glob(f"{qcow2.stem}.*"), key=lambda p: p == qcow2):
                path.unlink(missing_ok=True)
        except OSError as error:  # only disk space is at stake: the build stands
            progress.note(f"kept the older qcow2 {qcow2.name}: {error}")
            continue
        removed.append(qcow2)
        doubles += named
    if removed:
        names = ", ".join(p.name for p in removed)
        progress.note(f"removed the older qcow2s {names} (visa.keep_images = {keep})")
    if doubles:
        try:
            gone = remove_images(doubles, build_dir_id=build_dir_id(build_dir), keep=recorded_doubles(build_dir))
        except (VisaBuildError, OSError) as error:  # only disk space is at stake
            progress.note(f"the doubles of the removed qcow2s stay in Docker: {error}")
        else:
            if gone:
                progress.note(f"removed {len(gone)} container doubles of those qcow2s from Docker")
    return removed


def _built_at(qcow2: Path) -> float:
    try:
        return qcow2.stat().st_mtime
    except OSError:  # removed meanwhile: nothing to keep
        return 0.0
