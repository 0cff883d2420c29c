"""The crafted doubles of tests/double. Each boots with its own VISA metadata; all of them start right after
collection, in the background, so their boots (one waits 30 s for its owner) overlap each other and the infra
suite. Each test then examines its own double; all are removed when the session ends, or by the next run when
the session is killed (the session is a run of the build folder)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import LATE_SECONDS, image_spec
from visa_build import runs
from visa_build.double_boot import RunningDouble, keep_journal, running_double
from visa_build.seed import NO_PAM_KEY, nocloud_seed, random_instance_id, visa_meta

#: The case of the double whose owner account is created late (test_owner_created_30s_late_is_served).
LATE_OWNER = "owner created 30s late"
#: The cases of a desktop image's crafted doubles (tests/double/test_desktop_metadata.py): booted only for one.
NO_DESKTOP_METADATA = "desktop: no pamPublicKey, no keyboardLayout"
NOT_PEM = "desktop: pamPublicKey not a PEM key"
DESKTOP_KEYS = ("pamPublicKey", "keyboardLayout")


@dataclass(frozen=True)
class Boot:
    meta: dict[str, str]
    create_user: str
    delay: int = 1  # seconds into cloud-final before the owner account is created


def crafted_boots() -> dict[str, Boot]:
    """Every crafted double by case: bad metadata of each kind (parameter `case` of test_bad_metadata_refused)
    and the owner created late."""
    meta = visa_meta(random_instance_id(), "visauser")
    bad = {
        "owner missing": {k: v for k, v in meta.items() if k != "owner"},
        "id missing": {k: v for k, v in meta.items() if k != "id"},
        "id 12a": {**meta, "id": "12a"},
        "id ../1": {**meta, "id": "../1"},
        "owner root": {**meta, "owner": "root"},
        "owner daemon": {**meta, "owner": "daemon"},
        "owner x;touch /tmp/pwn": {**meta, "owner": "x;touch /tmp/pwn"},
    }
    boots = {case: Boot(value, create_user="visauser") for case, value in bad.items()}
    boots[LATE_OWNER] = Boot(visa_meta(random_instance_id(), "lateowner"), create_user="lateowner", delay=LATE_SECONDS)
    # A desktop image's metadata without pamPublicKey and keyboardLayout, and with a key that is not PEM.
    bare = {k: v for k, v in visa_meta(random_instance_id(), "visauser").items() if k not in DESKTOP_KEYS}
    boots[NO_DESKTOP_METADATA] = Boot(bare, create_user="visauser")
    boots[NOT_PEM] = Boot(
        visa_meta(random_instance_id(), "visauser", pam_public_key=NO_PAM_KEY), create_user="visauser"
    )
    return boots


@dataclass
class Fleet:
    doubles: dict[str, RunningDouble]  # by case
    stack: contextlib.ExitStack


FLEET = pytest.StashKey[Fleet]()


def _cases(items: list[pytest.Item]) -> set[str]:
    """The crafted cases the collected tests use."""
    cases = set()
    for item in items:
        params = getattr(item, "callspec", None)
        if params is not None and "case" in params.params and "crafted" in getattr(item, "fixturenames", ()):
            cases.add(params.params["case"])
        if "late_double" in getattr(item, "fixturenames", ()):
            cases.add(LATE_OWNER)
    return cases


def pytest_collection_finish(session: pytest.Session) -> None:
    image = session.config.getoption("--visa-image")
    cases = _cases(session.items)
    if image_spec(session.config).desktop is None:
        cases -= {NO_DESKTOP_METADATA, NOT_PEM}
    if not image or not cases:
        return
    log_dir = Path(session.config.getoption("--visa-log-dir"))
    # The doubles carry this session's run id: registered, the next run removes them when pytest is killed.
    runs.register(Path(session.config.getoption("--visa-build-dir")))
    stack = contextlib.ExitStack()
    doubles = {}
    try:
        for case, boot in crafted_boots().items():
            if case in cases:
                seed = nocloud_seed(boot.meta, create_user=boot.create_user, create_after_s=boot.delay)
                double = stack.enter_context(running_double(image, seed, log_dir=log_dir, purpose="boot"))
                doubles[case] = double
    except BaseException:
        stack.close()
        raise
    session.config.stash[FLEET] = Fleet(doubles, stack)


def pytest_sessionfinish(session: pytest.Session) -> None:
    fleet = session.config.stash.get(FLEET, None)
    if fleet is not None:
        fleet.stack.close()


def _fleet(config: pytest.Config) -> Fleet:
    fleet = config.stash.get(FLEET, None)
    if fleet is None:
        pytest.skip("boots its own container doubles: pass --visa-image (invoke test-container does)")
    return fleet


@pytest.fixture
def crafted(pytestconfig: pytest.Config, request: pytest.FixtureRequest) -> Iterator[Callable[[str], RunningDouble]]:
    """crafted(case) -> that case's running double; its journal is kept when the test fails."""
    fleet = _fleet(pytestconfig)
    used: list[RunningDouble] = []

    def lookup(case: str) -> RunningDouble:
        if case not in fleet.doubles and case in (NO_DESKTOP_METADATA, NOT_PEM):
            pytest.skip("the image spec has no [desktop]: no remote desktop to examine")
        used.append(fleet.doubles[case])
        return used[-1]

    yield lookup
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for double in used:
            keep_journal(double.container, double.name, Path(pytestconfig.getoption("--visa-log-dir")))


@pytest.fixture
def late_double(crafted: Callable[[str], RunningDouble]) -> RunningDouble:
    return crafted(LATE_OWNER)
