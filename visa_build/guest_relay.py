"""Relay one guest connection to a server on the host's 127.0.0.1: QEMU's guestfwd `cmd:` runs this for each
guest connection to a forwarded address (vm.guest_forward), with the connection as stdin and stdout. A test VM's
network is restricted, so these forwards are all it reaches beyond itself. Usage: guest_relay.py PORT"""

from __future__ import annotations

import os
import selectors
import socket
import sys

BLOCK = 65536


def relay(port: int) -> None:
    server = socket.create_connection(("127.0.0.1", port), timeout=30)
    watch = selectors.DefaultSelector()
    watch.register(0, selectors.EVENT_READ)
    watch.register(server, selectors.EVENT_READ)
    while events := watch.select(timeout=60):  # an idle minute ends it too
        for key, _ in events:
            if key.fileobj == 0:
                data = os.read(0, BLOCK)
                if not data:  # the guest closed its side
                    server.shutdown(socket.SHUT_WR)
                    watch.unregister(0)
                    continue
                server.sendall(data)
            else:
                data = server.recv(BLOCK)
                if not data:  # the server answered in full
                    return
                while data:
                    data = data[os.write(1, data) :]


if __name__ == "__main__":
    relay(int(sys.argv[1]))
