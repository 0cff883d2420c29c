"""The Debian root filesystem every VISA image starts from, made by mmdebstrap from the mirror: the same for
the Docker base (the container double, and the qcow2's filesystem when filled natively) and the base qcow2."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from . import progress
from .build_context import image_packages
from .distros import Distro
from .errors import CommandError, ConfigError
from .process import Runner

#: What a cloud instance needs before provisioning besides its kernel: init, cloud-init (with growpart), ssh,
#: DHCP. The image's own packages (provision/packages.txt) come with them, natively instead of by apt later.
SYSTEM_PACKAGES = (
    "initramfs-tools",
    "systemd-sysv",
    "udev",
    "dbus",
    "kmod",
    "cloud-init",
    "cloud-guest-utils",
    "openssh-server",
    "sudo",
    "locales",
    "ca-certificates",
    "python3",
    "netbase",
    "iproute2",
    "e2fsprogs",
    "procps",
)
#: Like distribution cloud images: the instance's own hostname resolves. The apt sources stay those the image was
#: built from (cloud-init would rewrite them on Ubuntu at the first boot).
CLOUD_CFG = "manage_etc_hosts: true\napt:\n  preserve_sources_list: true"
#: cloud-init's locale module sets en_US.UTF-8 and fails when it was not generated.
LOCALE = "en_US.UTF-8 UTF-8"
#: Run in the finished tree ($1); fixed text only. The hostname is the instance's (cloud-init sets it).
CUSTOMIZE_HOOKS = (
    f"printf '%s\\n' '{CLOUD_CFG}' >\"$1/etc/cloud/cloud.cfg.d/01-visa-base.cfg\"",
    f"printf '%s\\n' '{LOCALE}' >\"$1/etc/locale.gen\"",
    'chroot "$1" locale-gen',
    'rm -f "$1/etc/hostname"',
)


@dataclass(frozen=True)
class Sources:
    """Where a release's packages come from: the release, its -updates and its -security suites. They are
    what mmdebstrap installs from and the image's /etc/apt/sources.list, so instances can upgrade too."""

    distro: Distro
    mirror: str  # e.g. http://deb.debian.org/debian
    security_mirror: str  # e.g. http://deb.debian.org/debian-security
    generation: str = ""  # the base's rebuild period (visa.rebase_days): a new one builds a fresh base
    keyring: str = ""  # the archive keyring mmdebstrap verifies with ("" = the host's, for Debian)

    @property
    def suite(self) -> str:
        return self.distro.codename

    def lines(self) -> tuple[str, ...]:
        components = " ".join(self.distro.components)
        main, updates, security = self.distro.suites
        return (
            f"deb {self.mirror} {main} {components}",
            f"deb {self.mirror} {updates} {components}",
            f"deb {self.security_mirror} {security} {components}",
        )


def packages(distro: Distro) -> tuple[str, ...]:
    """Everything the root filesystem of `distro` installs: its kernel, SYSTEM_PACKAGES, the distribution's own
    and the image's."""
    return tuple(dict.fromkeys((distro.kernel_package, *SYSTEM_PACKAGES, *distro.system_packages, *image_packages())))


def mmdebstrap_argv(sources: Sources, target: Path, *, tar: bool) -> list[str]:
    """mmdebstrap of the VISA root filesystem into `target`: a tar file, or an (empty, mounted) folder."""
    return [
        "mmdebstrap",
        "--variant=minbase",
        *([f"--keyring={sources.keyring}"] if sources.keyring else []),
        *(["--format=tar"] if tar else []),
        f"--include={','.join(packages(sources.distro))}",
        *(f"--customize-hook={hook}" for hook in CUSTOMIZE_HOOKS),
        sources.suite,
        str(target),
        *sources.lines(),
    ]


#: apt's words for a package the release does not carry.
MISSING_PACKAGE = re.compile(r"Unable to locate package (\S+)|Package '?([^' ]+?)'? has no installation candidate")


def mmdebstrap(
    sources: Sources, target: Path, *, tar: bool, runner: Runner, timeout: float, env: Mapping[str, str] | None = None
) -> None:
    """Run mmdebstrap of `sources` into `target`; a package the release does not carry is named in one line."""
    names = "visa.ubuntu_mirror, visa.ubuntu_security_mirror" if sources.distro.distribution == "ubuntu" else ""
    mirrors = names or "visa.mirror, visa.security_mirror"
    try:
        argv = mmdebstrap_argv(sources, target, tar=tar)
        runner(argv, timeout=timeout, env=env, on_line=progress.line, tip=f"check that the mirrors answer ({mirrors})")
    except CommandError as error:
        found = (MISSING_PACKAGE.search(line) for line in error.tail)
        missing = sorted({match.group(1) or match.group(2) for match in found if match})
        if not missing:
            raise
        release = f"{sources.distro.distribution} {sources.distro.version} ({sources.suite})"
        raise ConfigError(
            f"{release} has no package {', '.join(missing)}: the root filesystem cannot be made",
            tip="the packages are listed in provision/packages.txt and the release's row of visa_build/distros.py; "
            "name only packages the release carries (apt-cache policy <package> on it), or pick another release",
        ) from error


def key_inputs(sources: Sources) -> tuple[str, ...]:
    """Everything that decides the root filesystem, for the cache keys of what is built from it."""
    return (*sources.lines(), sources.generation, repr(packages(sources.distro)), repr(CUSTOMIZE_HOOKS), "minbase")


def generation(rebase_days: int, now: float) -> str:
    """The rebuild period `now` (seconds since the epoch) falls in; "" when bases are never rebuilt by age."""
    return f"{int(now // (rebase_days * 86400))}x{rebase_days}d" if rebase_days else ""
