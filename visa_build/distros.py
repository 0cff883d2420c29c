"""The distribution releases images are built on (Debian 12 and 13, Ubuntu 24.04), and every fact visa-build needs
about each: the one place to add one. A spec names one by its codename (image.toml [image] release)."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError


@dataclass(frozen=True)
class Distro:
    """A distribution release, e.g. Debian 12 (bookworm)."""

    codename: str  # what image.toml, the archive's suites and apt sources call it, e.g. bookworm
    distribution: str  # debian: Glance's os_distro and the SBOM's purl namespace (pkg:deb/<distribution>/...)
    version: str  # e.g. 12: Glance's os_version and the SBOM's distro qualifier
    python: str  # the release's python3: the interpreter the image's environments use
    glibc: str  # its glibc: which manylinux wheels it accepts (wheelhouse.platform_tags)
    kernel_package: str  # the kernel a cloud instance boots (the base installs it; Glance shows its version)
    system_packages: tuple[str, ...]  # what differs in the base between distributions (network stack, keyring)
    components: tuple[str, ...] = ("main",)  # the archive areas the image installs from
    guacd: bool = False  # the release packages guacd (a [desktop] elsewhere needs a site-built .deb)

    @property
    def suites(self) -> tuple[str, str, str]:
        """The release, its -updates and its -security suites (the last from the security archive)."""
        return (self.codename, f"{self.codename}-updates", f"{self.codename}-security")

    @property
    def purl_distro(self) -> str:
        """The SBOM's distro qualifier, e.g. debian-12."""
        return f"{self.distribution}-{self.version}"


#: Debian's network stack, as its cloud images have it: ifupdown with a DHCP client (cloud-init writes its config).
DEBIAN_NETWORK = ("ifupdown", "isc-dhcp-client")

DISTROS: dict[str, Distro] = {
    distro.codename: distro
    for distro in (
        Distro("bookworm", "debian", "12", "3.11.2", "2.36", "linux-image-cloud-amd64", DEBIAN_NETWORK),
        Distro("trixie", "debian", "13", "3.13.5", "2.41", "linux-image-cloud-amd64", DEBIAN_NETWORK),
        # Ubuntu's cloud images' network stack (netplan rendering for systemd-networkd, resolved), and apt with
        # the archive keyring inside the image (minbase has neither), so instances verify Ubuntu's updates.
        # guacd is in universe.
        Distro(
            "noble",
            "ubuntu",
            "24.04",
            "3.12.3",
            "2.39",
            "linux-image-virtual",
            ("apt", "netplan.io", "systemd-resolved", "ubuntu-keyring"),
            components=("main", "universe"),
            guacd=True,
        ),
    )
}


def distro(codename: str, *, where: str = "[image] release") -> Distro:
    """The release named `codename`; ConfigError listing the known ones otherwise."""
    try:
        return DISTROS[codename]
    except KeyError:
        known = ", ".join(f"{d.codename} ({d.distribution} {d.version})" for d in DISTROS.values())
        raise ConfigError(
            f"{where} = {codename!r} is not a release visa-build knows; known: {known}",
            tip="name one of those releases in image.toml",
        ) from None
