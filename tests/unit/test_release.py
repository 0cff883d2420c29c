"""Release records: the manifest is canonical, changes are classified as dpkg and pip order versions, the
SBOM names every package by purl, and release folders are written whole or not at all."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest

from visa_build import publish
from visa_build.distros import DISTROS
from visa_build.errors import VisaBuildError
from visa_build.process import run
from visa_build.release import changes, manifest, record, sbom
from visa_build.release.build_json import junit_counts

LAB, ANALYSIS = manifest.ENVIRONMENTS
LISTING = """JupyterLab v4.6.6
/opt/visa/jupyter/jupyterlab/share/jupyter/labextensions
        jupyter-matplotlib v0.12.0 enabled OK
        @jupyter-widgets/jupyterlab-manager v5.0.16 enabled OK (python, jupyterlab_widgets)


Disabled extensions:
    @jupyterlab/extensionmanager-extension (all plugins)
"""


def _facts(numpy: str = "2.4.6", bash: str = "5.2.15-2+b7") -> dict[str, Any]:
    return {
        "debian_packages": {"bash": bash, "libc6": "2.36-9+deb12u13"},
        f"env:{LAB}": {"packages": {"jupyterlab": "4.6.6", "pip": "26.3"}},
        f"env:{ANALYSIS}": {"packages": {"numpy": numpy, "ipykernel": "7.4.0"}},
        "kernelspecs": {"python3": {"display_name": "Data Analysis", "argv0": f"{ANALYSIS}/bin/python"}},
        "labextensions": LISTING,
        "site": {
            "timezone": "Europe/Paris",
            "keyboard": "fr-ch-qwertz",
            "ntp_servers": ["ntp1.example.org"],
            "ca_certificates": {"visa-site-01.crt": "f" * 64},
        },
    }


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Path:
    wheels = [
        "jupyterlab-4.6.6-py3-none-any.whl",
        "numpy-2.4.6-cp311-cp311-manylinux_2_17_x86_64.whl",
        "numpy-2.4.5-cp311-cp311-manylinux_2_17_x86_64.whl",
        "pip-26.3-py3-none-any.whl",
        "ipykernel-7.4.0-py3-none-any.whl",
    ]
    lines = [f"{letter * 64}  {wheel}" for letter, wheel in zip("abcde", wheels, strict=True)]
    (tmp_path / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_manifest_holds_every_part_with_wheel_digests(wheelhouse: Path) -> None:
    image = manifest.from_facts("visa-ci", DISTROS["bookworm"], _facts(), wheelhouse)
    assert image["system"]["packages"]["bash"] == "5.2.15-2+b7"
    assert image["python"][ANALYSIS]["numpy"] == {
        "version": "2.4.6",
        "wheel": "numpy-2.4.6-cp311-cp311-manylinux_2_17_x86_64.whl",
        "sha256": "b" * 64,
    }
    assert image["kernelspecs"]["python3"]["display_name"] == "Data Analysis"
    assert image["labextensions"]["installed"]["jupyter-matplotlib"] == {"version": "0.12.0", "enabled": True}
    assert image["labextensions"]["disabled"] == ["@jupyterlab/extensionmanager-extension"]
    assert image["site"]["ca_certificates"] == {"visa-site-01.crt": "f" * 64}
    text = manifest.to_markdown(image)
    assert "| time zone | Europe/Paris |" in text and f"| CA certificate visa-site-01.crt | sha256 {'f' * 64} |" in text


def test_manifest_json_is_byte_identical_for_the_same_image(wheelhouse: Path) -> None:
    facts = _facts()
    reordered = {key: facts[key] for key in reversed(list(facts))}
    reordered["debian_packages"] = dict(reversed(list(facts["debian_packages"].items())))
    one = manifest.to_json(manifest.from_facts("visa-ci", DISTROS["bookworm"], facts, wheelhouse))
    two = manifest.to_json(manifest.from_facts("visa-ci", DISTROS["bookworm"], reordered, wheelhouse))
    assert one == two, "the same image must give the same manifest.json bytes"


def test_a_fact_the_probe_could_not_gather_is_a_clear_error(wheelhouse: Path) -> None:
    facts = _facts() | {"kernelspecs": {"error": "jupyter kernelspec list exited 1"}}
    with pytest.raises(VisaBuildError, match="kernelspecs could not be read"):
        manifest.from_facts("visa-ci", DISTROS["bookworm"], facts, wheelhouse)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("1.0", "1.0-1"),
        ("1.0~rc1", "1.0"),
        ("1:0.1", "2.0"),
        ("2.36-9+deb12u9", "2.36-9+deb12u10"),
        ("1.0a", "1.0"),
        ("1.0", "1.0+"),
        ("1.10", "1.9"),
        ("6.1.0-40", "6.1.0-41"),
        ("1.0-0", "1.0"),
        ("2.0~~a", "2.0~"),
        ("3.0.13-1~deb12u1", "3.0.13-1"),
        ("1:2.38.1-5+deb12u3", "1:2.38.1-5+b1"),
    ],
)
def test_debian_versions_are_ordered_as_dpkg_orders_them(a: str, b: str) -> None:
    ours = changes.compare_debian(a, b)
    for relation, holds in (("lt", ours < 0), ("eq", ours == 0), ("gt", ours > 0)):
        dpkg = run(["dpkg", "--compare-versions", a, relation, b], timeout=30, check=False).returncode == 0
        assert dpkg == holds, f"dpkg says {a} {relation} {b} is {dpkg}, compare_debian gave {ours}"


def test_changes_are_classified_and_security_updates_marked(wheelhouse: Path) -> None:
    old = manifest.from_facts("visa-ci", DISTROS["bookworm"], _facts(), wheelhouse)
    new_facts = _facts(numpy="2.4.5", bash="5.2.15-2+b8")
    new_facts["debian_packages"]["curl"] = "7.88.1-10+deb12u14"
    del new_facts["debian_packages"]["libc6"]
    new = manifest.from_facts("visa-ci", DISTROS["bookworm"], new_facts, wheelhouse)
    parts = changes.between(old, new)
    assert parts[changes.SYSTEM].upgraded == [("bash", "5.2.15-2+b7", "5.2.15-2+b8")]
    assert parts[changes.SYSTEM].added == [("curl", "7.88.1-10+deb12u14")]
    assert parts[changes.SYSTEM].removed == [("libc6", "2.36-9+deb12u13")]
    assert parts[f"Python {ANALYSIS}"].downgraded == [("numpy", "2.4.6", "2.4.5")]
    text = changes.to_markdown("Changes", parts, security={"bash": "5.2.15-2+b8"})
    assert "- upgraded bash 5.2.15-2+b7 -> 5.2.15-2+b8 (security)" in text
    assert "- added curl 7.88.1-10+deb12u14\n" in text, "curl is not from the security suite"
    assert "- downgraded numpy 2.4.6 -> 2.4.5" in text


def test_no_usable_previous_release_is_said_not_crashed() -> None:
    assert "No usable previous release" in changes.to_markdown("Changes", None, {})


def test_sbom_names_debian_and_python_packages_by_purl(wheelhouse: Path) -> None:
    document = json.loads(sbom.to_json(manifest.from_facts("visa-ci", DISTROS["bookworm"], _facts(), wheelhouse)))
    assert document["bomFormat"] == "CycloneDX"
    purls = {component["purl"]: component for component in document["components"] if "purl" in component}
    assert "pkg:deb/debian/bash@5.2.15-2%2Bb7?distro=debian-12" in purls
    assert purls["pkg:pypi/numpy@2.4.6"]["hashes"] == [{"alg": "SHA-256", "content": "b" * 64}]


def test_sbom_lists_the_sites_own_files_with_their_sha256(wheelhouse: Path) -> None:
    """A site's CA certificates, overlay files, build scripts and boot hooks are in the image as files of no
    package: the SBOM lists each with its sha256. Its .debs are Debian packages, listed by purl already."""
    facts = _facts()
    facts["site"] = {
        **facts["site"],
        "ca_certificates": {"visa-site-01.crt": "c" * 64},
        "layers": {
            "deb": {"01-tool_1.0_all.deb": "d" * 64},
            "overlay": {"/etc/app.conf": "e" * 64},
            "script": {"01-ldap.sh": "f" * 64},
            "hook": {"01-homes.sh": "a" * 64},
        },
    }
    built = manifest.from_facts("visa-ci", DISTROS["bookworm"], facts, wheelhouse)
    files = {c["bom-ref"]: c for c in json.loads(sbom.to_json(built))["components"] if c["type"] == "file"}
    assert set(files) == {
        "site-ca-certificate:visa-site-01.crt",
        "site-overlay:/etc/app.conf",
        "site-script:01-ldap.sh",
        "site-hook:01-homes.sh",
    }, files
    assert files["site-overlay:/etc/app.conf"]["hashes"] == [{"alg": "SHA-256", "content": "e" * 64}]
    text = manifest.to_markdown(built)
    assert "| site script 01-ldap.sh | sha256 " + "f" * 64 + " |" in text, text
    assert "| site deb 01-tool_1.0_all.deb | sha256 " + "d" * 64 + " |" in text, text


def test_release_is_written_whole_and_latest_follows(tmp_path: Path) -> None:
    qcow2 = tmp_path / "image.qcow2"
    qcow2.write_bytes(b"QFI")
    root = tmp_path / "releases" / "visa-ci"
    record.write(root, "20261126T010000Z-aaaa", {"image.qcow2": qcow2, "manifest.json": "{}\n"})
    record.set_latest(root, "20261126T010000Z-aaaa")
    assert record.latest(root) == root / "20261126T010000Z-aaaa"
    assert (root / "20261126T010000Z-aaaa" / "image.qcow2").read_bytes() == b"QFI"


def test_a_full_disk_leaves_no_half_release_and_latest_unchanged(tmp_path: Path) -> None:
    root = tmp_path / "visa-ci"
    record.write(root, "20261125T010000Z-old", {"manifest.json": "{}\n"})
    record.set_latest(root, "20261125T010000Z-old")
    source = tmp_path / "image.qcow2"
    source.write_bytes(b"QFI")

    def full_disk(src: Path, dst: Path) -> None:
        dst.write_bytes(b"Q")  # half a copy, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(VisaBuildError, match="No space left on device") as raised:
        record.write(root, "20261126T010000Z-new", {"manifest.json": "{}\n", "image.qcow2": source}, copy=full_disk)
    assert "latest" in str(raised.value) and raised.value.tip
    assert sorted(p.name for p in root.iterdir()) == ["20261125T010000Z-old", "latest"], "a half release was left"
    assert record.latest(root) == root / "20261125T010000Z-old"


@pytest.mark.parametrize("content", [None, "{not json", '["a list"]'])
def test_a_damaged_previous_release_is_not_usable(tmp_path: Path, content: str | None) -> None:
    root = tmp_path / "visa-ci"
    record.write(root, "20261125T010000Z-old", {} if content is None else {"manifest.json": content})
    record.set_latest(root, "20261125T010000Z-old")
    previous, why = record.previous_manifest(root)
    assert previous is None and why.startswith("no usable previous release"), why


def test_retention_keeps_the_newest_and_never_the_latest(tmp_path: Path) -> None:
    root = tmp_path / "visa-ci"
    names = [f"2026112{day}T010000Z-k{day}" for day in range(1, 7)]
    for name in [*names, "20261126T020000Z-kx-failed", "20261120T020000Z-ky-failed"]:
        record.write(root, name, {"build.json": "{}\n"})
    record.set_latest(root, names[0])  # the oldest passed last; newer ones were superseded by hand
    (root / ".partial-20261127T010000Z-kz").mkdir()  # left by an interrupted run
    removed = record.prune(root, keep=2)
    left = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.is_symlink())
    assert left == sorted([names[0], names[4], names[5], "20261126T020000Z-kx-failed", "20261120T020000Z-ky-failed"])
    assert ".partial-20261127T010000Z-kz" in removed


def test_retention_never_removes_the_latest_when_the_release_folder_is_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "disk" / "visa-ci"
    names = [f"2026112{day}T010000Z-k{day}" for day in range(1, 4)]
    for name in names:
        record.write(real, name, {"build.json": "{}\n"})
    record.set_latest(real, names[0])
    (tmp_path / "releases").symlink_to(tmp_path / "disk")
    record.prune(tmp_path / "releases" / "visa-ci", keep=1)
    left = sorted(p.name for p in real.iterdir() if p.is_dir() and not p.is_symlink())
    assert left == [names[0], names[2]], f"reached through a symlink, retention left {left}"
    assert record.latest(real) == real / names[0]


def test_junit_counts_read_pytest_xml(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text('<testsuites><testsuite name="pytest" tests="7" failures="1" errors="0" skipped="2"/></testsuites>')
    assert junit_counts(path) == {"tests": 7, "failures": 1, "errors": 0, "skipped": 2}
    assert junit_counts(tmp_path / "missing.xml")["tests"] == 0


def test_an_ubuntu_release_is_named_as_ubuntu_in_its_sbom_and_glance_properties(wheelhouse: Path) -> None:
    image = manifest.from_facts("visa-ci-noble", DISTROS["noble"], _facts(), wheelhouse)
    purls = {c["purl"] for c in json.loads(sbom.to_json(image))["components"] if "purl" in c}
    assert "pkg:deb/ubuntu/bash@5.2.15-2%2Bb7?distro=ubuntu-24.04" in purls, sorted(purls)[:5]
    image["system"]["packages"]["linux-image-virtual"] = "6.8.0-151.151"
    build = {"spec": {"name": "visa-ci-noble", "release": "noble", "distribution": "ubuntu"}}
    release = record.Release(wheelhouse, "visa-ci-noble", wheelhouse / "x.qcow2", "a", "b", "c", build, dict(image))
    properties = publish.properties(release)
    assert (properties["os_distro"], properties["os_version"]) == ("ubuntu", "24.04"), properties
    assert properties["visa_kernel_version"] == "6.8.0-151.151", "Glance shows the version of noble's kernel package"
    assert image["system"]["distribution"] == "ubuntu" and "## Ubuntu 24.04 (noble) packages" in manifest.to_markdown(
        image
    )


def test_a_release_record_written_before_ubuntu_images_is_still_read(wheelhouse: Path) -> None:
    """Manifests of earlier releases name their packages `debian`: CHANGES.md and the SBOM still read them."""
    new = manifest.from_facts("visa-ci", DISTROS["bookworm"], _facts(), wheelhouse)
    old = {**{k: v for k, v in new.items() if k != "system"}, "debian": {"release": "bookworm", "packages": {}}}
    assert changes.between(old, new)[changes.SYSTEM].added == sorted(new["system"]["packages"].items())
    assert manifest.system_part(old)["version"] == "12" and "## Debian 12 (bookworm) packages" in manifest.to_markdown(
        old
    )
