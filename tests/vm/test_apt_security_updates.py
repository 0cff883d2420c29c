"""At release time no security update is pending: apt in the booted VM, with fresh lists of the image's own
-security source only, would upgrade nothing. The image ships no apt lists (provision/90-image-cleanup.sh removes
them), so the test fetches them, into a folder of its own, through the archives' proxy that is the test VM's only
way out (visa_build/archive_proxy.py); apt verifies them with the image's own archive keyring and their Valid-Until."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from tests.helpers import Facts
from visa_build import archive_proxy
from visa_build.image_spec import ImageSpec

pytestmark = pytest.mark.vm_only

#: apt in a scratch folder: only the security source's lists, its own caches, the image's installed packages.
SIMULATE = """set -eu
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/parts"
printf '%s\\n' {lines} >"$work/security.list"
apt_options="-o Dir::Etc::SourceList=$work/security.list -o Dir::Etc::SourceParts=$work/parts \
-o Dir::State::Lists=$work/lists -o Dir::Cache=$work/cache -o APT::Sandbox::User=root \
-o Acquire::http::Proxy={proxy}"
apt-get $apt_options -q --error-on=any update >&2
ls "$work/lists" | grep -q '_Packages' || {{ echo "no Packages list of {suite} was fetched" >&2; exit 1; }}
apt-get $apt_options -s --with-new-pkgs upgrade
"""


def test_no_update_from_the_security_suite_is_pending(host: Any, facts: Facts, spec: ImageSpec) -> None:
    suite = spec.distro.suites[2]
    lines = [line for line in facts["apt_sources"] if suite in line.split()]
    assert lines, f"the image's apt sources name no {suite}: {facts['apt_sources']}"
    lines_words = " ".join(shlex.quote(line) for line in lines)
    script = SIMULATE.format(lines=lines_words, suite=suite, proxy=archive_proxy.GUEST_URL)
    with host.sudo():
        result = host.run("bash -c %s", script)
    assert result.rc == 0, f"apt could not read {suite} in the VM (exit {result.rc}):\n{result.stderr[-3000:]}"
    pending = [line for line in result.stdout.splitlines() if line.startswith("Inst ")]
    assert not pending, f"{len(pending)} updates of {suite} are pending in the release: {pending[:20]}"
    assert "kept back" not in result.stdout, f"updates of {suite} are held back:\n{result.stdout[-3000:]}"
