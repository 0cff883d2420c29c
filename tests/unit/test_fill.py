"""Native fill: the image's layers copied onto a bootable disk; nothing stays mounted or attached, and no
entry is published, when a step fails or is interrupted."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest

from visa_build import artefact, disk, fill
from visa_build.errors import CommandError, VisaBuildError
from visa_build.process import Result

LAYERS = ["/var/lib/docker/overlay2/top/diff", "/var/lib/docker/overlay2/base/diff"]


class FakeHost:
    """Records argv; creates what the real commands would (a kernel in the copy, the converted qcow2)."""

    def __init__(self, fail_on: str = "", kernel: bool = True) -> None:
        self.calls: list[list[str]] = []
        self.fail_on, self.kernel = fail_on, kernel

    def __call__(self, argv: list[str], *, check: bool = True, **_: object) -> Result:
        self.calls.append(argv)
        if argv[0] == self.fail_on:
            if not check:
                return Result(argv, 32, ["target is busy"])
            raise CommandError(argv, 1, ["No space left on device"])
        if argv[0] == "losetup" and "--find" in argv:
            return Result(argv, 0, ["/dev/loop7"])
        if argv[0] == "cp" and self.kernel:
            (Path(argv[-1]) / "vmlinuz").touch()
            (Path(argv[-1]) / "etc").mkdir()
        if argv[:2] == ["qemu-img", "convert"]:
            Path(argv[-1]).write_bytes(b"QFI\xfb filled")
        return Result(argv, 0, [])

    def names(self) -> list[str]:
        return [" ".join(argv[:2]) for argv in self.calls]


@pytest.fixture(autouse=True)
def _mbr_code(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    code = tmp_path / "mbr.bin"
    code.write_bytes(b"\xeb\xfe" * 220)
    monkeypatch.setattr(disk, "MBR_CODE", code)


def _fill(tmp_path: Path, host: FakeHost) -> Path:
    return fill.ensure_filled_qcow2("visa-ci", "sha256:abc", LAYERS, tmp_path / "cache", size="1G", runner=host)


def test_layers_are_mounted_read_only_copied_then_made_bootable_and_converted(tmp_path: Path) -> None:
    host = FakeHost()
    filled = _fill(tmp_path, host)
    assert artefact.is_intact(filled), "the filled disk was not published with its sidecar"
    overlay = next(argv for argv in host.calls if argv[:3] == ["mount", "-t", "overlay"])
    assert f"ro,lowerdir={':'.join(LAYERS)}" in overlay, f"the layers must be mounted read-only, top first: {overlay}"
    order = host.names()
    assert order.index("cp --archive") < order.index("extlinux --install") < order.index("qemu-img convert")
    assert order.count("umount --recursive") == 2 and order.count("losetup --detach") == 1
    assert not list((tmp_path / "cache" / "filled" / "visa-ci").glob(".fill-*")), "the work folder was left"


def test_unchanged_image_is_not_filled_again(tmp_path: Path) -> None:
    _fill(tmp_path, FakeHost())
    again = FakeHost()
    _fill(tmp_path, again)
    assert again.calls == [], f"an intact entry of the same image was filled again: {again.names()}"


def test_a_new_image_replaces_the_older_entry_of_its_spec(tmp_path: Path) -> None:
    old = _fill(tmp_path, FakeHost())
    new = fill.ensure_filled_qcow2("visa-ci", "sha256:def", LAYERS, tmp_path / "cache", size="1G", runner=FakeHost())
    assert new != old and artefact.is_intact(new)
    assert not old.exists() and not artefact.sidecar(old).exists(), "the older filled disk was kept"


@pytest.mark.parametrize("failing", ["cp", "extlinux", "qemu-img"])
def test_a_failed_step_leaves_nothing_mounted_attached_or_published(tmp_path: Path, failing: str) -> None:
    host = FakeHost(fail_on=failing)
    with pytest.raises(CommandError):
        _fill(tmp_path, host)
    _assert_undone(tmp_path, host)


def test_a_failed_unmount_fails_the_step_and_nothing_is_published(tmp_path: Path) -> None:
    """An unmount that fails may leave the disk's last writes unflushed: the disk must not reach the cache."""
    host = FakeHost(fail_on="umount")
    with pytest.raises(CommandError, match="umount"):
        _fill(tmp_path, host)
    assert "qemu-img convert" not in host.names(), "a disk whose unmount failed was converted"
    assert not list((tmp_path / "cache" / "filled" / "visa-ci").glob("*.qcow2*")), "it was stored in the cache"
    assert host.names().count("losetup --detach") == 1, f"the loop device was not detached: {host.names()}"


