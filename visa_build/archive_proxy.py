"""The one way out of a test VM's restricted network: an HTTP proxy on the host's 127.0.0.1 that forwards GET and
HEAD requests to the image's package archives only (the mirrors' hosts), so apt in the guest can read the
-security suite the VM suite checks. Any other host gets 403 with what is allowed."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import requests

from .vm import HOST_SERVICES_FROM_GUEST

#: Where apt in a test VM finds the proxy (Acquire::http::Proxy): a guest forward (vm.guest_forward) to it.
GUEST_PORT = 3128
GUEST_URL = f"http://{HOST_SERVICES_FROM_GUEST}:{GUEST_PORT}/"
#: Headers of one hop, not passed on (RFC 9110, 7.6.1), and those requests sets itself.
HOP_HEADERS = frozenset(
    ("connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "trailer", "upgrade", "host")
)
UPSTREAM_TIMEOUT = 60
BLOCK = 65536


def archive_hosts(*mirrors: str) -> frozenset[str]:
    """The host[:port] of each mirror URL: what the proxy lets the guest reach."""
    return frozenset(urlsplit(mirror).netloc for mirror in mirrors)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # apt keeps its connection open
    allowed: frozenset[str] = frozenset()

    def do_GET(self) -> None:
        self._forward(body=True)

    def do_HEAD(self) -> None:
        self._forward(body=False)

    def _forward(self, *, body: bool) -> None:
        target = urlsplit(self.path)
        if target.scheme != "http" or target.netloc not in self.allowed:
            self._refuse(f"{self.path} is not in the image's archives ({', '.join(sorted(self.allowed))})\n")
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
        try:
            upstream = requests.request(
                self.command, self.path, headers=headers, stream=True, timeout=UPSTREAM_TIMEOUT, allow_redirects=False
            )
        except requests.RequestException as exc:
            self._refuse(f"the archive did not answer: {exc}\n", status=502)
            return
        with upstream:
            self.send_response(upstream.status_code)
            for key, value in upstream.raw.headers.items():
                if key.lower() not in HOP_HEADERS and key.lower() != "transfer-encoding":
                    self.send_header(key, value)
            length = upstream.headers.get("Content-Length")
            if body and length is None:
                self.send_header("Connection", "close")  # the end of the body is the end of the connection
                self.close_connection = True
            self.end_headers()
            if body:
                for block in upstream.raw.stream(BLOCK, decode_content=False):
                    self.wfile.write(block)

    def _refuse(self, message: str, *, status: int = 403) -> None:
        data = message.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serving(hosts: frozenset[str]) -> Iterator[int]:
    """The proxy on 127.0.0.1 (a free port, yielded) for the block, forwarding only to `hosts`."""
    handler = type("ArchiveHandler", (_Handler,), {"allowed": hosts})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="archive-proxy", daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
