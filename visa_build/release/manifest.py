"""An image's manifest, read from the image itself (the facts tests/infra/probe.py gathered in the booted VM)
and the wheelhouse it was installed from: Debian packages, both Python environments with the sha256 of each
wheel, kernelspecs and JupyterLab extensions. Its JSON is canonical: the same image gives the same bytes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..distros import DISTROS, Distro
from ..errors import VisaBuildError
from ..image_spec import normalise

Manifest = dict[str, Any]
ENVIRONMENTS = ("/opt/visa/jupyter/jupyterlab", "/opt/visa/envs/data-analysis")


def wheel_digests(wheelhouse: Path) -> dict[tuple[str, str], tuple[str, str]]:
    """{(normalised name, version): (wheel file, sha256)} from the wheelhouse's SHA256SUMS."""
    found = {}
    for line in (wheelhouse / "SHA256SUMS").read_text().splitlines():
        digest, _, name = line.partition("  ")
        if name.endswith(".whl"):
            project, version = name.split("-")[:2]
            found[(normalise(project), version)] = (name, digest)
    return found


def parse_labextensions(listing: str) -> dict[str, Any]:
    """`jupyter labextension list` as {"installed": {name: {version, enabled}}, "disabled": [names]}."""
    installed: dict[str, dict[str, Any]] = {}
    disabled: list[str] = []
    in_disabled = False
    for line in listing.splitlines():
        words = line.split()
        if line.startswith("Disabled extensions:"):
            in_disabled = True
        elif in_disabled and words:
            disabled.append(words[0])
        elif len(words) >= 3 and words[1].startswith("v") and words[2] in ("enabled", "disabled"):
            installed[words[0]] = {"version": words[1][1:], "enabled": words[2] == "enabled"}
    return {"installed": installed, "disabled": sorted(disabled)}


def _fact(facts: dict[str, Any], name: str) -> Any:
    value = facts.get(name)
    if value is None or (isinstance(value, dict) and set(value) == {"error"}):
        raise VisaBuildError(
            f"the image's {name} could not be read for the manifest: {value}",
            tip="see the test suite's output of the booted VM",
        )
    return value


def from_facts(image: str, distro: Distro, facts: dict[str, Any], wheelhouse: Path) -> Manifest:
    """The manifest of the `distro` image whose booted VM gave `facts`, its wheels found in `wheelhouse`."""
    wheels = wheel_digests(wheelhouse)
    python: dict[str, dict[str, dict[str, str]]] = {}
    for prefix in ENVIRONMENTS:
        python[prefix] = {}
        for name, version in _fact(facts, f"env:{prefix}")["packages"].items():
            wheel, sha256 = wheels.get((normalise(name), version), ("", ""))
            python[prefix][normalise(name)] = {"version": version, "wheel": wheel, "sha256": sha256}
    return {
        "image": image,
        "system": {
            "distribution": distro.distribution,
            "version": distro.version,
            "release": distro.codename,
            "packages": dict(_fact(facts, "debian_packages")),
        },
        "python": python,
        "kernelspecs": _fact(facts, "kernelspecs"),
        "labextensions": parse_labextensions(_fact(facts, "labextensions")),
        "site": _fact(facts, "site"),
    }


def to_json(manifest: Manifest) -> str:
    return json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def system_part(manifest: Manifest) -> dict[str, Any]:
    """The distribution's packages: `system` (distribution, version, release, packages); a manifest written before
    Ubuntu images had `debian` (release, packages) instead."""
    if "system" in manifest:
        part: dict[str, Any] = manifest["system"]
        return part
    old = manifest["debian"]
    return {"distribution": "debian", "version": DISTROS[old["release"]].version, **old}


def same_image(old: Manifest, new: Manifest) -> bool:
    """Whether two manifests describe the same image, also when `old` was written with a `debian` part."""

    def normal(manifest: Manifest) -> Manifest:
        return {**{k: v for k, v in manifest.items() if k not in ("debian", "system")}, "system": system_part(manifest)}

    return normal(old) == normal(new)


def to_markdown(manifest: Manifest) -> str:
    """The manifest for people: one table per part."""
    system = system_part(manifest)
    lines = [
        f"# Manifest of {manifest['image']}",
        "",
        f"## {system['distribution'].title()} {system['version']} ({system['release']}) packages",
        "",
        "| package | version |",
        "|---|---|",
    ]
    lines += [f"| {name} | {version} |" for name, version in sorted(system["packages"].items())]
    for prefix, packages in sorted(manifest["python"].items()):
        lines += ["", f"## Python environment {prefix}", "", "| package | version | wheel sha256 |", "|---|---|---|"]
        lines += [
            f"| {name} | {entry['version']} | {entry['sha256'] or '(not from a wheel)'} |"
            for name, entry in sorted(packages.items())
        ]
    lines += ["", "## Kernelspecs", "", "| name | display name | interpreter |", "|---|---|---|"]
    lines += [
        f"| {name} | {spec['display_name']} | {spec['argv0']} |"
        for name, spec in sorted(manifest["kernelspecs"].items())
    ]
    if "site" in manifest:  # records written before [site] existed have none
        site = manifest["site"]
        lines += ["", "## Site settings", "", "| setting | value |", "|---|---|"]
        lines += [f"| time zone | {site['timezone']} |", f"| keyboard | {site['keyboard'] or '(the default)'} |"]
        lines += [f"| NTP servers | {', '.join(site['ntp_servers']) or '(the distribution pool)'} |"]
        lines += [f"| instance proxy | {site.get('proxy') or '(none)'} |"]
        lines += [f"| CA certificate {name} | sha256 {digest} |" for name, digest in site["ca_certificates"].items()]
        for kind, files in sorted(site.get("layers", {}).items()):  # records before [layers] have none
            lines += [f"| site {kind} {name} | sha256 {digest} |" for name, digest in sorted(files.items())]
    lines += ["", "## JupyterLab extensions", "", "| extension | version | enabled |", "|---|---|---|"]
    extensions = manifest["labextensions"]
    lines += [
        f"| {name} | {entry['version']} | {'yes' if entry['enabled'] else 'no'} |"
        for name, entry in sorted(extensions["installed"].items())
    ]
    lines += [
        f"| {name} | (JupyterLab's own) | no (disabled and locked by the spec) |" for name in extensions["disabled"]
    ]
    return "\n".join(lines) + "\n"
