"""The remote desktop VISA activates an instance by (image.toml [desktop]), on both targets.

VISA's API server replays here as it runs: its activation check (TCP connects of 1 s to the VDI ports, guacd
4822 and RDP 3389, then to the image's protocols, JupyterLab 8888) and its desktop connection (the Guacamole
protocol to guacd, `rdp` to the instance's own address as the owner, with a token signed by the key whose public
half is the instance's pamPublicKey). The check runs in the target against its own address (not loopback):
through QEMU's user network a forwarded port accepts every connection, so a host-side connect to the VM proves
nothing; on the double it also runs from the host, outside the container.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Instance, desktop_token, rsa_key
from visa_build.image_spec import ImageSpec

VDI_PORTS = (4822, 3389)  # VISA's default VDI protocol GUACD, and its secondary protocol RDP
PROTOCOLS = {"JUPYTER": 8888}
CONNECT_TIMEOUT = 1.0  # VISA_INSTANCE_PORT_CHECK_TIMEOUT_MS
LAYOUT = "fr-fr-azerty"  # the keyboardLayout image_tests gives a desktop image's test instance
#: How long a TCG guest may take from the RDP connection to the owner's XFCE session.
SESSION_SECONDS = 240


@pytest.fixture(scope="module", autouse=True)
def desktop_image(spec: ImageSpec) -> None:
    if spec.desktop is None:
        pytest.skip("the image spec has no [desktop]: no remote desktop to test")


@pytest.fixture(scope="module")
def address(host: Any) -> str:
    """The target's own address, which VISA connects to (and hands guacd as the RDP host)."""
    found: str = host.check_output("hostname -I").split()[0]
    return found


def verdict(is_open: Callable[[int], bool]) -> tuple[str, list[str]]:
    """VISA's InstanceAction.verifyActiveInstance: the state and the active protocols."""
    if not all(is_open(port) for port in VDI_PORTS):
        return "STARTING", []
    active = [name for name, port in PROTOCOLS.items() if is_open(port)]
    return ("ACTIVE" if len(active) == len(PROTOCOLS) else "PARTIALLY_ACTIVE"), active


def open_in_target(host: Any, address: str) -> Callable[[int], bool]:
    """Whether each port of the check answers a 1 s TCP connect to `address`, asked in the target."""
    ports = [*VDI_PORTS, *PROTOCOLS.values()]
    code = (
        "import json, socket\n"
        "def ok(p):\n"
        "    try:\n"
        f"        socket.create_connection(({address!r}, p), {CONNECT_TIMEOUT}).close(); return True\n"
        "    except OSError:\n"
        "        return False\n"
        f"print(json.dumps({{p: ok(p) for p in {ports!r}}}))\n"
    )
    answers = {int(port): up for port, up in json.loads(host.check_output("python3 -c %s", code)).items()}
    return lambda port: answers[port]


def open_from_here(address: str) -> Callable[[int], bool]:
    def is_open(port: int) -> bool:
        try:
            socket.create_connection((address, port), CONNECT_TIMEOUT).close()
        except OSError:
            return False
        return True

    return is_open


@pytest.fixture
def stopped(host: Any, instance: Instance) -> Iterator[Callable[[str], None]]:
    """stopped(unit): stop a unit for the test; it is started again afterwards, JupyterLab waited for."""
    units: list[str] = []

    def stop(unit: str) -> None:
        units.append(unit)
        with host.sudo():
            host.check_output("systemctl stop %s", unit)

    yield stop
    with host.sudo():
        for unit in units:
            host.check_output("systemctl start %s", unit)
    status = f"http://127.0.0.1:8888/jupyter/{instance.id}/api/status"
    fetch = f"import urllib.request as u; u.urlopen({status!r}, timeout=5)"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if host.run("python3 -c %s", fetch).rc == 0:
            return
        time.sleep(3)
    pytest.fail("JupyterLab did not come back after the test started it again")


