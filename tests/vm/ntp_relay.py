"""A relay between a VM's second NIC and an NTP server on the host. QEMU sends the NIC's Ethernet frames here as
datagrams on a Unix socket (vm.DatagramNic). The relay answers ARP for one IPv4 address, the server's as the
guest knows it, and passes each NTP request (UDP port 123) sent there to the host's server, wrapping its answer
back into a frame. Every other frame is dropped, so the guest reaches nothing else.

Frames are read and written with struct (three fixed layouts) rather than a packet library, which would become a
dependency of every installed visa-build: tests/vm ships in the wheel."""

from __future__ import annotations

import contextlib
import ipaddress
import selectors
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: The MAC the relay answers with: the server's, as the guest sees it.
RELAY_MAC = bytes.fromhex("525400000123")
NTP_PORT = 123
ETHERNET = struct.Struct("!6s6sH")
ARP = struct.Struct("!HHBBH6s4s6s4s")  # Ethernet and IPv4: hardware type, protocol, sizes, operation, addresses
IPV4 = struct.Struct("!BBHHHBBH4s4s")  # without options
UDP = struct.Struct("!HHHH")
ETH_ARP, ETH_IPV4, IP_UDP = 0x0806, 0x0800, 17
ARP_REQUEST, ARP_REPLY = 1, 2
#: Seconds an NTP request waits for the server's answer before the relay forgets it.
ANSWER_WAIT = 10.0


@dataclass(frozen=True)
class Sender:
    """Who sent an NTP request: the guest's MAC, IPv4 address and UDP port."""

    mac: bytes
    address: bytes
    port: int


def internet_checksum(data: bytes) -> int:
    """RFC 1071's checksum: the ones' complement of the ones' complement sum of 16-bit words."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def arp_reply(frame: bytes, address: bytes) -> bytes | None:
    """The answer to `frame` when it asks who has `address` (4 bytes), else None."""
    if len(frame) < ETHERNET.size + ARP.size or ETHERNET.unpack_from(frame)[2] != ETH_ARP:
        return None
    hardware, protocol, _, _, operation, sender_mac, sender_ip, _, target_ip = ARP.unpack_from(frame, ETHERNET.size)
    if (hardware, protocol, operation, target_ip) != (1, ETH_IPV4, ARP_REQUEST, address):
        return None
    header = ETHERNET.pack(sender_mac, RELAY_MAC, ETH_ARP)
    return header + ARP.pack(1, ETH_IPV4, 6, 4, ARP_REPLY, RELAY_MAC, address, sender_mac, sender_ip)


def ntp_request(frame: bytes, address: bytes) -> tuple[Sender, bytes] | None:
    """Who sent `frame` and its UDP payload when it is a datagram to `address` port 123, else None."""
    if len(frame) < ETHERNET.size + IPV4.size or ETHERNET.unpack_from(frame)[2] != ETH_IPV4:
        return None
    _, source_mac, _ = ETHERNET.unpack_from(frame)
    version_length, _, total, _, fragment, _, protocol, _, source, destination = IPV4.unpack_from(frame, ETHERNET.size)
    header = (version_length & 0x0F) * 4
    if version_length >> 4 != 4 or protocol != IP_UDP or destination != address or fragment & 0x3FFF:
        return None  # not IPv4, not UDP, not to the server, or a fragment
    udp = ETHERNET.size + header
    if header < IPV4.size or len(frame) < udp + UDP.size:
        return None  # a damaged header, or a frame cut short
    source_port, destination_port, length, _ = UDP.unpack_from(frame, udp)
    if destination_port != NTP_PORT or udp + length > len(frame) or total != header + length:
        return None
    return Sender(source_mac, source, source_port), frame[udp + UDP.size : udp + length]


def ntp_answer(sender: Sender, address: bytes, payload: bytes) -> bytes:
    """The frame that brings `payload` from `address` port 123 to `sender`, with both checksums."""
    length = UDP.size + len(payload)
    pseudo = struct.pack("!4s4sBBH", address, sender.address, 0, IP_UDP, length)
    udp_checksum = internet_checksum(pseudo + UDP.pack(NTP_PORT, sender.port, length, 0) + payload) or 0xFFFF
    udp = UDP.pack(NTP_PORT, sender.port, length, udp_checksum) + payload
    ip = IPV4.pack(0x45, 0, IPV4.size + length, 0, 0x4000, 64, IP_UDP, 0, address, sender.address)
    ip = ip[:10] + struct.pack("!H", internet_checksum(ip)) + ip[12:]
    return ETHERNET.pack(sender.mac, RELAY_MAC, ETH_IPV4) + ip + udp


@dataclass
class Relayed:
    """What the relay passed: NTP requests to the server and answers back to the guest."""

    requests: int = 0
    answers: int = 0
    errors: list[str] = field(default_factory=list)


def _close_all(sockets: dict[socket.socket, tuple[Sender, float]]) -> None:
    for upstream in sockets:
        upstream.close()


@contextlib.contextmanager
def relaying(socket_path: Path, vm_socket: Path, address: str, server_port: int) -> Iterator[Relayed]:
    """Relay while the block runs: frames arrive on `socket_path` (bound here) and go back to QEMU's `vm_socket`;
    NTP requests to `address` go to 127.0.0.1:`server_port`."""
    packed = ipaddress.IPv4Address(address).packed
    relayed, stop = Relayed(), threading.Event()
    frames = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    frames.bind(str(socket_path))

    def serve() -> None:
        waiting: dict[socket.socket, tuple[Sender, float]] = {}
        with contextlib.ExitStack() as closing, selectors.DefaultSelector() as selector:
            closing.callback(_close_all, waiting)  # also when the relay fails
            selector.register(frames, selectors.EVENT_READ)
            while not stop.is_set():
                for key, _ in selector.select(timeout=0.5):
                    if key.data is None:  # a frame from the guest
                        frame = frames.recv(65536)
                        reply = arp_reply(frame, packed)
                        request = None if reply else ntp_request(frame, packed)
                        if reply:
                            frames.sendto(reply, str(vm_socket))
                        elif request:
                            upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                            upstream.sendto(request[1], ("127.0.0.1", server_port))
                            selector.register(upstream, selectors.EVENT_READ, data=upstream)
                            waiting[upstream] = (request[0], time.monotonic())
                            relayed.requests += 1
                    else:
                        upstream = key.data  # the server's answer
                        sender, _ = waiting.pop(upstream)
                        selector.unregister(upstream)
                        with upstream:
                            answer = upstream.recv(65536)
                        frames.sendto(ntp_answer(sender, packed, answer), str(vm_socket))
                        relayed.answers += 1
                for upstream, (_, sent) in list(waiting.items()):
                    if time.monotonic() - sent > ANSWER_WAIT:
                        selector.unregister(upstream)
                        upstream.close()
                        del waiting[upstream]

    def guarded() -> None:
        try:
            serve()
        except Exception as error:  # any failure is reported by the test that reads `relayed`
            relayed.errors.append(f"the NTP relay stopped: {error!r}")

    thread = threading.Thread(target=guarded, name="ntp-relay", daemon=True)
    thread.start()
    try:
        yield relayed
    finally:
        stop.set()
        thread.join(timeout=10)
        frames.close()
