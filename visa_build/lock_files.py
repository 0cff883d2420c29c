"""Lock files: resolve an image's pins with hashes for the image's own interpreter (uv pip compile)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from uv import find_uv_bin

from . import progress
from .errors import ConfigError
from .image_spec import ImageSpec
from .process import Runner, run

#: glibc of the image's release (releases.py): wheels must be installable there (bookworm: 2.36).
#: The newest manylinux platform the pinned uv resolves for; a newer glibc still installs every wheel of it.
NEWEST_RESOLVER_GLIBC = (2, 40)


def compile_argv(requirements: Path, output: Path, *, python: str, glibc: str) -> list[str]:
    """uv pip compile resolving `requirements` for CPython `python` on manylinux `glibc`, with hashes."""
    major, minor = min(tuple(int(part) for part in glibc.split(".")), NEWEST_RESOLVER_GLIBC)
    return [
        find_uv_bin(),
        "pip",
        "compile",
        str(requirements),
        "--output-file",
        str(output),
        "--python-version",
        python,
        "--python-platform",
        f"x86_64-manylinux_{major}_{minor}",
        "--generate-hashes",
        "--no-header",
        "--quiet",
    ]


def lock_image(spec: ImageSpec, *, runner: Runner = run) -> list[Path]:
    """Regenerate both lock files of `spec`; returns their paths."""
    if spec.inherits:
        raise ConfigError(
            f"{spec.name} inherits {spec.inherits}, whose lock files are visa-build's own: they change with "
            "visa-build's version",
            tip="pin a newer visa-build in the site's requirements.txt to get newer locks",
        )
    blockers = [reason for reason in spec.build_blockers() if "lock file" not in reason]
    if blockers:
        raise ConfigError(f"cannot lock {spec.name}: " + "; ".join(blockers), tip="lock a buildable spec")
    glibc = spec.distro.glibc
    analysis = spec.data_analysis
    with tempfile.TemporaryDirectory() as scratch:
        analysis_in = Path(scratch) / "data-analysis.in"
        analysis_in.write_text("".join(f"{pin}\n" for pin in analysis.top_level))
        jobs = [(spec.jupyterlab.requirements, spec.jupyterlab.lock), (analysis_in, analysis.lock)]
        for requirements, output in jobs:
            with progress.step(f"Locking {output.relative_to(spec.directory.parent.parent)} for Python {spec.python}"):
                runner(
                    compile_argv(requirements, output, python=spec.python, glibc=glibc),
                    timeout=600,
                    on_line=progress.line,
                )
    return [spec.jupyterlab.lock, analysis.lock]
