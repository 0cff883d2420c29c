"""Image spec (images/<name>/image.toml and the files it names) -> frozen dataclasses, validated once.

A bad spec raises ConfigError naming the file, the key, the value and what is allowed.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
import zoneinfo
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, cast, get_args

import yaml

from . import build_proxy, distros, site_layers
from .distros import Distro
from .errors import ConfigError
from .resources import project_files
from .site_layers import SiteLayers

ServiceMode = Literal["prod", "dev"]
DesktopSession = Literal["xfce"]

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)")
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
#: An image's name ([image] name): its qcow2's, its container tag's and its release folder's.
SPEC_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
#: A JupyterLab settings plugin id, e.g. @jupyterlab/apputils-extension:notification.
_PLUGIN_ID = re.compile(r"^(@[a-z0-9][\w.-]*/)?[a-z0-9][\w.-]*:[\w.-]+$")
#: An extension (npm package name) or one of its plugins, as `jupyter labextension disable` takes it.
_EXTENSION = re.compile(r"^(@[a-z0-9][\w.-]*/)?[a-z0-9][\w.-]*(:[\w.-]+)?$")


def normalise(name: str) -> str:
    """PEP 503 project name normalisation: 'PeakUtils' and 'peakutils' are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Pin:
    name: str  # normalised
    version: str

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class VenvSpec:
    """The JupyterLab venv: top-level pins (requirements) and the full hash-pinned lock."""

    requirements: Path
    lock: Path
    top_level: tuple[Pin, ...]
    pins: tuple[Pin, ...]  # empty when the lock file does not exist yet


@dataclass(frozen=True)
class LabSettings:
    """Site defaults of JupyterLab: settings overrides (overrides.json) and extensions disabled and locked."""

    overrides: str = "{}"  # JSON text: {plugin id: {setting: value}}
    disabled: tuple[str, ...] = ()


@dataclass(frozen=True)
class DataAnalysisSpec:
    """The data-analysis environment from environment.yml and its lock."""

    environment: Path
    lock: Path
    python: str  # major.minor asked for by environment.yml
    channels: tuple[str, ...]
    conda_packages: tuple[str, ...]  # dependencies that only conda can provide
    top_level: tuple[Pin, ...]
    pins: tuple[Pin, ...]
    display_name: str
    imports: tuple[str, ...] = ()  # modules users rely on; the infra suite imports each one


@dataclass(frozen=True)
class ServiceSpec:
    port: int
    owner_wait_seconds: int
    mode: ServiceMode


@dataclass(frozen=True)
class FromSource:
    """Locked packages published only as sdists that may be built into wheels (image.toml [wheels]), and the
    hash-pinned lock of the tools that build them."""

    packages: tuple[str, ...] = ()  # normalised names
    tools_lock: Path | None = None


@dataclass(frozen=True)
class SiteSettings:
    """A site's settings of the image (image.toml [site]); empty ones leave the distribution's defaults."""

    timezone: str = ""  # a tz database name, e.g. Europe/Paris
    keyboard: str = ""  # VISA's <language>-<country>-<kind>, e.g. fr-fr-azerty: console and desktop default
    ntp_servers: tuple[str, ...] = ()  # chrony's sources, instead of the distribution's pool
    ca_certificates: tuple[Path, ...] = ()  # PEM CA certificates the image trusts beside the system's
    proxy: str = ""  # the instances' HTTP proxy: their environment, apt, JupyterLab and its kernels
    no_proxy: tuple[str, ...] = ()  # hosts instances reach without it, beside their own loopback


@dataclass(frozen=True)
class DesktopSpec:
    """The remote desktop VISA activates an instance by (image.toml [desktop]): xrdp with an XFCE session, guacd,
    VISA's token login. guacd comes from the release, or from a site-built .deb named by path and sha256."""

    session: DesktopSession = "xfce"
    guacd_deb: Path | None = None  # verified against its sha256 when the spec is loaded


