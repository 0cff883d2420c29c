"""A reverse proxy in front of the server under test that behaves like the VISA Jupyter proxy:
it forwards /jupyter/... with the path unchanged, keeps the browser's Host, adds no X-Forwarded-Proto,
and upgrades websockets (kernels, terminals)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import VisaBuildError
from .ports import free_port
from .process import background


def nginx_config(*, listen_port: int, upstream: str, prefix: Path) -> str:
    """nginx.conf proxying 127.0.0.1:listen_port/jupyter/ to `upstream` (host:port), all state under prefix."""
    return f"""daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        listen 127.0.0.1:{listen_port};
        location /jupyter/ {{
            proxy_pass http://{upstream};
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 3600s;
            proxy_buffering off;
        }}
    }}
}}
"""


@contextlib.contextmanager
def reverse_proxy(upstream: str, *, workdir: Path) -> Iterator[str]:
    """Run nginx in front of `upstream` for the block, from a folder of its own under `workdir` (removed
    afterwards unless nginx failed to start); yields the proxy's base URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="nginx-", dir=workdir.resolve()))  # nginx reads -c relative to -p
    port = free_port()
    config = workdir / "nginx.conf"
    config.write_text(nginx_config(listen_port=port, upstream=upstream, prefix=workdir))
    with background(["nginx", "-c", str(config), "-p", str(workdir)], log_path=str(workdir / "nginx.out")) as proc:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise VisaBuildError(
                    f"nginx did not start on 127.0.0.1:{port}", tip=f"see {workdir}/error.log and nginx.out"
                )
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    shutil.rmtree(workdir, ignore_errors=True)
