"""Build settings from the invoke config (`visa.*` keys, INVOKE_VISA_* variables), validated once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from . import build_proxy, runs
from .errors import ConfigError
from .resources import workspace

#: uv and pip install from the host's wheelhouse; pip-index is pip from a package index inside the guest
#: (the way images were provisioned before the wheelhouse; qcow2 builds only, for sites and benchmarks).
Installer = Literal["uv", "pip", "pip-index"]
Accelerator = Literal["auto", "kvm", "tcg"]
#: native: the qcow2 is filled on the host from the Docker image of the same provisioning, then booted once to
#: seal; guest: Packer stages install inside QEMU from a base qcow2 (needed by pip-index and a site base_qcow2).
Fill = Literal["native", "guest"]
#: zlib: any QEMU reads the qcow2; zstd: 3-4x faster to write, slightly smaller, needs QEMU >= 5.1 where used.
Compression = Literal["zlib", "zstd"]


#: The boots of tests/vm/test_datasources.py: Nova's metadata service, a config drive, Proxmox's nocloud-net;
#: Nova's metadata without an owner; and each path with an instance id that is not a number.
DATASOURCE_BOOTS = (
    "nova",
    "config-drive",
    "nocloud-net",
    "nova-without-owner",
    "nova-bad-id",
    "config-drive-bad-id",
    "nocloud-net-bad-id",
)

#: Every `visa.*` setting and its default (invoke.yaml or INVOKE_VISA_<KEY> override it): the one place a default
#: is written. tasks.py configures invoke with it; make_settings and make_publishing fill what a caller leaves out.
DEFAULTS: dict[str, Any] = {
    "image": "images/visa-jupyter",  # the image spec folder of the tasks that take --image
    "build_dir": "build",  # every generated file lives under it; a relative folder is under resources.workspace()
    "installer": "uv",
    "base_image": "",  # "" = build one from the mirror; else an existing Docker image, e.g. debian:bookworm
    "mirror": "http://deb.debian.org/debian",  # the release and its -updates suite
    "security_mirror": "http://deb.debian.org/debian-security",  # the -security suite
    "ubuntu_mirror": "http://archive.ubuntu.com/ubuntu",  # Ubuntu releases: the release and its -updates suite
    "ubuntu_security_mirror": "http://security.ubuntu.com/ubuntu",  # Ubuntu releases: the -security suite
    "proxy": "",  # the site's HTTP proxy for the build's downloads, e.g. http://proxy.example.org:3128 (build_proxy)
    "no_proxy": "",  # hosts reached without it beside this host's own, comma-separated
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
    "keep_images": 2,  # qcow2s kept per spec under build/images, the newest (0: all)
    "nightly_images": "images/visa-jupyter,images/visa-jupyter-trixie",
    "cloud": "",  # a cloud of clouds.yaml ("" = OS_CLOUD or the OS_* variables)
    "publish_visibility": "shared",  # of the promoted image
    "publish_keep_archived": 3,  # archived images kept per spec in Glance
    "publish_min_ram": 2048,  # the image's min_ram in MiB: JupyterLab and a data-analysis kernel
    "publish_no_keystone": False,  # the cloud is a Glance without Keystone: no project to keep to, so none needed
    "nightly_publish": False,  # the nightly publishes each spec's latest release as a candidate
    "nightly_promote": False,  # ... and promotes it (a release exists only when its tests passed)
    "test_container_images": "images/visa-jupyter,images/ci-trixie,images/ci-noble",
    "test_qcow2_images": "images/ci-trixie,images/ci-noble",  # images/ci's is tests/nightly's
    # test-qcow2 (and the nightly) also boot the qcow2 as VISA's clouds do, once per name (empty: none)
    "datasource_boots": ",".join(DATASOURCE_BOOTS),
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
    keep_images: int
    index_allow_http: bool
    proxy: str = ""
    no_proxy: str = ""
    datasource_boots: tuple[str, ...] = DATASOURCE_BOOTS  # test-qcow2's boots through VISA's metadata paths

    @property
    def cache_dir(self) -> Path:
        return self.build_dir / "cache"

    @property
    def release_dir(self) -> Path:
        return Path(self.releases).resolve() if self.releases else self.build_dir / "releases"

    @property
    def log_dir(self) -> Path:
        """This run's logs: a folder per run id, so runs side by side (and their records) keep theirs apart."""
        return self.build_dir / "logs" / runs.RUN_ID


