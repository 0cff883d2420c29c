"""The archives' proxy, a test VM's one way out: it passes GET and HEAD to the image's mirrors as they answer,
and refuses any other host."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest
import requests

from visa_build import archive_proxy

BODY = b"Origin: Debian\nSuite: bookworm-security\n" * 1000


class _Mirror(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path != "/debian-security/dists/bookworm-security/InRelease":
            self.send_error(404)
            return
        if self.headers.get("If-Modified-Since"):
            self.send_response(304)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.send_header("Last-Modified", "Fri, 27 Nov 2026 00:00:00 GMT")
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def mirror() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Mirror)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/debian-security"
    finally:
        server.shutdown()
        server.server_close()


def test_the_proxy_passes_the_archives_answers_through_unchanged(mirror: str) -> None:
    with archive_proxy.serving(archive_proxy.archive_hosts(mirror)) as port:
        proxies = {"http": f"http://127.0.0.1:{port}"}
        url = f"{mirror}/dists/bookworm-security/InRelease"
        with requests.Session() as session:  # one connection for several requests, as apt keeps it
            answer = session.get(url, proxies=proxies, timeout=10)
            assert answer.status_code == 200 and answer.content == BODY, answer
            assert answer.headers["Last-Modified"] == "Fri, 27 Nov 2026 00:00:00 GMT", answer.headers
            unchanged = session.get(url, proxies=proxies, headers={"If-Modified-Since": "x"}, timeout=10)
            assert unchanged.status_code == 304, unchanged
            missing = session.get(f"{mirror}/dists/nothing", proxies=proxies, timeout=10)
            assert missing.status_code == 404, missing


def test_the_proxy_refuses_every_host_that_is_not_an_archive_of_the_image(mirror: str) -> None:
    with archive_proxy.serving(archive_proxy.archive_hosts("http://deb.debian.org/debian")) as port:
        answer = requests.get(
            f"{mirror}/dists/bookworm-security/InRelease", proxies={"http": f"http://127.0.0.1:{port}"}, timeout=10
        )
    assert answer.status_code == 403, answer
    assert "not in the image's archives (deb.debian.org)" in answer.text, answer.text


def test_the_archive_hosts_are_the_mirrors_host_and_port() -> None:
    hosts = archive_proxy.archive_hosts("http://deb.debian.org/debian", "http://mirror.site:8080/debian-security")
    assert hosts == {"deb.debian.org", "mirror.site:8080"}