@dataclass(frozen=True)
class ImageSpec:
    name: str
    directory: Path
    distro: Distro  # the distribution release the image is built on (distros.py)
    python: str  # full version of the image's interpreter, e.g. 3.11.2
    labextensions: tuple[str, ...]  # source extensions needing a Node build (unsupported)
    jupyterlab: VenvSpec
    data_analysis: DataAnalysisSpec
    service: ServiceSpec
    lab_settings: LabSettings = LabSettings()
    from_source: FromSource = FromSource()
    desktop: DesktopSpec | None = None  # None: no remote desktop layer
    site: SiteSettings = SiteSettings()
    layers: SiteLayers = SiteLayers()  # the site's own layers, before the distribution's updates
    inherits: str = ""  # the project spec a site's spec builds on ([image] inherits), e.g. visa-build:ci

    def build_blockers(self) -> list[str]:
        """Why this spec cannot be built here; empty when it can."""
        reasons = []
        system_python = self.distro.python
        if self.python != system_python:
            reasons.append(
                f"image.toml [image] python = {self.python!r}, but {self.distro.codename} provides Python "
                f"{system_python}; visa-build installs environments with the image's own interpreter"
            )
        if not system_python.startswith(self.data_analysis.python + "."):
            reasons.append(
                f"{self.data_analysis.environment.name} asks for python={self.data_analysis.python}, but the "
                f"image's interpreter is {system_python}"
            )
        if self.data_analysis.conda_packages or self.data_analysis.channels:
            reasons.append(
                f"{self.data_analysis.environment.name} needs conda (channels: "
                f"{', '.join(self.data_analysis.channels) or 'none'}; conda packages: "
                f"{', '.join(self.data_analysis.conda_packages)}); images are built with venv + pip wheels only"
            )
        if self.labextensions:
            reasons.append(
                f"[jupyterlab] labextensions {list(self.labextensions)} need a Node build of JupyterLab; "
                "JupyterLab 4 images use prebuilt extensions shipped in Python packages"
            )
        tools = self.from_source.tools_lock
        if tools and not tools.is_file():
            reasons.append(f"[wheels] build_tools_lock {tools} does not exist (its header says how to make it)")
        for venv, label in ((self.jupyterlab.lock, "JupyterLab"), (self.data_analysis.lock, "data-analysis")):
            if not venv.is_file():
                reasons.append(f"the {label} lock file {venv} does not exist (create it with ./visa-build lock-files)")
        return reasons


def _err(where: str, key: str, value: object, allowed: str) -> ConfigError:
    return ConfigError(f"{where}: {key} = {value!r} is not valid; {allowed}", tip=f"edit {where}")


def _get(table: dict[str, Any], key: str, kind: type, where: str, section: str, default: Any = None) -> Any:
    if key not in table:
        if default is None:
            raise ConfigError(f"{where}: [{section}] {key} is missing", tip=f"add '{key} = ...' under [{section}]")
        return default
    value = table[key]
    if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
        raise _err(where, f"[{section}] {key}", value, f"expected a {kind.__name__}")
    return value


def _spec_path(directory: Path, table: dict[str, Any], key: str, where: str, section: str) -> Path:
    """A file a spec names: it must stay inside the folder of spec folders (images/), also through symlinks.
    Specs of one site may share files (e.g. the JupyterLab pins), but nothing outside that tree is read."""
    value: str = _get(table, key, str, where, section)
    path = directory / value
    if not path.resolve().is_relative_to(directory.resolve().parent):
        raise _err(where, f"[{section}] {key}", value, f"name a file inside {directory.resolve().parent}")
    return path


#: Characters a kernel's display name may not hold: they would be read differently by the shell, JSON and
#: Packer's template engine on the way into the container and the VM (a quote, a backslash, a control
#: character, a template marker).
_UNSAFE_DISPLAY = re.compile(r"[\"'\\`$%]|\{\{|\}\}|[\x00-\x1f\x7f]")