def test_visa_sees_the_instance_active_with_jupyterlab(host: Any, address: str, pytestconfig: pytest.Config) -> None:
    state, active = verdict(open_in_target(host, address))
    assert (state, active) == ("ACTIVE", ["JUPYTER"]), f"VISA's check from the target's address: {state} {active}"
    if pytestconfig.getoption("--visa-target") == "container":
        state, active = verdict(open_from_here(address))
        assert (state, active) == ("ACTIVE", ["JUPYTER"]), f"VISA's check from outside the double: {state} {active}"


def test_without_guacd_visa_keeps_the_instance_starting(
    host: Any, address: str, stopped: Callable[[str], None]
) -> None:
    stopped("guacd.service")
    assert verdict(open_in_target(host, address)) == ("STARTING", []), "guacd is down, yet VISA would activate"


def test_without_jupyterlab_the_instance_is_partially_active(
    host: Any, address: str, stopped: Callable[[str], None]
) -> None:
    stopped("visa-jupyter.service")
    assert verdict(open_in_target(host, address)) == ("PARTIALLY_ACTIVE", []), "JupyterLab is down"


# The Guacamole protocol, as VISA's API server speaks it to guacd.


class Guacamole:
    """A client connection to guacd: instructions are LENGTH.VALUE elements, ',' between, ';' at the end."""

    def __init__(self, guacd: str) -> None:
        host, port = guacd.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.buffer = b""

    def send(self, *elements: str) -> None:
        self.sock.sendall((",".join(f"{len(e)}.{e}" for e in elements) + ";").encode())

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("guacd closed the connection")
        self.buffer += chunk

    def read(self) -> list[str]:
        elements = []
        while True:
            while b"." not in self.buffer:
                self._fill()
            length, _, self.buffer = self.buffer.partition(b".")
            while len(self.buffer) < int(length) + 1:
                self._fill()
            value, end, self.buffer = (
                self.buffer[: int(length)],
                self.buffer[int(length) : int(length) + 1],
                self.buffer[int(length) + 1 :],
            )
            elements.append(value.decode(errors="replace"))
            if end == b";":
                return elements

    def close(self) -> None:
        self.sock.close()


def rdp(
    guacd: str,
    address: str,
    user: str,
    password: str,
    *,
    until: Callable[[], bool],
    seconds: float,
    screen: tuple[str, str] = ("1280", "800"),
) -> list[str]:
    """Connect to the instance's desktop as VISA does; keep the connection (answering guacd's syncs) until
    `until()` holds or `seconds` pass. Returns the opcodes guacd sent, in order, and ends with any error."""
    client = Guacamole(guacd)
    seen: list[str] = []
    try:
        client.send("select", "rdp")
        args = client.read()
        assert args[0] == "args" and args[1].startswith("VERSION_"), f"guacd answered select with {args[:3]}"
        visa = {
            "hostname": address,
            "port": "3389",
            "username": user,
            "password": password,
            "server-layout": LAYOUT,
            "ignore-cert": "true",
            "color-depth": "16",
        }
        client.send("size", *screen, "96")  # VISA sends the instance's screenWidth and screenHeight
        client.send("audio")
        client.send("video")
        client.send("image", "image/png")
        client.send("connect", args[1], *(visa.get(name, "") for name in args[2:]))
        client.sock.settimeout(5)
        deadline, checked = time.monotonic() + seconds, 0.0
        while time.monotonic() < deadline:
            try:
                instruction = client.read()
            except TimeoutError:
                client.send("nop")
                instruction = ["(quiet)"]
            seen.append(instruction[0])
            if instruction[0] == "sync":
                client.send("sync", instruction[1])
            if instruction[0] == "error":
                seen.append(f"error: {instruction[1:]}")
                break
            if time.monotonic() - checked > 5:
                checked = time.monotonic()
                if until():
                    break
    finally:
        client.close()
    return seen


def required(pytestconfig: pytest.Config, option: str) -> str:
    value = pytestconfig.getoption(option)
    if not value:
        pytest.fail(f"{option} is required for a [desktop] image (invoke test-container and test-qcow2 pass it)")
    return str(value)


@pytest.fixture(scope="module")
def pam_key(pytestconfig: pytest.Config) -> Path:
    return Path(required(pytestconfig, "--visa-pam-key"))


