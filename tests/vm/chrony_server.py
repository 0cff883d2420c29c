"""An NTP server on the host for the VM tests: Debian 12's chronyd, downloaded by apt (verified against the host's
Debian archive keyring) and unpacked into the build folder's tools, never installed, as chrony's package would
replace the host's own time service. It runs in the foreground on a loopback port with -x, so it never sets the
host's clock, and serves its own clock as a local reference of a stratum no public server has."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from visa_build import debian_package, packer_binary, runs
from visa_build.process import background

#: The suite whose chrony is fetched (Debian 12's, as Packer's: it runs on Debian 12 and 13 and Ubuntu 24.04).
SUITE = packer_binary.SUITE
#: The server's stratum: a client synced with it says one more.
STRATUM = 7
#: An NTP client's request (version 4, mode 3), all timestamps zero: what the start check sends.
CLIENT_REQUEST = bytes([0x23]) + bytes(47)


def chronyd(build_dir: Path, mirror: str) -> Path:
    """The unpacked chronyd: fetched from `mirror` on first use, kept under <build>/tools/chrony/<package>/."""
    folder = build_dir / "tools" / "chrony"
    folder.mkdir(parents=True, exist_ok=True)
    with runs.exclusive(folder.parent / "chrony.lock", "the download of chrony"):
        unpacked = sorted(folder.glob("*/usr/sbin/chronyd"))
        if unpacked:
            return unpacked[-1]
        work = Path(tempfile.mkdtemp(prefix=".fetch-", dir=folder))
        try:
            files = debian_package.unpacked("chrony", SUITE, mirror, work)
            os.rename(files, folder / files.name)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return folder / files.name / "usr" / "sbin" / "chronyd"


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(port: int) -> bool:
    """Whether a server on 127.0.0.1:`port` answers an NTP request as a synchronised server of STRATUM."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(1)
        try:
            client.sendto(CLIENT_REQUEST, ("127.0.0.1", port))
            answer = client.recv(512)
        except OSError:
            return False
    leap, mode = answer[0] >> 6, answer[0] & 7
    return len(answer) >= 48 and leap != 3 and mode == 4 and answer[1] == STRATUM


@contextlib.contextmanager
def serving(program: Path, folder: Path) -> Iterator[int]:
    """`program` (a chronyd) serving NTP on 127.0.0.1 while the block runs, with its configuration and log in
    `folder`; yields its port."""
    port = _free_udp_port()
    config = folder / "chrony.conf"
    config.write_text(
        f"port {port}\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum {STRATUM}\n"
        f"cmdport 0\nbindcmdaddress /\npidfile {folder / 'chronyd.pid'}\n"
    )
    log = folder / "chronyd.log"
    # -d: in the foreground, logging to stderr; -x: never sets the host's clock; -u root: the host has no _chrony
    # user to switch to; -U: it may start without root, as it needs no privilege to serve on a high port
    argv = [str(program), "-d", "-x", "-u", "root", "-U", "-f", str(config)]
    with background(argv, log_path=str(log)) as server:
        deadline = time.monotonic() + 30
        while not _answers(port):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chronyd did not serve on 127.0.0.1:{port}:\n{log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield port
