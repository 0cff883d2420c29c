"""The release's CycloneDX SBOM (cyclonedx-python-lib): every Debian package as pkg:deb/debian/...,
every package of both Python environments as pkg:pypi/... with its wheel's sha256, and the site's own files (CA
certificates, overlay files, build scripts, boot hooks; its .debs are Debian packages) with their sha256."""

from __future__ import annotations

from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from ..distros import DISTROS
from .manifest import Manifest, system_part


def bom(manifest: Manifest) -> Bom:
    document = Bom()
    system = system_part(manifest)
    distro = DISTROS[system["release"]]
    root = Component(name=manifest["image"], type=ComponentType.OPERATING_SYSTEM, bom_ref=manifest["image"])
    document.metadata.component = root
    for name, version in sorted(system["packages"].items()):
        package, _, arch = name.partition(":")
        purl = PackageURL(
            "deb",
            distro.distribution,
            package,
            version,
            qualifiers={"distro": distro.purl_distro, **({"arch": arch} if arch else {})},
        )
        document.components.add(
            Component(name=package, version=version, type=ComponentType.LIBRARY, purl=purl, bom_ref=purl.to_string())
        )
    for prefix, packages in sorted(manifest["python"].items()):
        for name, entry in sorted(packages.items()):
            purl = PackageURL("pypi", None, name, entry["version"])
            hashes = [HashType(alg=HashAlgorithm.SHA_256, content=entry["sha256"])] if entry["sha256"] else []
            document.components.add(
                Component(
                    name=name,
                    version=entry["version"],
                    type=ComponentType.LIBRARY,
                    purl=purl,
                    hashes=hashes,
                    bom_ref=f"{purl.to_string()}#{prefix}",
                    properties=[Property(name="visa:environment", value=prefix)],
                )
            )
    for kind, name, digest in _site_files(manifest):
        document.components.add(
            Component(
                name=name,
                type=ComponentType.FILE,
                hashes=[HashType(alg=HashAlgorithm.SHA_256, content=digest)],
                bom_ref=f"site-{kind}:{name}",
                properties=[Property(name="visa:site", value=kind)],
            )
        )
    document.register_dependency(root, list(document.components))  # the image holds every package
    return document


def _site_files(manifest: Manifest) -> list[tuple[str, str, str]]:
    """(kind, name, sha256) of the site's own files in the image: its CA certificates and [layers] files."""
    site = manifest.get("site", {})  # records written before [site] existed have none
    files = [("ca-certificate", name, digest) for name, digest in sorted(site.get("ca_certificates", {}).items())]
    for kind, named in sorted(site.get("layers", {}).items()):
        files += [(kind, name, digest) for name, digest in sorted(named.items()) if kind != "deb"]
    return files


def to_json(manifest: Manifest) -> str:
    return str(JsonV1Dot6(bom(manifest)).output_as_string(indent=1)) + "\n"
