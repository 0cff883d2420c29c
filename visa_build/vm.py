"""Boot a qcow2 through a throw-away overlay with a NoCloud seed or another platform's metadata; wait for ssh;
always stopped afterwards."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import interrupts, progress, runs
from .errors import CommandTimeoutError, ConfigError, VisaBuildError
from .ports import free_port
from .process import Runner, background, run
from .seed import QEMU_MAC, Login, Seed

if TYPE_CHECKING:  # the accelerator module names its probe VM with vm_name
    from .accelerator import Accel

#: Every VM visa-build starts is named visa-build-<run id>-<name> (QEMU -name): see runs.py.
VM_NAME_PREFIX = "visa-build-"
SSH_OPTIONS = (
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=5",
)

#: Each guest connection to a forwarded address runs this program (guest_forward).
GUEST_RELAY = Path(__file__).with_name("guest_relay.py")
#: In the guest's default network (10.0.2.0/24), the address of the host services a test VM may reach: QEMU
#: forwards only its listed ports there (guest_forward), and the host's own 10.0.2.2 answers no connection.
HOST_SERVICES_FROM_GUEST = "10.0.2.100"

#: guacd's port in the guest: VISA's API server opens its Guacamole connections there.
GUACD_PORT = 4822


def require_standalone(path: Path, what: str, *, runner: Runner = run) -> None:
    """Refuse `path` (named by setting or flag `what`) unless it is a qcow2 holding the whole image: not another
    format, an overlay (a backing file) or a qcow2 with an external data file (the guest would read host files)."""
    info = json.loads(runner(["qemu-img", "info", "--output=json", str(path)], timeout=60).output)
    standalone = f"make a standalone copy: qemu-img convert -O qcow2 {path} <new file>"
    if info.get("format") != "qcow2":
        raise ConfigError(f"{what} {path} is a {info.get('format')} image, not a qcow2", tip=standalone)
    if info.get("backing-filename"):
        raise ConfigError(
            f"{what} {path} is an overlay on {info['backing-filename']}, not a whole image: what is tested must "
            "be what VISA boots",
            tip=standalone,
        )
    data_file = info.get("format-specific", {}).get("data", {}).get("data-file")
    if data_file:
        raise ConfigError(
            f"{what} {path} keeps its data in the external file {data_file}: the guest would read that host file",
            tip=standalone,
        )


@dataclass(frozen=True)
class DatagramNic:
    """A second NIC whose Ethernet frames QEMU exchanges, a datagram each, with a program on the host over Unix
    sockets (QEMU binds `vm_socket` and sends to `peer_socket`): the guest reaches only what that program answers,
    e.g. a test's relay to an NTP server, which the restricted user network cannot carry (it drops UDP)."""

    vm_socket: Path
    peer_socket: Path
    mac: str

    def qemu_args(self) -> list[str]:
        if any("," in str(path) for path in (self.vm_socket, self.peer_socket)):
            raise ConfigError(f"a NIC's socket path has a comma, which QEMU's options cannot hold: {self}")
        local, remote = (
            f"local.type=unix,local.path={self.vm_socket}",
            f"remote.type=unix,remote.path={self.peer_socket}",
        )
        return ["-netdev", f"dgram,id=net1,{local},{remote}", "-device", f"virtio-net-pci,netdev=net1,mac={self.mac}"]


@dataclass(frozen=True)
class Platform:
    """How the VM's platform hands cloud-init its metadata besides a NoCloud seed: SMBIOS type 1 fields (how
    cloud-init tells OpenStack or a nocloud-net serial), more options of QEMU's user network (an address range,
    guest forwards to a metadata service), a disk of its own (a config drive) and a second NIC."""

    smbios: str = ""  # e.g. "manufacturer=OpenStack Foundation,product=OpenStack Nova"
    network: str = ""  # appended to -netdev user,..., e.g. "net=169.254.0.0/16,guestfwd=..."
    drive: Path | None = None  # an ISO attached as a CD-ROM, e.g. an OpenStack config drive
    second_nic: DatagramNic | None = None


def guest_forward(address: str, guest_port: int, host_port: int) -> str:
    """QEMU's user-network option that relays each guest connection to address:guest_port to 127.0.0.1:host_port
    (a `cmd:` per connection; a `tcp:` chardev would be one stream for all). `address` must be in the guest's
    network and be neither its host nor its DNS address (QEMU refuses those)."""
    return f"guestfwd=tcp:{address}:{guest_port}-cmd:{sys.executable} {GUEST_RELAY} {host_port}"


