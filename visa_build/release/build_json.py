"""A release record's build.json: what was built from what (spec, archive state, keys, tool versions, settings),
how long each step took, the test counts and the verdict."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from .. import accelerator, archive_state, packer_binary, qcow2
from ..image_spec import ImageSpec
from ..process import run
from ..resources import checkout
from ..settings import Settings


def junit_counts(path: Path) -> dict[str, int]:
    """tests, failures, errors and skipped of a pytest JUnit XML file (zeros when it is missing)."""
    counts = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    if path.is_file():
        for suite in ET.parse(path).getroot().iter("testsuite"):
            for name in counts:
                counts[name] += int(suite.get(name, 0))
    return counts


def _first_line(argv: list[str]) -> str:
    result = run(argv, timeout=60, check=False)
    return result.lines[0].strip() if result.returncode == 0 and result.lines else "unknown"


def source_revision() -> str:
    """The commit of the checkout visa-build runs from, or "installed" for a wheel (whose folder may well sit in
    a site's own git repository, whose commit is not visa-build's)."""
    source = checkout()
    return _first_line(["git", "-C", str(source), "rev-parse", "--short", "HEAD"]) if source else "installed"


def _tool_versions(build_dir: Path) -> dict[str, str]:
    try:
        packer = _first_line([packer_binary.choose(build_dir).path, "version"])
    except packer_binary.PackerNotFoundError:
        packer = "unknown"  # a record of a night that failed for it is still written
    return {
        "visa-build": f"{version('visa-build')} ({source_revision()})",
        "packer": packer,
        "qemu": _first_line(["qemu-system-x86_64", "--version"]),
    }


def write(
    spec: ImageSpec,
    settings: Settings,
    states: tuple[archive_state.SuiteState, ...],
    built: qcow2.Qcow2 | None,
    steps: dict[str, float],
    junit: dict[str, Path],
    *,
    verdict: str,
    error: str = "",
) -> str:
    """The text of build.json (schema in docs/nightly-and-publishing.md)."""
    info: dict[str, Any] = {
        "schema": 1,
        "spec": {
            "name": spec.name,
            "directory": str(spec.directory),
            "release": spec.distro.codename,
            "distribution": spec.distro.distribution,
            "python": spec.python,
        },
        "built": datetime.now(UTC).isoformat(timespec="seconds"),
        "upstream": [{"suite": s.suite, "date": s.date, "inrelease_sha256": s.sha256} for s in states],
        "keys": {"debian_state": archive_state.state_key(states)},
        "versions": _tool_versions(settings.build_dir),
        "settings": {
            "fill": settings.fill,
            "compression": settings.compression,
            "installer": settings.installer,
            "disk_size": settings.disk_size,
            "accelerator": settings.accelerator,
        },
        "steps_seconds": {name: round(seconds, 1) for name, seconds in steps.items()},
        "tests": {target: junit_counts(path) for target, path in junit.items()},
        "verdict": verdict,
    }
    if error:
        info["error"] = error
    if built is not None:
        double = qcow2.double_image_file(built.path)
        info["keys"] |= {
            "qcow2": built.path.stem,
            "double_image": double.read_text().strip() if double.is_file() else "",
        }
        accel = accelerator.resolve_accelerator(
            settings.accelerator, probe_disk=built.path, cache_dir=settings.cache_dir
        )
        info["accelerator"] = accel.name
        virtual = json.loads(run(["qemu-img", "info", "--output=json", str(built.path)], timeout=60).output)
        info["sizes"] = {"qcow2_bytes": built.path.stat().st_size, "virtual_bytes": virtual["virtual-size"]}
    return json.dumps(info, indent=1, sort_keys=True) + "\n"
