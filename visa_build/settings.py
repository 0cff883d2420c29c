"""Build settings from the invoke config (`visa.*` keys, INVOKE_VISA_* variables), validated once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from .errors import ConfigError

#: The project folder: relative spec folders and the default build folder are under it.
PROJECT = Path(__file__).resolve().parent.parent

#: uv and pip install from the host's wheelhouse; pip-index is pip from a package index inside the guest
#: (the way images were provisioned before the wheelhouse; qcow2 builds only, for sites and benchmarks).
Installer = Literal["uv", "pip", "pip-index"]
Accelerator = Literal["auto", "kvm", "tcg"]
#: native: the qcow2 is filled on the host from the Docker image of the same provisioning, then booted once to
#: seal; guest: Packer stages install inside QEMU from a base qcow2 (needed by pip-index and a site base_qcow2).
Fill = Literal["native", "guest"]
#: zlib: any QEMU reads the qcow2; zstd: 3-4x faster to write, slightly smaller, needs QEMU >= 5.1 where used.
Compression = Literal["zlib", "zstd"]


#: Every `visa.*` setting and its default (invoke.yaml or INVOKE_VISA_<KEY> override it): the one place a default
#: is written. tasks.py configures invoke with it; make_settings and make_publishing fill what a caller leaves out.
DEFAULTS: dict[str, Any] = {
    "image": "images/visa-jupyter",  # the image spec folder of the tasks that take --image
    "build_dir": str(PROJECT / "build"),  # every generated file lives under it
    "installer": "uv",
    "base_image": "",  # "" = build one from the mirror; else an existing Docker image, e.g. debian:bookworm
    "mirror": "http://deb.debian.org/debian",  # the release and its -updates suite
    "security_mirror": "http://deb.debian.org/debian-security",  # the -security suite
    "ubuntu_mirror": "http://archive.ubuntu.com/ubuntu",  # Ubuntu releases: the release and its -updates suite
    "ubuntu_security_mirror": "http://security.ubuntu.com/ubuntu",  # Ubuntu releases: the -security suite
    "rebase_days": 7,  # the base is rebuilt from the mirror this often (0: only when its inputs change)
    "wheelhouse_port": 8765,
    "accelerator": "auto",
    "base_qcow2": "",  # "" = build one from the mirror; else a path or URL of a cloud image
    "base_qcow2_checksum": "",  # sha256:<hex> or file:<URL>, required with base_qcow2
    "disk_size": "12G",
    "index_url": "https://pypi.org/simple",  # installer pip-index: the index the guest installs from
    "index_ca_bundle": "",  # installer pip-index: CA bundle the guest trusts for it ("" = its own)
    "index_allow_http": False,  # installer pip-index: accept a plain-HTTP index_url (anyone between can swap it)
    "fill": "native",
    "compression": "zlib",
    "release_dir": "",  # the nightly's release folder ("" = <build_dir>/releases)
    "keep_releases": 7,  # releases kept per spec by the nightly (the one `latest` names is never removed)
    "nightly_images": "images/visa-jupyter,images/visa-jupyter-trixie",
    "cloud": "",  # a cloud of clouds.yaml ("" = OS_CLOUD or the OS_* variables)
    "publish_visibility": "shared",  # of the promoted image
    "publish_keep_archived": 3,  # archived images kept per spec in Glance
    "publish_min_ram": 2048,  # the image's min_ram in MiB: JupyterLab and a data-analysis kernel
    "nightly_publish": False,  # the nightly publishes each spec's latest release as a candidate
    "nightly_promote": False,  # ... and promotes it (a release exists only when its tests passed)
    "test_container_images": "images/visa-jupyter,images/ci-trixie,images/ci-noble",
    "test_qcow2_images": "images/ci,images/ci-trixie,images/ci-noble",
    "auto_fix": True,  # build tasks install missing host tools and start the Docker engine
    "debug": False,  # log every command run
}


@dataclass(frozen=True)
class Settings:
    """The build settings, validated (see DEFAULTS for what each means)."""

    image_dir: Path
    build_dir: Path
    installer: Installer
    base_image: str
    mirror: str
    wheelhouse_port: int
    accelerator: Accelerator
    base_qcow2: str
    base_qcow2_checksum: str
    disk_size: str
    index_url: str
    index_ca_bundle: str
    fill: Fill
    compression: Compression
    security_mirror: str
    ubuntu_mirror: str
    ubuntu_security_mirror: str
    rebase_days: int
    releases: str
    keep_releases: int
    index_allow_http: bool

    @property
    def cache_dir(self) -> Path:
        return self.build_dir / "cache"

    @property
    def release_dir(self) -> Path:
        return Path(self.releases).resolve() if self.releases else self.build_dir / "releases"

    @property
    def log_dir(self) -> Path:
        return self.build_dir / "logs"


def _values(given: dict[str, Any], setting: str) -> dict[str, Any]:
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise ConfigError(
            f"unknown {setting} setting {', '.join('visa.' + k for k in unknown)}",
            tip="see docs/image-specs-and-settings.md for the settings there are",
        )
    return {**DEFAULTS, **given}


def make_settings(**given: Any) -> Settings:
    """Build settings from `given` `visa.*` values (any subset of DEFAULTS), validated once."""
    v = _values(given, "build")
    image, build_dir, installer, mirror = v["image"], v["build_dir"], v["installer"], v["mirror"]
    wheelhouse_port, accelerator, disk_size, index_url = (
        v["wheelhouse_port"],
        v["accelerator"],
        v["disk_size"],
        v["index_url"],
    )
    index_ca_bundle, index_allow_http, fill, base_qcow2 = (
        v["index_ca_bundle"],
        v["index_allow_http"],
        v["fill"],
        v["base_qcow2"],
    )
    compression, rebase_days, keep_releases, security_mirror = (
        v["compression"],
        v["rebase_days"],
        v["keep_releases"],
        v["security_mirror"],
    )
    if installer not in get_args(Installer):
        raise ConfigError(
            f"visa.installer = {installer!r} is not valid; allowed: {', '.join(get_args(Installer))}",
            tip="set INVOKE_VISA_INSTALLER=uv (or pass --installer uv)",
        )
    if not 1024 <= int(wheelhouse_port) <= 65535:
        raise ConfigError(
            f"visa.wheelhouse_port = {wheelhouse_port!r} is not valid; use a free port 1024-65535",
            tip="set INVOKE_VISA_WHEELHOUSE_PORT",
        )
    if accelerator not in get_args(Accelerator):
        raise ConfigError(
            f"visa.accelerator = {accelerator!r} is not valid; allowed: {', '.join(get_args(Accelerator))}",
            tip="auto probes KVM and falls back to TCG; set INVOKE_VISA_ACCELERATOR (or pass --accelerator)",
        )
    if not disk_size[:-1].isdigit() or disk_size[-1] not in "MGT":
        raise ConfigError(f"visa.disk_size = {disk_size!r} is not a size like 12G", tip="set INVOKE_VISA_DISK_SIZE")
    if not index_url.startswith(("http://", "https://")):
        raise ConfigError(f"visa.index_url = {index_url!r} is not a URL", tip="e.g. https://pypi.org/simple")
    if index_url.startswith("http://") and not index_allow_http:
        raise ConfigError(
            f"visa.index_url = {index_url!r} is plain HTTP: anyone on the way can change what the guest installs",
            tip="use https://, or set INVOKE_VISA_INDEX_ALLOW_HTTP=1 for a trusted network",
        )
    if index_ca_bundle and not Path(index_ca_bundle).is_file():
        raise ConfigError(
            f"visa.index_ca_bundle = {index_ca_bundle!r} is not a file",
            tip="name a PEM bundle, e.g. /etc/ssl/certs/ca-certificates.crt, or leave it empty",
        )
    if fill not in get_args(Fill):
        raise ConfigError(
            f"visa.fill = {fill!r} is not valid; allowed: {', '.join(get_args(Fill))}",
            tip="set INVOKE_VISA_FILL (or pass --fill); see docs/how-an-image-is-made.md",
        )
    if fill == "native" and (installer == "pip-index" or base_qcow2):
        why = "the installer pip-index installs" if installer == "pip-index" else "visa.base_qcow2 is provisioned"
        raise ConfigError(
            f"{why} inside the build VM, but visa.fill is native (filled from the Docker image)",
            tip="set INVOKE_VISA_FILL=guest (or pass --fill guest)",
        )
    if compression not in get_args(Compression):
        raise ConfigError(
            f"visa.compression = {compression!r} is not valid; allowed: {', '.join(get_args(Compression))}",
            tip="zlib unless every QEMU that runs the image is 5.1 or newer; set INVOKE_VISA_COMPRESSION",
        )
    if not mirror.startswith(("http://", "https://")):
        raise ConfigError(f"visa.mirror = {mirror!r} is not a URL", tip="e.g. http://deb.debian.org/debian")
    if not 0 <= int(rebase_days) <= 366:
        raise ConfigError(
            f"visa.rebase_days = {rebase_days!r} is not valid; use 0-366 days (0: never by age)",
            tip="set INVOKE_VISA_REBASE_DAYS",
        )
    if not 1 <= int(keep_releases) <= 1000:
        raise ConfigError(
            f"visa.keep_releases = {keep_releases!r} is not valid; keep 1-1000 releases per spec",
            tip="set INVOKE_VISA_KEEP_RELEASES",
        )
    if not re.fullmatch(r"[A-Za-z0-9._/+@=~-]+", str(Path(build_dir).resolve())):
        raise ConfigError(
            f"visa.build_dir = {str(Path(build_dir).resolve())!r} holds a character (a comma, space, semicolon, quote, "
            "$, ...) that QEMU's, Packer's or nginx's option strings would split or read: it is refused",
            tip="use a folder path of letters, digits and . _ - / + @ = ~ (INVOKE_VISA_BUILD_DIR)",
        )
    for key in ("security_mirror", "ubuntu_mirror", "ubuntu_security_mirror"):
        if not str(v[key]).startswith(("http://", "https://")):
            raise ConfigError(f"visa.{key} = {v[key]!r} is not a URL", tip=f"e.g. {DEFAULTS[key]}")
    return Settings(
        image_dir=Path(image),
        build_dir=Path(build_dir).resolve(),
        installer=installer,
        base_image=v["base_image"],
        mirror=mirror,
        wheelhouse_port=int(wheelhouse_port),
        accelerator=accelerator,
        base_qcow2=base_qcow2,
        base_qcow2_checksum=v["base_qcow2_checksum"],
        disk_size=disk_size,
        index_url=index_url,
        index_ca_bundle=index_ca_bundle,
        fill=fill,
        compression=compression,
        security_mirror=security_mirror,
        ubuntu_mirror=v["ubuntu_mirror"],
        ubuntu_security_mirror=v["ubuntu_security_mirror"],
        rebase_days=int(rebase_days),
        releases=v["release_dir"],
        keep_releases=int(keep_releases),
        index_allow_http=bool(index_allow_http),
    )


#: How VISA's users may see a promoted image: public needs the cloud's admin role (Glance's default policy);
#: community lets every project boot it without listing it; shared only the projects made members.
Visibility = Literal["public", "community", "shared"]


@dataclass(frozen=True)
class Publishing:
    """The publishing settings, validated (see DEFAULTS)."""

    cloud: str
    visibility: Visibility
    keep_archived: int
    min_ram_mib: int
    nightly_publish: bool
    nightly_promote: bool


def make_publishing(**given: Any) -> Publishing:
    """Publishing settings from `given` `visa.*` values (any subset of DEFAULTS), validated once."""
    v = _values(given, "publishing")
    visibility, keep_archived, min_ram_mib = v["publish_visibility"], v["publish_keep_archived"], v["publish_min_ram"]
    nightly_publish, nightly_promote = v["nightly_publish"], v["nightly_promote"]
    if visibility not in get_args(Visibility):
        raise ConfigError(
            f"visa.publish_visibility = {visibility!r} is not valid; allowed: {', '.join(get_args(Visibility))}",
            tip="shared keeps the image to its project and its members; see docs/nightly-and-publishing.md",
        )
    if not 0 <= int(keep_archived) <= 100:
        raise ConfigError(
            f"visa.publish_keep_archived = {keep_archived!r} is not valid; keep 0-100 images",
            tip="set INVOKE_VISA_PUBLISH_KEEP_ARCHIVED",
        )
    if not 256 <= int(min_ram_mib) <= 1 << 20:
        raise ConfigError(
            f"visa.publish_min_ram = {min_ram_mib!r} is not valid; give MiB, e.g. 2048",
            tip="set INVOKE_VISA_PUBLISH_MIN_RAM",
        )
    if nightly_promote and not nightly_publish:
        raise ConfigError(
            "visa.nightly_promote is on but visa.nightly_publish is off: nothing would be promoted",
            tip="set INVOKE_VISA_NIGHTLY_PUBLISH=1 too, or turn promotion off",
        )
    return Publishing(
        v["cloud"], visibility, int(keep_archived), int(min_ram_mib), bool(nightly_publish), bool(nightly_promote)
    )
