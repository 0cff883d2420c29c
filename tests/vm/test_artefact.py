"""C14 offline: the qcow2 itself, mounted read-only from a raw copy, carries nothing of its build.
(A booted instance cannot show this: cloud-init replaces host keys and machine id at first boot.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from visa_build.image_spec import ImageSpec
from visa_build.mounts import mounted_root

pytestmark = pytest.mark.vm_only


@pytest.fixture(scope="module")
def image_root(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    qcow2 = pytestconfig.getoption("--qcow2")
    if not qcow2:
        pytest.skip("no --qcow2 given: the image file is not at hand")
    with mounted_root(Path(qcow2), scratch=tmp_path_factory.mktemp("artefact")) as root:
        yield root


def test_no_ssh_host_keys(image_root: Path) -> None:
    keys = sorted(p.name for p in (image_root / "etc/ssh").glob("ssh_host_*"))
    assert keys == [], f"SSH host keys shipped in the image (every instance would share them): {keys}"


def test_no_remote_desktop_tls_key(image_root: Path) -> None:
    """xrdp's TLS key is made at an instance's first boot; the build boot's must not ship."""
    keys = sorted(p.name for p in (image_root / "etc/xrdp").glob("*.pem"))
    assert keys == [], f"xrdp's TLS key shipped in the image (every instance would share it): {keys}"


def test_machine_id_is_empty(image_root: Path) -> None:
    machine_id = image_root / "etc/machine-id"
    assert machine_id.is_file() and machine_id.read_text() == "", "/etc/machine-id must exist and be empty"
    assert not (image_root / "var/lib/dbus/machine-id").exists()


def test_cloud_init_was_cleaned(image_root: Path) -> None:
    state = image_root / "var/lib/cloud"
    left = sorted(str(p.relative_to(state)) for p in state.glob("*")) if state.exists() else []
    assert left == [], f"cloud-init state of the build VM remains in /var/lib/cloud: {left}"
    assert not (image_root / "var/log/cloud-init.log").exists()


def test_no_build_user_key_or_context(image_root: Path) -> None:
    passwd = (image_root / "etc/passwd").read_text()
    assert "visa-build:" not in passwd, "the build user is still in /etc/passwd"
    assert not (image_root / "etc/sudoers.d/90-cloud-init-users").exists(), "the build user's sudo rule remains"
    keys = [str(p) for p in (image_root / "root").glob(".ssh/authorized_keys")]
    keys += [str(p) for p in (image_root / "home").glob("*/.ssh/authorized_keys")]
    assert keys == [], f"authorised keys shipped in the image: {keys}"
    for path in ("opt/visa/build", "root/.cache"):
        assert not (image_root / path).exists(), f"/{path} (build leftovers) is in the image"
    installers = [str(p) for folder in ("tmp", "var/tmp") for p in (image_root / folder).rglob("uv")]
    assert installers == [], f"the build's uv binary is in the image: {installers}"


@pytest.mark.parametrize("path", ["var/log/wtmp", "var/log/btmp", "var/log/lastlog", "var/lib/systemd/random-seed"])
def test_no_record_of_the_build_boot(image_root: Path, path: str) -> None:
    target = image_root / path
    assert not target.exists() or target.stat().st_size == 0, (
        f"/{path} holds {target.stat().st_size} bytes from the build boot (logins, the shutdown, its random seed)"
    )


def test_no_dhcp_lease_or_journal_of_the_build_boot(image_root: Path) -> None:
    leases = [str(p) for p in (image_root / "var/lib/dhcp").glob("*.leases") if p.stat().st_size]
    assert leases == [], f"the build VM's DHCP leases are in the image: {leases}"
    journals = [p.name for p in (image_root / "var/log/journal").glob("*")]
    assert journals == [], f"the build boot's journal is in the image: /var/log/journal/{journals}"


def test_hostname_is_not_the_build_vms(image_root: Path) -> None:
    hostname = (image_root / "etc/hostname").read_text().strip()
    assert "visa-build" not in hostname, f"/etc/hostname still names the build VM: {hostname}"


def test_no_proxy_or_extra_ca(image_root: Path, spec: ImageSpec) -> None:
    """No build proxy: the only proxy settings are the spec's [site] proxy for instances; and no CA beyond the
    spec's [site] ca_certificates (e.g. the build index's)."""
    apt = "\n".join(p.read_text() for p in (image_root / "etc/apt/apt.conf.d").glob("*"))
    environment = (image_root / "etc/environment").read_text() if (image_root / "etc/environment").exists() else ""
    settings = [line for line in (apt + "\n" + environment).splitlines() if "proxy" in line.lower()]
    instance = [line for line in settings if spec.site.proxy and spec.site.proxy in line]
    no_proxy = [line for line in settings if spec.site.proxy and line.lower().startswith("no_proxy=")]
    assert settings == instance + no_proxy or sorted(settings) == sorted(instance + no_proxy), (
        f"proxy settings other than the spec's [site] proxy ({spec.site.proxy or 'none'}) remain: {settings}"
    )
    extra = sorted(p.name for p in (image_root / "usr/local/share/ca-certificates").glob("*"))
    site = [f"visa-site-{number:02d}.crt" for number in range(1, len(spec.site.ca_certificates) + 1)]
    assert extra == site, f"CA certificates other than the site's ({site}) remain in the image: {extra}"


def test_service_enabled_in_the_image(image_root: Path) -> None:
    link = image_root / "etc/systemd/system/multi-user.target.wants/visa-jupyter.service"
    assert link.is_symlink(), "visa-jupyter.service is not enabled in the image"