def _display_name(value: str, where: str) -> str:
    if not value.strip() or len(value) > 80 or _UNSAFE_DISPLAY.search(value):
        raise _err(
            where,
            "[data_analysis] display_name",
            value,
            "use 1-80 characters without quotes, backslashes, $, %, `, {{ }} or control characters",
        )
    return value


def _literal(value: str, allowed: Any, where: str, key: str) -> Any:
    choices = get_args(allowed)
    if value not in choices:
        raise _err(where, key, value, f"allowed: {', '.join(choices)}")
    return value


def parse_pins(text: str, where: str, *, require_pinned: bool) -> tuple[Pin, ...]:
    """Pins from a requirements or lock file; every requirement line must be `name==version`."""
    pins: list[Pin] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith(("--hash", "\\", "-")):
            continue
        match = _PIN.match(line)
        if match is None:
            if require_pinned:
                raise ConfigError(
                    f"{where}:{number}: {line!r} is not pinned",
                    tip="write every requirement as name==version (exact pins only)",
                )
            continue
        pins.append(Pin(normalise(match.group(1)), match.group(2)))
    return tuple(pins)


def _read_lock(path: Path, top_level: tuple[Pin, ...]) -> tuple[Pin, ...]:
    if not path.is_file():
        return ()
    text = path.read_text()
    pins = parse_pins(text, str(path), require_pinned=True)
    if "--hash=sha256:" not in text:
        raise ConfigError(f"{path} has no hashes", tip="regenerate it with ./visa-build lock-files")
    locked = {pin.name: pin.version for pin in pins}
    for pin in top_level:
        if locked.get(pin.name) != pin.version:
            raise ConfigError(
                f"{path} is out of date: {pin} is asked for but the lock has "
                f"{pin.name}=={locked.get(pin.name, '(nothing)')}",
                tip="regenerate the lock with ./visa-build lock-files",
            )
    return pins


def _load_lab_settings(lab: dict[str, Any], directory: Path, where: str) -> LabSettings:
    """[jupyterlab] settings (a JSON file of overrides) and disabled_extensions, validated."""
    overrides: dict[str, Any] = {}
    if "settings" in lab:
        path = _spec_path(directory, lab, "settings", where, "jupyterlab")
        try:
            overrides = json.loads(path.read_text())
        except FileNotFoundError:
            raise _err(where, "[jupyterlab] settings", str(path), "name an existing JSON file") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not valid JSON: {exc}", tip=f"fix the JSON in {path}") from None
        if not isinstance(overrides, dict):
            raise ConfigError(
                f"{path} must hold a JSON object {{plugin id: {{setting: value}}}}",
                tip="see images/visa-jupyter/jupyterlab-settings.json",
            )
        for plugin, values in overrides.items():
            if not _PLUGIN_ID.match(plugin):
                raise ConfigError(
                    f"{path}: {plugin!r} is not a JupyterLab settings plugin id",
                    tip="use ids such as @jupyterlab/apputils-extension:notification (Settings > "
                    "Advanced Settings Editor shows them)",
                )
            if not isinstance(values, dict):
                raise ConfigError(
                    f"{path}: {plugin!r} must map to an object of settings, not {values!r}",
                    tip=f'write "{plugin}": {{"setting": value}}',
                )
    disabled = _get(lab, "disabled_extensions", list, where, "jupyterlab", default=[])
    for name in disabled:
        if not (isinstance(name, str) and _EXTENSION.match(name)):
            allowed = "expected extension names or plugin ids such as '@jupyterlab/extensionmanager-extension'"
            raise _err(where, "[jupyterlab] disabled_extensions", name, allowed)
    return LabSettings(json.dumps(overrides, indent=2, sort_keys=True, ensure_ascii=False), tuple(disabled))