def _values(given: dict[str, Any], setting: str) -> dict[str, Any]:
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise ConfigError(
            f"unknown {setting} setting {', '.join('visa.' + k for k in unknown)}",
            tip="see docs/image-specs-and-settings.md for the settings there are",
        )
    return {**DEFAULTS, **given}


def _one_of(v: dict[str, Any], key: str, allowed: Any, tip: str) -> Any:
    """v[key], which must be one of the Literal `allowed`."""
    if v[key] not in get_args(allowed):
        raise ConfigError(f"visa.{key} = {v[key]!r} is not valid; allowed: {', '.join(get_args(allowed))}", tip=tip)
    return v[key]


def _within(v: dict[str, Any], key: str, low: int, high: int, what: str) -> int:
    """v[key] as an int from `low` to `high`; `what` says what to give instead."""
    if not low <= int(v[key]) <= high:
        raise ConfigError(f"visa.{key} = {v[key]!r} is not valid; {what}", tip=f"set INVOKE_VISA_{key.upper()}")
    return int(v[key])


def make_settings(**given: Any) -> Settings:
    """Build settings from `given` `visa.*` values (any subset of DEFAULTS), validated once."""
    v = _values(given, "build")
    installer = _one_of(v, "installer", Installer, "set INVOKE_VISA_INSTALLER=uv (or pass --installer uv)")
    accelerator = _one_of(
        v,
        "accelerator",
        Accelerator,
        "auto probes KVM and falls back to TCG; set INVOKE_VISA_ACCELERATOR (or pass --accelerator)",
    )
    fill = _one_of(v, "fill", Fill, "set INVOKE_VISA_FILL (or pass --fill); see docs/how-an-image-is-made.md")
    compression = _one_of(
        v,
        "compression",
        Compression,
        "zlib unless every QEMU that runs the image is 5.1 or newer; set INVOKE_VISA_COMPRESSION",
    )
    wheelhouse_port = _within(v, "wheelhouse_port", 1024, 65535, "use a free port 1024-65535")
    rebase_days = _within(v, "rebase_days", 0, 366, "use 0-366 days (0: never by age)")
    keep_releases = _within(v, "keep_releases", 1, 1000, "keep 1-1000 releases per spec")
    keep_images = _within(v, "keep_images", 0, 1000, "keep 0 (all) to 1000 qcow2s per spec")
    boots = tuple(name.strip() for name in str(v["datasource_boots"]).split(",") if name.strip())
    if not set(boots) <= set(DATASOURCE_BOOTS):
        raise ConfigError(
            f"visa.datasource_boots = {v['datasource_boots']!r} names {sorted(set(boots) - set(DATASOURCE_BOOTS))}",
            tip=f"name some of {', '.join(DATASOURCE_BOOTS)}, comma-separated, or none",
        )
    disk_size, index_url, index_ca_bundle = v["disk_size"], v["index_url"], v["index_ca_bundle"]
    if not disk_size[:-1].isdigit() or disk_size[-1] not in "MGT":
        raise ConfigError(f"visa.disk_size = {disk_size!r} is not a size like 12G", tip="set INVOKE_VISA_DISK_SIZE")
    for key in ("index_url", "mirror", "security_mirror", "ubuntu_mirror", "ubuntu_security_mirror"):
        if not str(v[key]).startswith(("http://", "https://")):
            raise ConfigError(f"visa.{key} = {v[key]!r} is not a URL", tip=f"e.g. {DEFAULTS[key]}")
    build_proxy.check(str(v["proxy"]), str(v["no_proxy"]))
    if index_url.startswith("http://") and not v["index_allow_http"]:
        raise ConfigError(
            f"visa.index_url = {index_url!r} is plain HTTP: anyone on the way can change what the guest installs",
            tip="use https://, or set INVOKE_VISA_INDEX_ALLOW_HTTP=1 for a trusted network",
        )
    if index_ca_bundle and not Path(index_ca_bundle).is_file():
        raise ConfigError(
            f"visa.index_ca_bundle = {index_ca_bundle!r} is not a file",
            tip="name a PEM bundle, e.g. /etc/ssl/certs/ca-certificates.crt, or leave it empty",
        )
    if fill == "native" and (installer == "pip-index" or v["base_qcow2"]):
        why = "the installer pip-index installs" if installer == "pip-index" else "visa.base_qcow2 is provisioned"
        raise ConfigError(
            f"{why} inside the build VM, but visa.fill is native (filled from the Docker image)",
            tip="set INVOKE_VISA_FILL=guest (or pass --fill guest)",
        )
    build_dir = (workspace() / v["build_dir"]).resolve()
    if not re.fullmatch(r"[A-Za-z0-9._/+@=~-]+", str(build_dir)):
        raise ConfigError(
            f"visa.build_dir = {str(build_dir)!r} holds a character (a comma, space, semicolon, quote, $, ...) that "
            "QEMU's, Packer's or nginx's option strings would split or read: it is refused",
            tip="use a folder path of letters, digits and . _ - / + @ = ~ (INVOKE_VISA_BUILD_DIR)",
        )
    return Settings(
        image_dir=Path(v["image"]),
        build_dir=build_dir,
        installer=installer,
        base_image=v["base_image"],
        mirror=v["mirror"],
        wheelhouse_port=wheelhouse_port,
        accelerator=accelerator,
        base_qcow2=v["base_qcow2"],
        base_qcow2_checksum=v["base_qcow2_checksum"],
        disk_size=disk_size,
        index_url=index_url,
        index_ca_bundle=index_ca_bundle,
        fill=fill,
        compression=compression,
        security_mirror=v["security_mirror"],
        ubuntu_mirror=v["ubuntu_mirror"],
        ubuntu_security_mirror=v["ubuntu_security_mirror"],
        rebase_days=rebase_days,
        releases=v["release_dir"],
        keep_releases=keep_releases,
        keep_images=keep_images,
        index_allow_http=bool(v["index_allow_http"]),
        proxy=str(v["proxy"]),
        no_proxy=str(v["no_proxy"]),
        datasource_boots=boots,
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
    no_keystone: bool


def make_publishing(**given: Any) -> Publishing:
    """Publishing settings from `given` `visa.*` values (any subset of DEFAULTS), validated once."""
    v = _values(given, "publishing")
    visibility = _one_of(
        v,
        "publish_visibility",
        Visibility,
        "shared keeps the image to its project and its members; see docs/nightly-and-publishing.md",
    )
    keep_archived = _within(v, "publish_keep_archived", 0, 100, "keep 0-100 images")
    min_ram_mib = _within(v, "publish_min_ram", 256, 1 << 20, "give MiB, e.g. 2048")
    if v["nightly_promote"] and not v["nightly_publish"]:
        raise ConfigError(
            "visa.nightly_promote is on but visa.nightly_publish is off: nothing would be promoted",
            tip="set INVOKE_VISA_NIGHTLY_PUBLISH=1 too, or turn promotion off",
        )
    return Publishing(
        v["cloud"],
        visibility,
        keep_archived,
        min_ram_mib,
        bool(v["nightly_publish"]),
        bool(v["nightly_promote"]),
        bool(v["publish_no_keystone"]),
    )
