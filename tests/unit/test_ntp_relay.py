"""tests/vm's NTP relay: the frames it reads and writes, and the relay itself between Unix and UDP sockets."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

from tests.vm import ntp_relay
from tests.vm.ntp_relay import ARP, ETHERNET, IPV4, RELAY_MAC, UDP, internet_checksum

GUEST_MAC, GUEST_IP, SERVER_IP = bytes.fromhex("525400123457"), bytes([192, 0, 2, 1]), bytes([192, 0, 2, 123])


def arp_request(target: bytes) -> bytes:
    request = ARP.pack(1, 0x0800, 6, 4, 1, GUEST_MAC, GUEST_IP, bytes(6), target)
    return ETHERNET.pack(b"\xff" * 6, GUEST_MAC, 0x0806) + request


def udp_frame(port: int, payload: bytes, *, destination: bytes = SERVER_IP, flags: int = 0x4000) -> bytes:
    length = UDP.size + len(payload)
    ip = IPV4.pack(0x45, 0, IPV4.size + length, 7, flags, 64, 17, 0, GUEST_IP, destination)
    return ETHERNET.pack(RELAY_MAC, GUEST_MAC, 0x0800) + ip + UDP.pack(40000, port, length, 0) + payload


def test_the_checksum_is_rfc_1071s() -> None:
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D  # RFC 1071's worked example
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7220d")) == 0, "a checksummed block sums to zero"


def test_arp_is_answered_for_the_servers_address_only() -> None:
    reply = ntp_relay.arp_reply(arp_request(SERVER_IP), SERVER_IP)
    assert reply is not None
    destination, source, kind = ETHERNET.unpack_from(reply)
    assert (destination, source, kind) == (GUEST_MAC, RELAY_MAC, 0x0806)
    fields = ARP.unpack_from(reply, ETHERNET.size)
    assert fields[4:] == (2, RELAY_MAC, SERVER_IP, GUEST_MAC, GUEST_IP), f"not a reply from the server: {fields}"
    assert ntp_relay.arp_reply(arp_request(bytes([192, 0, 2, 9])), SERVER_IP) is None, "answered for another host"
    assert ntp_relay.arp_reply(udp_frame(123, b"x"), SERVER_IP) is None


def test_only_ntp_to_the_server_is_taken() -> None:
    sender, payload = ntp_relay.ntp_request(udp_frame(123, b"ntp request"), SERVER_IP) or (None, b"")
    assert sender == ntp_relay.Sender(GUEST_MAC, GUEST_IP, 40000) and payload == b"ntp request"
    assert ntp_relay.ntp_request(udp_frame(53, b"dns"), SERVER_IP) is None, "took a datagram to another port"
    assert ntp_relay.ntp_request(udp_frame(123, b"x", destination=bytes([10, 0, 2, 2])), SERVER_IP) is None
    assert ntp_relay.ntp_request(udp_frame(123, b"x", flags=0x2000), SERVER_IP) is None, "took a fragment"
    assert ntp_relay.ntp_request(arp_request(SERVER_IP), SERVER_IP) is None


def test_an_answer_is_a_valid_ipv4_udp_frame_to_the_sender() -> None:
    sender = ntp_relay.Sender(GUEST_MAC, GUEST_IP, 40000)
    frame = ntp_relay.ntp_answer(sender, SERVER_IP, b"ntp answer")
    assert ETHERNET.unpack_from(frame) == (GUEST_MAC, RELAY_MAC, 0x0800)
    ip = frame[ETHERNET.size : ETHERNET.size + IPV4.size]
    assert internet_checksum(ip) == 0, "the IPv4 header's checksum does not verify"
    fields = IPV4.unpack(ip)
    assert (fields[2], fields[6], fields[8], fields[9]) == (IPV4.size + UDP.size + 10, 17, SERVER_IP, GUEST_IP)
    udp = frame[ETHERNET.size + IPV4.size :]
    pseudo = struct.pack("!4s4sBBH", SERVER_IP, GUEST_IP, 0, 17, len(udp))
    assert internet_checksum(pseudo + udp) == 0, "the UDP checksum does not verify"
    assert UDP.unpack_from(udp)[:3] == (123, 40000, len(udp)) and udp[UDP.size :] == b"ntp answer"


def test_the_relay_passes_ntp_to_the_server_and_back(tmp_path: Path) -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as qemu,
    ):
        server.bind(("127.0.0.1", 0))
        server.settimeout(5)
        qemu.bind(str(tmp_path / "vm.sock"))
        qemu.settimeout(5)
        relay_socket = tmp_path / "relay.sock"
        with ntp_relay.relaying(relay_socket, tmp_path / "vm.sock", "192.0.2.123", server.getsockname()[1]) as relayed:
            qemu.sendto(arp_request(SERVER_IP), str(relay_socket))
            assert ETHERNET.unpack_from(qemu.recv(2048))[2] == 0x0806, "no ARP reply"
            qemu.sendto(udp_frame(53, b"dns"), str(relay_socket))  # dropped
            qemu.sendto(udp_frame(123, b"what time is it"), str(relay_socket))
            request, client = server.recvfrom(2048)
            assert request == b"what time is it", f"the server got {request!r}"
            server.sendto(b"noon", client)
            answer = qemu.recv(2048)
        assert answer.endswith(b"noon") and ETHERNET.unpack_from(answer)[0] == GUEST_MAC
        assert (relayed.requests, relayed.answers, relayed.errors) == (1, 1, [])
