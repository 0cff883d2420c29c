"""Options shared by the test folders (the tasks pass them; see tests/README.md), and SIGTERM handled as Ctrl-C."""

from __future__ import annotations

import signal
from collections.abc import Generator
from types import FrameType

import pytest

from tests.helpers import REPO, image_spec
from visa_build.image_spec import ImageSpec
from visa_build.settings import DATASOURCE_BOOTS, DEFAULTS


def pytest_configure(config: pytest.Config) -> None:
    # Declared here, not in pyproject.toml: an installed visa-build runs these suites without the checkout's config.
    config.addinivalue_line("markers", "vm_only: needs a booted VM (qcow2); skipped on the container double")
    config.addinivalue_line(
        "markers",
        "double_only: the unit's and systemd's behaviour, the same in the VM; run on the container double only",
    )
    config.addinivalue_line("markers", "slow: boots its own target and takes a minute or more")
    # A stopped run (a cancelled CI job, or visa-build stopping its pytest) tears down the suites' VMs, doubles
    # and servers as Ctrl-C does: pytest finalizes every fixture after a KeyboardInterrupt, not after SIGTERM.
    signal.signal(signal.SIGTERM, _stop_as_ctrl_c)


def _stop_as_ctrl_c(signum: int, frame: FrameType | None) -> None:
    signal.signal(signum, signal.SIG_IGN)  # a second SIGTERM must not cut the teardown short
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("visa-build")
    group.addoption("--jupyter-url", help="base URL that reaches the target's Jupyter server, e.g. through a proxy")
    group.addoption(
        "--image-spec", default=str(REPO / "images/visa-jupyter"), help="image spec the target was built from"
    )
    group.addoption("--visa-image", help="container image of the double (tests/double boot their own doubles)")
    group.addoption("--visa-log-dir", default=str(REPO / "build/logs"), help="where failed targets' logs are kept")
    group.addoption(
        "--visa-target",
        choices=("container", "vm"),
        default="vm",
        help="what the target is: vm_only tests are skipped on the container double",
    )
    group.addoption("--qcow2", help="the qcow2 the booted VM came from (tests/vm inspect it offline)")
    group.addoption("--double-image", help="Docker image of the container double filled into the qcow2 (tests/vm)")
    group.addoption("--visa-facts-out", help="write what probe.py gathered on the target to this JSON file")
    group.addoption("--build-public-key", help="public key the image build logged in with (must be gone)")
    group.addoption("--visa-pam-key", help="private key of the target's pamPublicKey (a [desktop] image's tokens)")
    group.addoption("--guacd-address", help="host:port that reaches the target's guacd (a [desktop] image)")
    group.addoption("--accelerator", default="tcg", help="kvm or tcg: what the suite's own VM boots run under")
    group.addoption(
        "--datasource-boots",
        default=",".join(DATASOURCE_BOOTS),
        help="tests/vm boots the qcow2 through each of these metadata paths (comma-separated; empty: none)",
    )
    group.addoption(
        "--debian-mirror",
        default=DEFAULTS["mirror"],
        help="Debian mirror the tests fetch host tools from (tests/vm's NTP server: Debian 12's chrony)",
    )
    group.addoption("--boot-timeout", type=float, default=600, help="seconds a reboot may take until ssh answers")
    group.addoption(
        "--side-by-side",
        default="images/visa-jupyter,images/ci-trixie,images/ci-noble",
        help="specs tests/concurrency runs test-container of at once (comma-separated)",
    )
    group.addoption(
        "--visa-build-dir",
        default=str(REPO / "build"),
        help="build folder: the nightly reuses its caches; the test Glance is installed in it",
    )


#: Why a test does not run on a target: vm_only tests on the container double, double_only ones on a VM.
NOT_ON = {
    "container": ("vm_only", "vm_only: the container double has no kernel, boot or image of its own"),
    "vm": (
        "double_only",
        "double_only: the same unit under the same systemd as the image's container double, where it runs "
        "(minutes of restarts under TCG)",
    ),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    marker, reason = NOT_ON[config.getoption("--visa-target")]
    for item in items:
        if marker in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def spec(pytestconfig: pytest.Config) -> ImageSpec:
    return image_spec(pytestconfig)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Expose each phase's report on the test item, so fixtures can keep logs of failed tests."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
