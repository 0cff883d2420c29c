"""The nightly end to end on images/ci (run by `./visa-build test` after the qcow2 suites of the other CI
images; its first night is that run's build and test of the bookworm qcow2): the first night writes a full
release record, the second finds nothing changed, makes no release and takes under a minute, mirror check
included; then the nightly task, with publishing on, uploads that release to a real Glance and promotes it, and
a second run finds it there."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO
from visa_build import archive_state, image_inputs, mounts, nightly, publish
from visa_build.image_spec import load_image_spec
from visa_build.release import changes, fixes, record
from visa_build.settings import Settings, make_publishing, make_settings


def test_first_night_releases_the_second_sees_no_change_and_publishing_uploads_once(
    pytestconfig: pytest.Config, tmp_path: Path, clouds: dict[str, str]
) -> None:
    spec = load_image_spec(REPO / "images/ci")
    settings = make_settings(
        image="images/ci",
        build_dir=pytestconfig.getoption("--visa-build-dir"),
        installer="uv",
        base_image="",
        mirror="http://deb.debian.org/debian",
        wheelhouse_port=8765,
        release_dir=str(tmp_path / "releases"),
        datasource_boots="",  # tests/vm proves them on images/ci-noble; this proves the nightly
    )
    first = nightly.run_nightly(spec, settings)
    assert first.verdict == "released" and first.folder, f"the first night made no release: {first.summary}"
    folder = first.folder
    root = folder.parent
    assert record.latest(root) == folder, "latest does not name the new release"

    qcow2 = next(folder.glob("*.qcow2"))
    sidecar = (folder / f"{qcow2.name}.sha256").read_text().split()[0]
    assert sidecar == hashlib.sha256(qcow2.read_bytes()).hexdigest(), "the release's qcow2 does not match its sha256"
    build = json.loads((folder / "build.json").read_text())
    assert build["verdict"] == "passed" and build["spec"]["name"] == spec.name
    assert {s["suite"] for s in build["upstream"]} == {"bookworm", "bookworm-updates", "bookworm-security"}
    for target in ("container", "vm"):
        counts = build["tests"][target]
        assert counts["tests"] > 50 and counts["failures"] == counts["errors"] == 0, f"{target} tests: {counts}"
        assert (folder / "junit" / f"{target}.xml").is_file()
    image = json.loads((folder / "manifest.json").read_text())
    assert len(image["system"]["packages"]) > 100 and "linux-image-cloud-amd64" in image["system"]["packages"]
    numpy = image["python"]["/opt/visa/envs/data-analysis"]["numpy"]
    assert len(numpy["sha256"]) == 64 and numpy["wheel"].startswith("numpy-"), f"numpy's wheel is unknown: {numpy}"
    assert image["kernelspecs"]["python3"]["display_name"] == "Data Analysis"
    sbom = json.loads((folder / "sbom.cdx.json").read_text())
    purls = [component["purl"] for component in sbom["components"]]
    assert sum(p.startswith("pkg:deb/debian/") for p in purls) == len(image["system"]["packages"])
    assert any(p.startswith("pkg:pypi/jupyterlab@") for p in purls)
    assert "No usable previous release" in (folder / "CHANGES.md").read_text()
    _assert_security_updates_name_their_fixes(folder, settings, tmp_path / "changelogs")

    started = time.monotonic()
    second = nightly.run_nightly(spec, settings)
    seconds = time.monotonic() - started
    assert second.verdict == "unchanged" and second.folder is None, f"the second night: {second.summary}"
    assert seconds < 60, f"a night with nothing changed took {seconds:.0f} s (at most 60)"
    releases = [p.name for p in root.iterdir() if p.is_dir() and not p.is_symlink()]
    assert releases == [folder.name], f"the second night left {releases}"

    env = os.environ | {
        "INVOKE_VISA_BUILD_DIR": str(settings.build_dir),
        "INVOKE_VISA_RELEASE_DIR": str(root.parent),
        "INVOKE_VISA_NIGHTLY_PUBLISH": "1",
        "INVOKE_VISA_NIGHTLY_PROMOTE": "1",
        "INVOKE_VISA_CLOUD": "glance-test",
        "INVOKE_VISA_PUBLISH_NO_KEYSTONE": "1",
        "INVOKE_VISA_DATASOURCE_BOOTS": "",  # tests/vm proves them on images/ci-noble; this proves the nightly
    }
    argv = [sys.executable, "-m", "invoke", "nightly", "--image", "images/ci"]
    ran = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert ran.returncode == 0, f"the nightly with publishing failed:\n{ran.stdout}\n{ran.stderr[-3000:]}"
    conn = publish.connect("glance-test")
    publishing = make_publishing(cloud="glance-test", publish_no_keystone=True)
    images = publish.spec_images(conn, spec.name, publishing)
    assert len(images) == 1, f"Glance holds {len(images)} images of {spec.name}"
    image = images[0]
    assert publish.state_of(image) == "visa-current" and image.visibility == "shared", (image.tags, image.visibility)
    assert image.properties["visa_release"] == folder.name and image.properties["visa_sha256"] == sidecar
    assert image.hash_value == hashlib.new(image.hash_algo, qcow2.read_bytes()).hexdigest()
    again = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and "already in Glance" in again.stdout, again.stdout + again.stderr[-2000:]
    assert [i.id for i in publish.spec_images(conn, spec.name, publishing)] == [image.id]


def _assert_security_updates_name_their_fixes(folder: Path, settings: Settings, scratch: Path) -> None:
    """Against a previous release holding, of each package the release has from bookworm-security, the version
    its changelog names before the installed one, CHANGES.md names the CVEs each update fixes, read from the
    changelogs in the release's own qcow2."""
    image = json.loads((folder / "manifest.json").read_text())
    spec = load_image_spec(REPO / "images/ci")
    security = archive_state.security_versions(image_inputs.sources(spec, settings))
    packages = image["system"]["packages"]
    updated = [name for name, version in packages.items() if changes.is_security(name, version, security)]
    assert updated, "the release holds no package from bookworm-security: nothing to name fixes of"
    with mounts.mounted_root(next(folder.glob("*.qcow2")), scratch=scratch) as root:
        older = {}
        for name in updated:
            text = fixes.changelog(root, name)
            assert text is not None, f"{name}'s changelog.Debian.gz is not in the release's image"
            headers = (fixes.HEADER.match(line) for line in text.splitlines())
            versions = [header["version"] for header in headers if header]
            older[name] = next(v for v in versions if changes.compare_debian(v, packages[name]) < 0)
        previous = {**image, "system": {**image["system"], "packages": packages | older}}
        parts = changes.between(previous, image)
        found = fixes.read_fixes(root, changes.security_updates(parts, security))
    assert sorted(found) == sorted(updated), f"security updates without their changelog read: {found}"
    assert any(found.values()), f"no security update of the release names a CVE in its changelog: {found}"
    text = changes.to_markdown("Changes", parts, security, found)
    for name in updated:
        line = f"- upgraded {name} {older[name]} -> {packages[name]} (security): "
        assert f"{line}fixes CVE-" in text or f"{line}its changelog names no CVE" in text, text
