"""The wheelhouse served read-only over HTTP while a build installs from it: to QEMU guests on 127.0.0.1, to
Docker builds on the gateway of the run's own build network under a fixed host name."""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

from .errors import VisaBuildError


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


#: The name Docker builds reach the wheelhouse by (an /etc/hosts entry of the build). The URL is part of Docker's
#: layer cache key, so it stays the same for every run, while each run serves on the gateway of a build network
#: of its own: builds of several specs run side by side without sharing an address.
DOCKER_WHEELHOUSE_HOST = "visa-wheelhouse"


def _server(directory: Path, address: str, port: int) -> http.server.ThreadingHTTPServer:
    handler = functools.partial(_QuietHandler, directory=str(directory))
    return http.server.ThreadingHTTPServer((address, port), handler)


@contextlib.contextmanager
def _running(server: http.server.ThreadingHTTPServer) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def serving(directory: Path, *, port: int) -> Iterator[str]:
    """Serve `directory` read-only over HTTP on 127.0.0.1:`port` for the block (QEMU's user network reaches only
    that address); yields its URL."""
    try:
        server = _server(directory, "127.0.0.1", port)
    except OSError as exc:
        raise VisaBuildError(
            f"cannot serve the wheelhouse on 127.0.0.1:{port}: {exc.strerror}",
            tip="free that port or set another one: INVOKE_VISA_WHEELHOUSE_PORT=<port>",
        ) from None
    with _running(server):
        yield f"http://127.0.0.1:{port}/"


@contextlib.contextmanager
def serving_to_docker(directory: Path, *, port: int, address: str) -> Iterator[str]:
    """Serve `directory` on `address`:`port` (the gateway of the run's own build network) for the block; yields
    the URL builds use (DOCKER_WHEELHOUSE_HOST, which their /etc/hosts maps to `address`)."""
    try:
        server = _server(directory, address, port)
    except OSError as exc:
        raise VisaBuildError(
            f"cannot serve the wheelhouse on {address}:{port}: {exc.strerror}",
            tip="set another port: INVOKE_VISA_WHEELHOUSE_PORT=<port>",
        ) from None
    with _running(server):
        yield f"http://{DOCKER_WHEELHOUSE_HOST}:{server.server_address[1]}/"
