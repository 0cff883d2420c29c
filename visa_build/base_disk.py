"""The base qcow2 made from the Debian mirror: bootable, cloud-init ready, cached by a hash of its inputs.

One MBR partition holding ext4 with a minimal Debian (mmdebstrap), booted by extlinux. Partition device
nodes do not appear in every sandbox, so the filesystem is reached through a loop device at its offset.
"""

from __future__ import annotations

import shutil
import struct
import tempfile
import uuid
from pathlib import Path

from . import artefact, progress
from .context import image_packages
from .errors import VisaBuildError
from .image_files import loop_device, mounted
from .process import Runner, run

#: What a cloud instance needs before provisioning: kernel, init, cloud-init (with growpart), ssh, DHCP;
#: plus the image's own packages, installed here natively instead of by apt in the emulated guest.
VM_PACKAGES = tuple(dict.fromkeys((
    "linux-image-cloud-amd64", "initramfs-tools", "systemd-sysv", "udev", "dbus", "kmod", "cloud-init",
    "cloud-guest-utils", "openssh-server", "sudo", "locales", "ca-certificates", "python3", "ifupdown",
    "isc-dhcp-client", "netbase", "iproute2", "e2fsprogs", "procps", *image_packages(),
)))  # fmt: skip
DISK_BYTES = 3 * 2**30  # grown by Packer (disk_size) and by cloud-init's growpart at first boot
SECTOR = 512
START_SECTOR = 2048  # 1 MiB alignment
MBR_CODE = Path("/usr/lib/syslinux/mbr/mbr.bin")
#: Like distribution cloud images: the instance's own hostname resolves.
CLOUD_CFG = "manage_etc_hosts: true\n"
#: cloud-init's locale module sets en_US.UTF-8 and fails when it was not generated.
LOCALES = "en_US.UTF-8 UTF-8\n"
MKFS_OPTIONS = ("-O", "^64bit")  # keeps the filesystem readable by every extlinux release


def extlinux_conf(root_uuid: str) -> str:
    """Boot the kernel Debian links at /vmlinuz (kept current on upgrades) with a serial console."""
    return (
        "DEFAULT debian\nPROMPT 0\nTIMEOUT 0\n"
        "LABEL debian\n  LINUX /vmlinuz\n  INITRD /initrd.img\n"
        f"  APPEND root=UUID={root_uuid} ro console=tty0 console=ttyS0,115200n8\n"
    )


def fstab(root_uuid: str) -> str:
    return f"UUID={root_uuid} / ext4 errors=remount-ro 0 1\n"


def mbr(boot_code: bytes, *, start: int, sectors: int) -> bytes:
    """An MBR: `boot_code` (at most 440 bytes), one bootable Linux partition, the 0x55AA signature."""
    if len(boot_code) > 440:
        raise VisaBuildError(f"MBR boot code is {len(boot_code)} bytes, at most 440 fit")
    chs = b"\xfe\xff\xff"  # past the CHS range: firmware uses the LBA fields
    entry = b"\x80" + chs + b"\x83" + chs + struct.pack("<II", start, sectors)
    return boot_code.ljust(446, b"\0") + entry + b"\0" * 48 + b"\x55\xaa"


def cache_key(suite: str, mirror: str) -> str:
    return artefact.key_of(suite, mirror, repr(VM_PACKAGES), str(DISK_BYTES), repr(MKFS_OPTIONS),
                           extlinux_conf("UUID"), fstab("UUID"), CLOUD_CFG, LOCALES, "minbase")  # fmt: skip


def _install(raw: Path, suite: str, mirror: str, work: Path, runner: Runner) -> None:
    root_uuid = str(uuid.uuid4())
    with raw.open("r+b") as disk:
        disk.write(mbr(MBR_CODE.read_bytes()[:440], start=START_SECTOR, sectors=DISK_BYTES // SECTOR - START_SECTOR))
    mountpoint = work / "root"
    mountpoint.mkdir()
    offset = START_SECTOR * SECTOR
    with loop_device(raw, offset=offset, size=DISK_BYTES - offset, read_only=False, runner=runner) as loop:
        runner(["mkfs.ext4", "-F", "-q", "-L", "visa-root", "-U", root_uuid, *MKFS_OPTIONS, loop], timeout=300)
        with mounted(loop, mountpoint, options="rw", runner=runner):
            _populate(mountpoint, suite, mirror, root_uuid, runner)


def _populate(mountpoint: Path, suite: str, mirror: str, root_uuid: str, runner: Runner) -> None:
    """A minimal Debian in the mounted filesystem, made bootable by extlinux."""
    runner(["mmdebstrap", "--variant=minbase", f"--include={','.join(VM_PACKAGES)}", suite, str(mountpoint),
            mirror], timeout=1800, on_line=progress.line,
           tip="check that the Debian mirror answers (visa.mirror)")  # fmt: skip
    (mountpoint / "etc/fstab").write_text(fstab(root_uuid))
    (mountpoint / "etc/hostname").unlink(missing_ok=True)  # cloud-init sets it per instance
    (mountpoint / "etc/cloud/cloud.cfg.d/01-visa-base.cfg").write_text(CLOUD_CFG)
    (mountpoint / "etc/locale.gen").write_text(LOCALES)
    runner(["chroot", str(mountpoint), "locale-gen"], timeout=300)
    boot = mountpoint / "boot/extlinux"
    boot.mkdir(parents=True, exist_ok=True)
    (boot / "extlinux.conf").write_text(extlinux_conf(root_uuid))
    runner(["extlinux", "--install", str(boot)], timeout=120)


def ensure_base_qcow2(suite: str, mirror: str, cache_dir: Path, *, runner: Runner = run) -> Path:
    """Path of the verified base qcow2 for `suite`, building it from `mirror` when absent or damaged."""
    final = cache_dir / "base" / f"debian-{suite}-{cache_key(suite, mirror)}.qcow2"
    if artefact.is_intact(final):
        progress.note(f"base qcow2 {final.name}: cached, checksum verified")
        return final
    if not MBR_CODE.is_file():
        raise VisaBuildError(f"{MBR_CODE} is missing", tip="apt-get install syslinux-common extlinux")
    final.parent.mkdir(parents=True, exist_ok=True)
    with progress.step(f"Building base qcow2 {final.name} from {mirror} (mmdebstrap, extlinux)"):
        work = Path(tempfile.mkdtemp(prefix=".base-", dir=final.parent))
        try:
            raw = work / "disk.raw"
            with raw.open("wb") as disk:
                disk.truncate(DISK_BYTES)  # sparse
            _install(raw, suite, mirror, work, runner)
            partial = work / "disk.qcow2"
            runner(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(partial)], timeout=600)
            artefact.publish(partial, final)
        finally:
            if not (work / "root").is_mount():  # never delete through a mount that failed to go
                shutil.rmtree(work, ignore_errors=True)
    return final