def keypair(directory: Path, *, runner: Runner = run) -> tuple[Path, str]:
    """A fresh ed25519 key in `directory` (private key path, public key line)."""
    private = directory / "id_ed25519"
    runner(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "visa-build", "-f", str(private)], timeout=60)
    return private, private.with_suffix(".pub").read_text().strip()


def write_seed(seed: Seed, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "meta-data").write_text(seed.meta_data)
    (directory / "user-data").write_text(seed.user_data)
    (directory / "network-config").write_text(seed.network_config)
    return directory


def seed_iso_argv(seed_dir: Path, iso: Path) -> list[str]:
    return [
        "genisoimage",
        "-quiet",
        "-output",
        str(iso),
        "-volid",
        "cidata",
        "-joliet",
        "-rock",
        str(seed_dir / "user-data"),
        str(seed_dir / "meta-data"),
        str(seed_dir / "network-config"),
    ]


def qemu_argv(
    *,
    name: str,
    disk: Path,
    seed_iso: Path | None,
    accel: Accel,
    ssh_port: int,
    http_port: int,
    guest_http_port: int,
    serial_log: Path,
    guacd_port: int = 0,
    platform: Platform = Platform(),
    cpus: int = 2,
    memory_mib: int = 4096,
) -> list[str]:
    """A headless VM: virtio disk and NIC, user networking forwarding ssh and Jupyter (and guacd when
    `guacd_port` is given) to 127.0.0.1; the NoCloud `seed_iso` and the `platform`'s SMBIOS, network, drive and
    second NIC when given. The user network is restricted: the guest reaches neither the host nor beyond it, only
    the platform's guest forwards (and a second NIC's peer)."""
    forwards = f"restrict=on,hostfwd=tcp:127.0.0.1:{ssh_port}-:22,hostfwd=tcp:127.0.0.1:{http_port}-:{guest_http_port}"
    forwards += f",hostfwd=tcp:127.0.0.1:{guacd_port}-:{GUACD_PORT}" if guacd_port else ""
    forwards += f",{platform.network}" if platform.network else ""
    cdroms = [iso for iso in (seed_iso, platform.drive) if iso is not None]
    return [
        "qemu-system-x86_64",
        "-name",
        vm_name(name),
        "-accel",
        accel.name,
        "-cpu",
        accel.cpu,
        "-smp",
        str(cpus),
        "-m",
        str(memory_mib),
        "-nodefaults",
        "-display",
        "none",
        "-no-user-config",
        "-serial",
        f"file:{serial_log}",
        "-drive",
        f"file={disk},if=virtio,format=qcow2,discard=unmap",
        *(arg for iso in cdroms for arg in ("-drive", f"file={iso},if=virtio,media=cdrom,readonly=on")),
        *(["-smbios", f"type=1,{platform.smbios}"] if platform.smbios else []),
        "-netdev",
        f"user,id=net0,{forwards}",
        "-device",
        f"virtio-net-pci,netdev=net0,mac={QEMU_MAC}",
        *(platform.second_nic.qemu_args() if platform.second_nic else []),
    ]


def overlay_argv(qcow2: Path, overlay: Path) -> list[str]:
    """A qcow2 overlay on `qcow2`: the VM writes there, and QEMU's options name only the overlay (a path in the
    build folder), so `qcow2` may be any path, with commas or spaces (it is only stored in the overlay)."""
    return ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(qcow2.resolve()), "-F", "qcow2", str(overlay)]


def vm_name(name: str, run_id: str = runs.RUN_ID) -> str:
    """QEMU's -name of a VM of run `run_id`: it tells which run owns the process."""
    return f"{VM_NAME_PREFIX}{run_id}-{name}"


def vms_of(run_id: str) -> list[int]:
    """Pids of the QEMU processes of run `run_id` that are still running."""
    prefix = vm_name("", run_id).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and b"qemu-system" in argv[0] and any(a.startswith(prefix) for a in argv):
            pids.append(int(entry.name))
    return pids


def stop_vms(run_id: str) -> int:
    """Kill the QEMU processes of run `run_id`; returns how many."""
    pids = vms_of(run_id)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


