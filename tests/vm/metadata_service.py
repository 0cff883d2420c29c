"""The metadata services VISA's clouds give an instance, answered from the host for a test VM: Nova's
(`openstack/<version>/...` at 169.254.169.254) and the nocloud-net server of VISA's Proxmox provider
(`<vmid>/meta-data`, `<vmid>/user-data`). Also the same Nova tree as an OpenStack config drive."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from visa_build import vm
from visa_build.process import run
from visa_build.seed import QEMU_MAC, nova_metadata

#: The metadata versions cloud-init's OpenStack datasource knows, as Nova lists them under /openstack.
NOVA_VERSIONS = ("2012-08-10", "2013-04-04", "2013-10-17", "2015-10-15", "2016-06-30", "2018-08-27", "latest")
NOVA_ADDRESS = "169.254.169.254"
#: QEMU's user network with Nova's metadata address on it: QEMU refuses a guest forward to 169.254.169.254 on
#: its default 10.0.2.0/24, so the guest's network is link-local, as on many OpenStack clouds.
NOVA_NETWORK = "net=169.254.0.0/16,host=169.254.0.2,dhcpstart=169.254.0.15"
NOVA_SMBIOS = "manufacturer=OpenStack Foundation,product=OpenStack Nova"


def nova_files(meta: dict[str, str], *, user_data: str, vendor_data: str, name: str) -> dict[str, bytes]:
    """Nova's openstack/ tree for a server with VISA's `meta` (checked as Nova checks server metadata), the
    base64-decoded `user_data` (the image's boot command) and `vendor_data` (the cloud's cloud-config)."""
    meta_data = {
        "uuid": str(uuid.uuid4()),
        "name": name,
        "hostname": name,
        "launch_index": 0,
        "availability_zone": "nova",
        "project_id": "0d5f4c3e2b1a49c8a7e6d5c4b3a29181",
        "meta": nova_metadata(meta),
    }
    network_data = {
        "links": [{"id": "tap0", "type": "phy", "ethernet_mac_address": QEMU_MAC, "mtu": 1500}],
        "networks": [{"id": "network0", "type": "ipv4_dhcp", "link": "tap0", "network_id": "net0"}],
        "services": [],
    }
    tree = {
        "meta_data.json": json.dumps(meta_data),
        "user_data": user_data,
        "vendor_data.json": json.dumps({"cloud-init": vendor_data}),
        "network_data.json": json.dumps(network_data),
    }
    files = {"openstack": "\n".join(NOVA_VERSIONS).encode()}
    for version in NOVA_VERSIONS:
        files |= {f"openstack/{version}/{file}": text.encode() for file, text in tree.items()}
    return files


def proxmox_files(vmid: str, meta: dict[str, str], *, boot_command: str, vendor_data: str) -> dict[str, bytes]:
    """What VISA's Proxmox provider's metadata server answers under `<vmid>/`: meta-data YAML with VISA's `meta`,
    user-data running the image's boot command; vendor-data is the test's login (not VISA's)."""
    meta_data = {"meta": meta, "project_id": "visa"}
    user_data = {"fqdn": f"visa-{vmid}.visa.test", "runcmd": [boot_command]}
    return {
        f"{vmid}/meta-data": yaml.safe_dump(meta_data, sort_keys=False).encode(),
        f"{vmid}/user-data": ("#cloud-config\n" + yaml.safe_dump(user_data, sort_keys=False)).encode(),
        f"{vmid}/vendor-data": vendor_data.encode(),
    }


def config_drive(files: dict[str, bytes], folder: Path) -> Path:
    """An ISO labelled config-2 holding Nova's `files` (the openstack/ tree), as Nova writes a config drive."""
    tree = folder / "config-drive"
    for name, data in files.items():
        if name != "openstack":  # the listing is the HTTP service's; on the drive it is a folder
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            (tree / name).write_bytes(data)
    iso = folder / "config-drive.iso"
    run(["genisoimage", "-quiet", "-output", str(iso), "-volid", "config-2", "-joliet", "-rock", str(tree)], timeout=60)
    return iso


@dataclass
class MetadataService:
    """A metadata server on 127.0.0.1:`port` answering `files` by path; every request is logged."""

    port: int
    files: dict[str, bytes]
    failing_seconds: float = 0  # answer 500 to everything for this long after the first request
    requests: list[tuple[str, int]] = field(default_factory=list)  # (path, status) in order
    first_request: float | None = None

    def answer(self, path: str) -> tuple[int, bytes]:
        now = time.monotonic()
        self.first_request = self.first_request or now
        if now - self.first_request < self.failing_seconds:
            status, body = 500, b"metadata service unavailable"
        else:
            body_or_none = self.files.get(path.strip("/"))
            status, body = (200, body_or_none) if body_or_none is not None else (404, b"not found")
        self.requests.append((path, status))
        return status, body

    def guest_forward(self) -> str:
        """QEMU's user-network option that makes Nova's metadata address reach this server."""
        return vm.guest_forward(NOVA_ADDRESS, 80, self.port)


@contextlib.contextmanager
def serving(files: dict[str, bytes], *, failing_seconds: float = 0) -> Iterator[MetadataService]:
    """Serve `files` on a free 127.0.0.1 port until the block ends."""
    service: MetadataService | None = None

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            assert service is not None
            status, body = service.answer(self.path)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Requests are kept in MetadataService.requests, not printed."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    service = MetadataService(server.server_address[1], files, failing_seconds)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()