def _load_environment(path: Path, lock: Path, display_name: str) -> DataAnalysisSpec:
    where = str(path)
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"{where} does not exist", tip="name an existing file in [data_analysis] environment"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {exc}", tip=f"fix the YAML in {where}") from None
    if not isinstance(document, dict) or not isinstance(document.get("dependencies"), list):
        raise ConfigError(f"{where}: 'dependencies' must be a list", tip="see images/visa-jupyter/environment.yml")
    channels = document.get("channels") or []
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise _err(where, "channels", channels, "expected a list of channel names")
    python = ""
    conda: list[str] = []
    pip_lines: list[str] = []
    for dep in document["dependencies"]:
        if isinstance(dep, dict) and set(dep) == {"pip"} and isinstance(dep["pip"], list):
            pip_lines.extend(str(item) for item in dep["pip"])
        elif isinstance(dep, str) and re.fullmatch(r"python(=+[\d.]+\*?)?", dep.replace(" ", "")):
            python = re.sub(r"^python=+", "", dep.replace(" ", "")).rstrip(".*")
        elif isinstance(dep, str) and dep.strip() == "pip":
            continue
        elif isinstance(dep, str):
            conda.append(dep.strip())
        else:
            raise _err(where, "dependencies entry", dep, "expected a string or a {pip: [...]} mapping")
    if not re.fullmatch(r"\d+\.\d+(\.\d+)?", python):
        raise _err(where, "dependencies python", python or "(missing)", "write e.g. 'python=3.11'")
    top_level = parse_pins("\n".join(pip_lines), f"{where} (pip:)", require_pinned=True)
    return DataAnalysisSpec(
        environment=path,
        lock=lock,
        python=".".join(python.split(".")[:2]),
        channels=tuple(channels),
        conda_packages=tuple(conda),
        top_level=top_level,
        pins=() if conda else _read_lock(lock, top_level),
        display_name=display_name,
    )


