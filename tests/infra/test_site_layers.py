"""The site's layers of the image (image.toml [layers]), on the double and the VM: its packages and .debs are
installed, its overlay's files are in place with their modes, its build scripts ran in order, and its boot hooks
run once per instance id with VISA's metadata, a failing one stopping nothing. The image records each file's
sha256 (/usr/share/visa/site-layers.sha256) for its manifest and SBOM. A spec without [layers] adds nothing."""

from __future__ import annotations

import hashlib
import subprocess
import time
from typing import Any

import pytest

from tests.helpers import Facts
from visa_build import render
from visa_build.image_spec import ImageSpec

RECORD = "/usr/share/visa/site-layers.sha256"
HOOKS_UNIT = "visa-site-hooks.service"
HOOKS_RUNNING = ("inactive", "activating")  # not yet started (cloud-final still runs), or running
HOOKS_TIMEOUT = 300


def _record(host: Any) -> list[tuple[str, str, str]]:
    """(kind, name, sha256) of each line of the image's record, in the order the build wrote them."""
    text = host.file(RECORD).content_string if host.file(RECORD).exists else ""
    return [(kind, name, digest) for digest, kind, name in (line.split(" ", 2) for line in text.splitlines())]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hook_names(spec: ImageSpec) -> list[str]:
    return [name.removeprefix("hooks/") for name in render.layer_files(spec) if name.startswith("hooks/")]


def test_an_image_without_layers_has_nothing_of_them(host: Any, spec: ImageSpec) -> None:
    if spec.layers:
        assert _record(host), f"the spec has [layers] but the image has no record at {RECORD}"
        return
    assert not host.file(RECORD).exists, f"{RECORD} exists, but the spec has no [layers]"
    assert not host.file(f"/etc/systemd/system/{HOOKS_UNIT}").exists, "boot hooks installed without [layers]"


def test_the_sites_packages_and_debs_are_installed(host: Any, spec: ImageSpec) -> None:
    for name in spec.layers.packages:
        assert host.package(name).is_installed, f"the site package {name} is not installed"
    for deb in spec.layers.debs:
        fields = subprocess.run(
            ["dpkg-deb", "--field", str(deb.path), "Package", "Version"], check=True, capture_output=True, text=True
        ).stdout
        values = dict(line.split(": ", 1) for line in fields.splitlines())
        package = host.package(values["Package"])
        assert package.is_installed, f"the site's {deb.path.name} ({values['Package']}) is not installed"
        assert package.version == values["Version"], f"{values['Package']} is {package.version}, not the .deb's"
    recorded = {name: digest for kind, name, digest in _record(host) if kind == "deb"}
    expected = {f"{n:02d}-{deb.path.name}": deb.sha256 for n, deb in enumerate(spec.layers.debs, start=1)}
    assert recorded == expected, f"the image records the .debs {recorded}, the spec names {expected}"


def test_the_overlay_is_in_place_with_its_modes_and_owned_by_root(host: Any, spec: ImageSpec) -> None:
    overlay = spec.layers.overlay
    if overlay is None:
        assert not [r for r in _record(host) if r[0] == "overlay"], "overlay files recorded without an overlay"
        return
    modes = dict(spec.layers.overlay_modes)
    files = sorted(path for path in overlay.rglob("*") if path.is_file())
    assert files, f"the overlay {overlay} is empty"
    for source in files:
        inner = str(source.relative_to(overlay))
        target = host.file(f"/{inner}")
        assert target.exists, f"/{inner} of the overlay is not in the image"
        assert (target.user, target.group) == ("root", "root"), f"/{inner} is {target.user}:{target.group}"
        expected = int(modes.get(inner, "0755" if source.stat().st_mode & 0o111 else "0644"), 8)
        assert target.mode == expected, f"/{inner} has mode {oct(target.mode)}, expected {oct(expected)}"
        with host.sudo():
            assert _sha256(target.content) == _sha256(source.read_bytes()), f"/{inner} differs from the overlay's"


def test_the_sites_scripts_ran_in_order(host: Any, spec: ImageSpec) -> None:
    ran = [(name, digest) for kind, name, digest in _record(host) if kind == "script"]
    expected = [(f"{n:02d}-{path.name}", _sha256(path.read_bytes())) for n, path in enumerate(spec.layers.scripts, 1)]
    assert ran == expected, f"the image's build ran the site scripts {ran}; the spec names {expected}, in order"


def hooks_finished(host: Any) -> None:
    """Wait until the boot hooks' unit has run (it starts after cloud-final, which may outlast JupyterLab's start)."""
    deadline = time.monotonic() + HOOKS_TIMEOUT
    while (state := host.check_output(f"systemctl show -p ActiveState --value {HOOKS_UNIT}")) in HOOKS_RUNNING:
        assert time.monotonic() < deadline, f"{HOOKS_UNIT} is still {state} after {HOOKS_TIMEOUT} s"
        time.sleep(2)


def hooks_journal(host: Any) -> str:
    with host.sudo():
        return str(host.check_output(f"journalctl -b -o cat --no-pager -u {HOOKS_UNIT}"))


def test_each_boot_hook_ran_for_this_instance_and_a_failing_one_stops_nothing(
    host: Any, spec: ImageSpec, facts: Facts
) -> None:
    if not spec.layers.boot_hooks:
        pytest.skip("the spec has no boot hooks (test_an_image_without_layers_has_nothing_of_them covers it)")
    instance = facts["metadata"]["id"]
    hooks_finished(host)
    unit = host.service("visa-site-hooks")
    assert unit.is_enabled, f"{HOOKS_UNIT} is not enabled"
    journal = hooks_journal(host)
    for name in _hook_names(spec):
        assert f"{name}: running for instance {instance}" in journal, f"hook {name} did not run:\n{journal}"
        assert f"{name}: done" in journal or f"{name}: failed" in journal, f"hook {name} did not end:\n{journal}"
    assert facts["unit"]["ActiveState"] == "active", "JupyterLab's unit is not active beside the boot hooks"


def test_a_hook_sees_visas_metadata_and_runs_once_per_instance(host: Any, spec: ImageSpec, facts: Facts) -> None:
    """images/ci-noble's record-metadata.sh writes a line of what it saw per run; fails.sh always fails. Starting
    the unit again (as the next boot does) runs the failed hook again, never the one that succeeded."""
    names = _hook_names(spec)
    recorder = next((name for name in names if name.endswith("-record-metadata.sh")), None)
    if recorder is None:
        pytest.skip("the spec has no record-metadata.sh hook, the fixture hook of images/ci-noble")
    meta = facts["metadata"]
    hooks_finished(host)
    log = host.file("/var/lib/visa-site-hook.log")
    assert log.exists, f"{recorder} left no log: it did not run"
    assert log.content_string == f"{meta['id']} {meta['owner']} 9-12-345 1920\n", (
        f"the hook saw VISA_ID, VISA_OWNER, VISA_PROPOSALS, VISA_SCREEN_WIDTH as {log.content_string!r}"
    )
    with host.sudo():
        host.check_output(f"systemctl restart {HOOKS_UNIT}")
    journal = hooks_journal(host)
    assert f"{recorder}: already ran for instance {meta['id']}" in journal, journal
    assert host.file("/var/lib/visa-site-hook.log").content_string.count("\n") == 1, "the hook ran twice"
    failing = [name for name in names if name.endswith("-fails.sh")]
    assert all(journal.count(f"{name}: failed") == 2 for name in failing), f"a failed hook is not retried:\n{journal}"