def test_a_filesystem_without_kernel_is_refused_and_undone(tmp_path: Path) -> None:
    host = FakeHost(kernel=False)
    with pytest.raises(VisaBuildError, match="no kernel at /vmlinuz"):
        _fill(tmp_path, host)
    _assert_undone(tmp_path, host)


def test_an_interrupt_leaves_nothing_mounted_or_attached(tmp_path: Path) -> None:
    host = FakeHost()
    original = host.__call__

    def interrupted(argv: list[str], **kwargs: Any) -> Result:
        if argv[0] == "cp":
            host.calls.append(argv)
            raise KeyboardInterrupt
        return original(argv, **kwargs)

    with contextlib.suppress(KeyboardInterrupt):
        fill.ensure_filled_qcow2("visa-ci", "sha256:abc", LAYERS, tmp_path / "cache", size="1G", runner=interrupted)
    _assert_undone(tmp_path, host)


def _assert_undone(tmp_path: Path, host: FakeHost) -> None:
    mounts = sum(1 for argv in host.calls if argv[0] == "mount")
    assert host.names().count("umount --recursive") == mounts, f"a mount was not undone: {host.names()}"
    assert host.names().count("losetup --detach") == 1, f"the loop device was not detached: {host.names()}"
    left = list((tmp_path / "cache" / "filled" / "visa-ci").iterdir())
    assert left == [], f"a half-written entry or work folder was left: {left}"


def _make_bootable(tmp_path: Path, planted: str, outside: Path, host: FakeHost) -> None:
    """Make a disk bootable whose filesystem (a plain folder here) holds `planted`, an absolute symlink to
    `outside`, as a package of the image could plant it."""
    with disk.root_filesystem(tmp_path / "disk.raw", 2**23, tmp_path / "root", runner=host) as root:
        (root / "vmlinuz").touch()
        (root / planted).parent.mkdir(parents=True, exist_ok=True)
        (root / planted).symlink_to(outside)
        (root / "etc").mkdir(exist_ok=True)  # every image has one (here, unless it is the link)


@pytest.mark.parametrize("planted", ["etc/fstab", "boot/extlinux/extlinux.conf"])
def test_a_symlinked_boot_file_is_replaced_and_the_host_file_kept(tmp_path: Path, planted: str) -> None:
    host_file = tmp_path / "host" / "passwd"
    host_file.parent.mkdir()
    host_file.write_text("root:x:0:0\n")
    _make_bootable(tmp_path, planted, host_file, FakeHost())
    assert host_file.read_text() == "root:x:0:0\n", "a write through the image's symlink changed a host file"
    written = tmp_path / "root" / planted
    assert not written.is_symlink() and "UUID=" in written.read_text()


@pytest.mark.parametrize("planted", ["etc", "boot", "boot/extlinux"])
def test_a_symlinked_boot_or_etc_folder_is_refused(tmp_path: Path, planted: str) -> None:
    host_folder = tmp_path / "host"
    host_folder.mkdir()
    host = FakeHost()
    with pytest.raises(VisaBuildError, match=f"the image's /{planted} is a symlink"):
        _make_bootable(tmp_path, planted, host_folder, host)
    assert list(host_folder.iterdir()) == [], "a file was written into the host folder the image links to"
    assert not any(argv[0] == "extlinux" for argv in host.calls), "extlinux ran through the link"


def test_size_accepts_the_settings_units() -> None:
    assert disk.size_bytes("12G") == 12 * 2**30 and disk.size_bytes("512M") == 512 * 2**20