@pytest.fixture(scope="module")
def guacd(pytestconfig: pytest.Config) -> str:
    return required(pytestconfig, "--guacd-address")


def session_pid(host: Any, owner: str) -> str:
    return str(host.run("pgrep -u %s -x xfce4-session", owner).stdout.strip())


def test_the_owner_gets_an_xfce_desktop_through_guacd_with_the_metadata_layout(
    host: Any, instance: Instance, address: str, guacd: str, pam_key: Path
) -> None:
    with host.sudo():  # VISA sizes the connection from the instance's metadata
        width = host.check_output("cloud-init query ds.meta_data.meta.screenWidth")
        height = host.check_output("cloud-init query ds.meta_data.meta.screenHeight")
    seen = rdp(
        guacd,
        address,
        instance.owner,
        desktop_token(pam_key, instance.owner),
        until=lambda: bool(session_pid(host, instance.owner)),
        seconds=SESSION_SECONDS,
        screen=(width, height),
    )
    assert "ready" in seen, f"guacd never said ready: {seen[:20]}"
    after = seen[seen.index("ready") :]
    assert "sync" in after and ({"img", "png"} & set(after)), f"no drawing after ready: {after[:30]}"
    assert not [op for op in seen if op.startswith("error")], f"guacd reported an error: {seen[-5:]}"
    pid = session_pid(host, instance.owner)
    assert pid, f"no XFCE session runs as {instance.owner} after {SESSION_SECONDS} s of connection"
    xorg = host.check_output("pgrep -u %s -a Xorg", instance.owner)  # e.g. "455 /usr/lib/xorg/Xorg :10 -auth ..."
    display = next(arg for arg in xorg.split() if arg.startswith(":"))
    with host.sudo():
        query = host.check_output(
            "runuser -u %s -- env DISPLAY=%s XAUTHORITY=%s/.Xauthority setxkbmap -query",
            instance.owner,
            display,
            instance.home,
        )
        journal = host.check_output("journalctl -b -t visa-token --no-pager")
        sessions = host.check_output("grep 'Starting session' /var/log/xrdp-sesman.log")
    assert "layout:     fr" in query, f"the session's keyboard is not the metadata's {LAYOUT}:\n{query}"
    assert f"width {width}, height {height}" in sessions, (
        f"the session is not the metadata's {width}x{height}:\n{sessions}"
    )
    assert f"accepted desktop login of {instance.owner}" in journal, journal


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("61 s old", "s old (at most 60 s)"),
        ("a token for <owner>2", "not"),
        ("a bad signature", "does not verify"),
        ("signed by another key", "does not verify"),
    ],
)
def test_a_bad_token_is_refused_and_the_journal_says_why(
    host: Any, instance: Instance, address: str, guacd: str, pam_key: Path, tmp_path: Path, case: str, reason: str
) -> None:
    owner, now = instance.owner, int(time.time())
    if case == "61 s old":
        password = desktop_token(pam_key, owner, now - 61)
    elif case == "a token for <owner>2":
        password = desktop_token(pam_key, owner + "2")
        reason = f"the token is for {owner}2, not {owner}"
    elif case == "a bad signature":
        good = desktop_token(pam_key, owner)
        password = good[:-6] + ("AAAA" if not good[-6:-2].startswith("AAAA") else "BBBB") + good[-2:]
    else:
        password = desktop_token(rsa_key(tmp_path / "other.key"), owner)
    since = host.check_output("date +%s")
    refused = lambda: f"refused desktop login of {owner}" in journal_since(host, since)  # noqa: E731
    rdp(guacd, address, owner, password, until=refused, seconds=120)
    journal = journal_since(host, since)
    assert f"refused desktop login of {owner}: " in journal, f"{case}: no refusal in the journal:\n{journal}"
    assert reason in journal, f"{case}: the journal does not say '{reason}':\n{journal}"
    assert "accepted" not in journal, f"{case}: the token was accepted:\n{journal}"


def journal_since(host: Any, since: str) -> str:
    with host.sudo():
        return str(host.check_output("journalctl -t visa-token --since=@%s --no-pager", since))
