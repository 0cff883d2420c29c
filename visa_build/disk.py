"""Bootable disks made on the host, without emulation: a sparse raw file with one MBR partition holding ext4,
booted by extlinux, then converted to qcow2. Partition device nodes do not appear in every sandbox, so the
filesystem is reached through a loop device at its offset."""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path

from .errors import VisaBuildError
from .mounts import loop_device, mounted
from .process import Runner

SECTOR = 512
START_SECTOR = 2048  # 1 MiB alignment
MBR_CODE = Path("/usr/lib/syslinux/mbr/mbr.bin")
MKFS_OPTIONS = ("-O", "^64bit")  # keeps the filesystem readable by every extlinux release
LABEL = "visa-root"
#: Where distributions link the current kernel and initrd: Debian in /, Ubuntu in /boot.
KERNEL_LINKS = ("/", "/boot/")


def extlinux_conf(root_uuid: str, links: str = "/") -> str:
    """Boot the kernel the distribution links in `links` (Debian: /vmlinuz, Ubuntu: /boot/vmlinuz; kept current on
    upgrades) with a serial console."""
    return (
        "DEFAULT debian\nPROMPT 0\nTIMEOUT 0\n"
        f"LABEL debian\n  LINUX {links}vmlinuz\n  INITRD {links}initrd.img\n"
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


def layout_inputs() -> tuple[str, ...]:
    """What decides the disk's layout and boot set-up, for the cache keys of disks made here."""
    return (str(START_SECTOR), repr(MKFS_OPTIONS), LABEL, extlinux_conf("UUID"), fstab("UUID"))


def size_bytes(size: str) -> int:
    """Bytes of a size like 12G (M, G or T; checked by settings)."""
    shift = {"M": 20, "G": 30, "T": 40}[size[-1]]
    return int(size[:-1]) << shift


@contextlib.contextmanager
def root_filesystem(raw: Path, size: int, mountpoint: Path, *, runner: Runner) -> Iterator[Path]:
    """Make `raw` a sparse disk of `size` bytes with an empty ext4 root partition mounted at `mountpoint`; the
    block fills it. When the block succeeds the disk is made bootable (fstab, extlinux); the filesystem is
    always unmounted and the loop device detached."""
    if not MBR_CODE.is_file():
        raise VisaBuildError(f"{MBR_CODE} is missing", tip="apt-get install syslinux-common extlinux")
    root_uuid = str(uuid.uuid4())
    with raw.open("wb") as handle:
        handle.truncate(size)
        handle.write(mbr(MBR_CODE.read_bytes()[:440], start=START_SECTOR, sectors=size // SECTOR - START_SECTOR))
    mountpoint.mkdir(parents=True, exist_ok=True)
    offset = START_SECTOR * SECTOR
    with loop_device(raw, offset=offset, size=size - offset, read_only=False, runner=runner) as loop:
        runner(["mkfs.ext4", "-F", "-q", "-L", LABEL, "-U", root_uuid, *MKFS_OPTIONS, loop], timeout=300)
        with mounted(loop, mountpoint, options="rw", runner=runner):
            yield mountpoint
            _make_bootable(mountpoint, root_uuid, runner)


def _make_bootable(mountpoint: Path, root_uuid: str, runner: Runner) -> None:
    links = next((where for where in KERNEL_LINKS if (mountpoint / where.lstrip("/") / "vmlinuz").exists()), None)
    if links is None:
        raise VisaBuildError(
            "the filesystem has no kernel at /vmlinuz or /boot/vmlinuz: it cannot boot",
            tip="its packages must include a kernel, e.g. linux-image-cloud-amd64 (visa-build's own base images do)",
        )
    write_inside(mountpoint, "etc/fstab", fstab(root_uuid))
    write_inside(mountpoint, "boot/extlinux/extlinux.conf", extlinux_conf(root_uuid, links))
    runner(["extlinux", "--install", str(mountpoint / "boot/extlinux")], timeout=120)


def write_inside(root: Path, relative: str, text: str) -> None:
    """Write `text` to `root`/`relative` without following a symlink: the image's own links point into the guest
    and, resolved on the host, out of `root`. A linked folder on the way is refused, a linked file replaced."""
    path = Path(relative)
    folder = _open_folder(root, path.parent)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path.name, dir_fd=folder)
        handle = os.open(path.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=folder)
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
    finally:
        os.close(folder)


def _open_folder(root: Path, relative: Path) -> int:
    """A descriptor of the folder `root`/`relative`, made where missing, each part opened as a real folder."""
    folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for depth, part in enumerate(relative.parts, start=1):
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=folder)
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder)
        except OSError as error:
            if error.errno not in (errno.ELOOP, errno.ENOTDIR):  # ELOOP: a symlink; ENOTDIR: a file
                raise
            raise VisaBuildError(
                f"the image's /{Path(*relative.parts[:depth])} is a symlink or not a folder: "
                "the disk cannot be made bootable",
                tip="/etc, /boot and /boot/extlinux must be real folders: see which package of the image links them",
            ) from None
        finally:
            os.close(folder)
        folder = child
    return folder


def convert_argv(raw: Path, qcow2: Path) -> list[str]:
    """An uncompressed qcow2 of `raw`: only written blocks are kept (Packer compresses the published one)."""
    return ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)]