def _read_spec(spec_file: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(spec_file.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"no image spec at {spec_file}",
            tip="pass --image with a folder under images/ that has image.toml",
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{spec_file} is not valid TOML: {exc}", tip=f"fix the syntax of {spec_file}") from None


#: How a site's spec names the project spec it builds on: [image] inherits = "visa-build:<folder under images/>".
INHERIT_PREFIX = "visa-build:"
#: What a spec that inherits may set itself; every other key comes from the inherited spec.
SITE_KEYS = {
    "image": ("name", "inherits"),
    "service": ("port", "owner_wait_seconds", "mode"),
    "site": ("timezone", "keyboard", "ntp_servers", "ca_certificates", "proxy", "no_proxy"),
    "layers": site_layers.KEYS,
}


def project_specs() -> list[str]:
    """visa-build's own spec folders (under its images/), by name: what a site's spec may inherit."""
    images = project_files() / "images"
    return sorted(folder.name for folder in images.iterdir() if (folder / "image.toml").is_file())


def inherited_folder(value: object, where: str) -> Path:
    """The project spec folder `value` ("visa-build:<name>") names; ConfigError listing them when it names none."""
    name = value.removeprefix(INHERIT_PREFIX) if isinstance(value, str) else ""
    known = project_specs()
    if not (isinstance(value, str) and value.startswith(INHERIT_PREFIX) and name in known):
        raise _err(where, "[image] inherits", value, "inherit one of " + ", ".join(INHERIT_PREFIX + s for s in known))
    return project_files() / "images" / name


def _inherit(raw: dict[str, Any], where: str) -> tuple[dict[str, Any], Path]:
    """A site spec's tables over those of the project spec it inherits, and the folder the inherited spec's files
    are named from. Only SITE_KEYS may be set by the site."""
    inherits = raw["image"]["inherits"]
    base = inherited_folder(inherits, where)
    refused = []
    for section, table in raw.items():
        if not isinstance(table, dict):
            refused.append(section)
        else:
            refused += [f"[{section}] {key}" for key in table if key not in SITE_KEYS.get(section, ())]
    if refused:
        allowed = ", ".join(f"[{section}] {key}" for section, keys in SITE_KEYS.items() for key in keys)
        raise ConfigError(
            f"{where}: {', '.join(refused)} comes from the inherited spec {inherits} and cannot be set here; a spec "
            f"that inherits sets only {allowed}",
            tip=f"remove {', '.join(refused)} from {where}",
        )
    merged = _read_spec(base / "image.toml")
    for section, table in raw.items():
        merged[section] = {**merged.get(section, {}), **table}
    return merged, base


def load_image_spec(directory: Path) -> ImageSpec:
    """Read and validate images/<name>/image.toml and everything it names (a site's spec that inherits a project
    spec: that spec's, with the site's name and [service] over it)."""
    spec_file = directory / "image.toml"
    where = str(spec_file)
    raw = _read_spec(spec_file)
    inherits = cast(dict[str, Any], raw.get("image", {})).get("inherits", "")
    files = directory  # where the files the spec names are
    site_files = directory  # ... and those of its [site] (a site's own, when it sets [site])
    layer_files = directory  # ... and those of its [layers] (likewise)
    if inherits:
        site_files = directory if "site" in raw else inherited_folder(inherits, where)
        layer_files = directory if "layers" in raw else inherited_folder(inherits, where)
        raw, files = _inherit(raw, where)
    known = {"image", "jupyterlab", "data_analysis", "service", "wheels", "desktop", "site", "layers"}
    for section in raw:
        if section not in known:
            raise _err(where, f"[{section}]", "...", f"known sections: {', '.join(sorted(known))}")
    image = cast(dict[str, Any], raw.get("image", {}))
    name = _get(image, "name", str, where, "image")
    if not SPEC_NAME.fullmatch(name):
        raise _err(where, "[image] name", name, "use lower-case letters, digits and '-'")
    if "debian" in image:
        raise _err(
            where,
            "[image] debian",
            image["debian"],
            f'write distribution = "debian" and release = {image["debian"]!r} instead',
        )
    distro = distros.distro(_get(image, "release", str, where, "image"), where=f"{where}: [image] release")
    distribution = _get(image, "distribution", str, where, "image", default=distro.distribution)
    if distribution != distro.distribution:
        raise _err(where, "[image] distribution", distribution, f"{distro.codename} is a {distro.distribution} release")
    python = _get(image, "python", str, where, "image")
    if not _VERSION.match(python):
        raise _err(where, "[image] python", python, "write the full version, e.g. '3.11.2'")

    lab = cast(dict[str, Any], raw.get("jupyterlab", {}))
    requirements = _spec_path(files, lab, "requirements", where, "jupyterlab")
    if not requirements.is_file():
        raise _err(where, "[jupyterlab] requirements", requirements.name, "name an existing file in the spec folder")
    top_level = parse_pins(requirements.read_text(), str(requirements), require_pinned=True)
    labextensions = _get(lab, "labextensions", list, where, "jupyterlab", default=[])
    lab_lock = _spec_path(files, lab, "lock", where, "jupyterlab")
    pins = () if labextensions else _read_lock(lab_lock, top_level)
    lab_settings = _load_lab_settings(lab, files, where)

    analysis = cast(dict[str, Any], raw.get("data_analysis", {}))
    data_analysis = _load_environment(
        _spec_path(files, analysis, "environment", where, "data_analysis"),
        _spec_path(files, analysis, "lock", where, "data_analysis"),
        _display_name(_get(analysis, "display_name", str, where, "data_analysis", default="Data Analysis"), where),
    )
    imports = _get(analysis, "imports", list, where, "data_analysis", default=[])
    for module in imports:
        if not (isinstance(module, str) and re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", module)):
            raise _err(where, "[data_analysis] imports", module, "expected module names such as 'scipy.optimize'")
    data_analysis = replace(data_analysis, imports=tuple(imports))

    service = cast(dict[str, Any], raw.get("service", {}))
    port = _get(service, "port", int, where, "service", default=8888)
    if not 1 <= port <= 65535:
        raise _err(where, "[service] port", port, "use a TCP port, 1-65535")
    wait = _get(service, "owner_wait_seconds", int, where, "service", default=300)
    if not 0 <= wait <= 3600:
        raise _err(where, "[service] owner_wait_seconds", wait, "use 0-3600 seconds")
    mode = _literal(_get(service, "mode", str, where, "service", default="prod"), ServiceMode, where, "[service] mode")

    return ImageSpec(
        name=name,
        directory=directory,
        distro=distro,
        python=python,
        labextensions=tuple(str(item) for item in labextensions),
        jupyterlab=VenvSpec(requirements, lab_lock, top_level, pins),
        data_analysis=data_analysis,
        service=ServiceSpec(port=port, owner_wait_seconds=wait, mode=mode),
        lab_settings=lab_settings,
        from_source=_load_from_source(cast(dict[str, Any], raw.get("wheels", {})), files, where),
        desktop=_load_desktop(cast(dict[str, Any], raw.get("desktop", {})), distro, files, where),
        site=_load_site(cast(dict[str, Any], raw.get("site", {})), site_files, where),
        layers=site_layers.load(cast(dict[str, Any], raw.get("layers", {})), layer_files, where),
        inherits=inherits,
    )


#: XKB's list of layouts (the host's xkb-data): a [site] keyboard must name one of them.
XKB_RULES = Path("/usr/share/X11/xkb/rules/base.lst")
#: A host name or an IP address chrony can use as a server.
NTP_SERVER = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.:-]*[A-Za-z0-9])?")
PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n?")


def xkb_layout(keyboard: str) -> tuple[str, str] | None:
    """The XKB layout and variant of VISA's <language>-<country>-<kind> (as the image's visa-desktop-metadata
    reads keyboardLayout: the country's layout; French Swiss is ch's fr variant), or None for another form."""
    match = re.fullmatch(r"([a-z]{2})-([a-z]{2})-[a-z]+", keyboard)
    if not match:
        return None
    language, country = match.groups()
    return country, "fr" if (language, country) == ("fr", "ch") else ""


def _xkb_layouts() -> set[str]:
    """The layout names of XKB's rules file (its `! layout` section)."""
    layouts, section = set(), ""
    for line in XKB_RULES.read_text().splitlines():
        if line.startswith("!"):
            section = line[1:].strip()
        elif section == "layout" and line.strip():
            layouts.add(line.split()[0])
    return layouts


def _load_site(table: dict[str, Any], directory: Path, where: str) -> SiteSettings:
    timezone = _get(table, "timezone", str, where, "site", default="")
    if timezone and timezone not in zoneinfo.available_timezones():
        raise _err(where, "[site] timezone", timezone, "name a zone of the tz database, e.g. Europe/Paris")
    keyboard = _get(table, "keyboard", str, where, "site", default="")
    if keyboard:
        layout = xkb_layout(keyboard)
        if layout is None:
            raise _err(
                where, "[site] keyboard", keyboard, "write VISA's <language>-<country>-<kind>, e.g. fr-fr-azerty"
            )
        if layout[0] not in _xkb_layouts():
            raise _err(where, "[site] keyboard", keyboard, f"XKB has no layout {layout[0]!r} (its country part)")
    servers = _get(table, "ntp_servers", list, where, "site", default=[])
    for server in servers:
        if not (isinstance(server, str) and NTP_SERVER.fullmatch(server)):
            raise _err(where, "[site] ntp_servers", server, "name host names or IP addresses, e.g. ntp.example.org")
    certificates = []
    for value in _get(table, "ca_certificates", list, where, "site", default=[]):
        path = _spec_path(directory, {"ca_certificates": value}, "ca_certificates", where, "site")
        text = path.read_text(errors="replace") if path.is_file() else ""
        if not PEM_CERTIFICATE.fullmatch(text.strip() + "\n"):
            raise _err(
                where, "[site] ca_certificates", value, "name files in the spec folder, one PEM certificate each"
            )
        certificates.append(path)
    proxy = _get(table, "proxy", str, where, "site", default="")
    if proxy and not build_proxy.is_proxy_url(proxy):
        raise _err(where, "[site] proxy", proxy, "write http://<host>:<port>, e.g. http://proxy.example.org:3128")
    if build_proxy.without_credentials(proxy) != proxy:
        raise ConfigError(
            f"{where}: [site] proxy holds a user name or password: every user of an instance could read it "
            "(/etc/environment, the kernels' environment)",
            tip="give instances a proxy that needs no password (or one on the instance itself, such as cntlm)",
        )
    no_proxy = _get(table, "no_proxy", list, where, "site", default=[])
    for host in no_proxy:
        if not (isinstance(host, str) and build_proxy.is_host(host)):
            raise _err(where, "[site] no_proxy", host, "name hosts or domains, e.g. .example.org")
    if no_proxy and not proxy:
        raise _err(where, "[site] no_proxy", no_proxy, "set [site] proxy too, or leave no_proxy out")
    return SiteSettings(timezone, keyboard, tuple(servers), tuple(certificates), proxy, tuple(no_proxy))


def _load_desktop(table: dict[str, Any], distro: Distro, directory: Path, where: str) -> DesktopSpec | None:
    if not _get(table, "enabled", bool, where, "desktop", default=False):
        return None
    session = _literal(
        _get(table, "session", str, where, "desktop", default="xfce"), DesktopSession, where, "[desktop] session"
    )
    if "guacd_deb" not in table:
        if not distro.guacd:
            raise ConfigError(
                f"{where}: [desktop] needs guacd, and {distro.distribution} {distro.version} ({distro.codename}) "
                "ships no guacd package",
                tip='name a site-built guacd .deb: guacd_deb = "<file>" and guacd_deb_sha256 = "<sha256>" under '
                "[desktop], or build on Ubuntu 24.04 (noble), which packages guacd",
            )
        return DesktopSpec(session)
    deb = _spec_path(directory, table, "guacd_deb", where, "desktop")
    expected = _get(table, "guacd_deb_sha256", str, where, "desktop")
    if not deb.is_file() or deb.suffix != ".deb":
        raise _err(where, "[desktop] guacd_deb", deb.name, "name an existing .deb file")
    actual = hashlib.sha256(deb.read_bytes()).hexdigest()
    if actual != expected.lower():
        raise ConfigError(
            f"{where}: [desktop] guacd_deb {deb.name} has sha256 {actual}, but guacd_deb_sha256 is "
            f"{expected}: it is not the file the spec names",
            tip="check the file, then its sha256",
        )
    return DesktopSpec(session, deb)


def _load_from_source(wheels: dict[str, Any], directory: Path, where: str) -> FromSource:
    names = _get(wheels, "build_from_source", list, where, "wheels", default=[])
    for name in names:
        if not (isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name)):
            raise _err(where, "[wheels] build_from_source", name, "expected package names such as 'ufit'")
    if not names:
        return FromSource()
    tools_lock = _spec_path(directory, wheels, "build_tools_lock", where, "wheels")
    return FromSource(tuple(sorted({normalise(name) for name in names})), tools_lock)


def require_buildable(spec: ImageSpec) -> None:
    """ConfigError listing what stops `spec` from being built on this host, if anything."""
    blockers = spec.build_blockers()
    if blockers:
        raise ConfigError(
            f"the image spec {spec.directory} cannot be built here:\n" + "\n".join(f"  - {b}" for b in blockers),
            tip="build images/visa-jupyter, or adapt the spec (see docs/image-specs-and-settings.md)",
        )