@dataclass(frozen=True)
class BootedVM:
    name: str
    ssh_port: int  # 127.0.0.1 ports forwarded to the guest's ssh and Jupyter
    http_port: int
    serial_log: Path
    private_key: Path
    user: str
    qemu: subprocess.Popen[bytes]
    guacd_port: int = 0  # 127.0.0.1 port forwarded to the guest's guacd (a desktop image's remote desktop)

    def alive(self) -> bool:
        return self.qemu.poll() is None

    def ssh_argv(self, command: str) -> list[str]:
        return [
            "ssh",
            *SSH_OPTIONS,
            "-i",
            str(self.private_key),
            "-p",
            str(self.ssh_port),
            f"{self.user}@127.0.0.1",
            command,
        ]

    def ssh_config(self, path: Path, control_dir: Path) -> Path:
        """An ssh_config for testinfra's ssh backend (host keys change at every boot). Commands share one
        connection per target (a TCG guest takes about a second per ssh handshake); a connection the guest
        dropped (a reboot) is noticed within 15 s and a new one is opened."""
        options = [opt.replace("=", " ", 1) for opt in SSH_OPTIONS[1::2]]
        options += [f"ControlPath {control_dir}/%C", "ServerAliveInterval 5", "ServerAliveCountMax 3"]
        path.write_text("Host *\n" + "".join(f"  {option}\n" for option in options))
        return path


@contextlib.contextmanager
def ssh_control_dir(runner: Runner = run) -> Iterator[Path]:
    """A private folder for ssh's shared connections (short: a socket path is limited to 108 bytes); the
    connections are closed and the folder removed afterwards."""
    control = Path(tempfile.mkdtemp(prefix="visa-ssh-"))
    try:
        yield control
    finally:
        for socket in control.iterdir():
            runner(["ssh", "-O", "exit", "-o", f"ControlPath={socket}", "visa-build-vm"], timeout=30, check=False)
        shutil.rmtree(control, ignore_errors=True)


def serial_tail(path: Path, lines: int = 25) -> list[str]:
    if not path.is_file():
        return []
    return path.read_text(errors="replace").splitlines()[-lines:]


def wait_for_ssh(vm: BootedVM, *, timeout: float, runner: Runner = run) -> float:
    """Seconds until `ssh true` succeeds; an error with the serial console's tail when it never does."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if not vm.alive():
            raise VisaBuildError(
                "QEMU exited before ssh answered:\n" + "\n".join(serial_tail(vm.serial_log)),
                tip=f"see the serial console log {vm.serial_log}",
            )
        try:
            if runner(vm.ssh_argv("true"), timeout=30, check=False).returncode == 0:
                return time.monotonic() - start
        except CommandTimeoutError:  # a slow guest's sshd took the connection but had not answered yet
            continue
        time.sleep(3)
    raise VisaBuildError(
        f"ssh to {vm.name} did not answer within {timeout:.0f} s:\n" + "\n".join(serial_tail(vm.serial_log)),
        tip=f"see the serial console log {vm.serial_log}; under TCG boots are slow (visa.accelerator)",
    )


@contextlib.contextmanager
def booted_vm(
    qcow2: Path,
    seed: Seed | None,
    login: tuple[Login, Path],
    *,
    accel: Accel,
    name: str,
    work_root: Path,
    log_dir: Path,
    guest_http_port: int,
    platform: Platform = Platform(),
    memory_mib: int = 4096,
    runner: Runner = run,
) -> Iterator[BootedVM]:
    """Boot `qcow2` through an overlay (the artefact is never written) with `seed` on a NoCloud disk (none when
    the `platform` gives the metadata); always stopped and removed afterwards. The serial console log is kept
    in `log_dir` when the block fails."""
    work_root.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    work = runs.scratch_dir(work_root, f"{name}-")
    serial = work / "serial.log"
    failed = True
    try:
        overlay = work / "overlay.qcow2"
        runner(overlay_argv(qcow2, overlay), timeout=60)
        iso = None
        if seed is not None:
            iso = work / "seed.iso"
            runner(seed_iso_argv(write_seed(seed, work / "seed"), iso), timeout=60)
        ssh_port, http_port, guacd_port = free_port(), free_port(), free_port()
        argv = qemu_argv(
            name=name,
            disk=overlay,
            seed_iso=iso,
            accel=accel,
            ssh_port=ssh_port,
            http_port=http_port,
            guest_http_port=guest_http_port,
            serial_log=serial,
            guacd_port=guacd_port,
            platform=platform,
            memory_mib=memory_mib,
        )
        with background(argv, log_path=str(work / "qemu.log")) as qemu:
            yield BootedVM(name, ssh_port, http_port, serial, login[1], login[0].user, qemu, guacd_port)
        failed = False
    finally:
        with interrupts.shielded():
            if failed and serial.is_file():
                kept = log_dir / f"serial-{work.name}.log"
                shutil.copyfile(serial, kept)
                progress.note(f"serial console of the failed VM kept: {kept}")
            shutil.rmtree(work, ignore_errors=True)
