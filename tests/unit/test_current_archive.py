"""A build that reads the archive's state itself goes once more when it fails after a mirror sync changed the
archive (image_inputs.on_current_archive); a failure on an unchanged archive stands as it is."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from visa_build import archive_state, image_inputs, kept_images, qcow2
from visa_build.errors import ConfigError, ToolNotFoundError, VisaBuildError
from visa_build.image_spec import ImageSpec, load_image_spec
from visa_build.resources import workspace
from visa_build.settings import Settings, make_settings

READ = (archive_state.SuiteState("bookworm-security", "http://m/InRelease", "Thu", "ab" * 32),)
SYNCED = (archive_state.SuiteState("bookworm-security", "http://m/InRelease", "Fri", "cd" * 32),)


@pytest.fixture
def spec() -> ImageSpec:
    return load_image_spec(workspace() / "images" / "ci")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(build_dir=str(tmp_path / "build"))


def mirror(monkeypatch: pytest.MonkeyPatch, *answers: Any) -> None:
    """The mirror answers each read of the archive's state with the next of `answers` (an exception is raised)."""
    left = list(answers)

    def read_state(sources: Any) -> Any:
        answer = left.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(archive_state, "read_state", read_state)


class Build:
    """A build that fails `failures` times, then returns the state it was given."""

    def __init__(self, failures: int, error: Callable[[str], VisaBuildError] = VisaBuildError) -> None:
        self.failures, self.error = failures, error
        self.states: list[Any] = []

    def __call__(self, states: Any) -> Any:
        self.states.append(states)
        if len(self.states) <= self.failures:
            raise self.error(f"attempt {len(self.states)}: 45-debian-updates.sh: apt read another state")
        return states


def test_a_failure_after_a_sync_goes_once_more_on_the_new_state(
    spec: ImageSpec, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror(monkeypatch, READ, SYNCED)
    build = Build(failures=1)
    assert image_inputs.on_current_archive(spec, settings, build) == SYNCED
    assert build.states == [READ, SYNCED]


def test_a_failure_on_an_unchanged_archive_stands(
    spec: ImageSpec, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror(monkeypatch, READ, READ)
    build = Build(failures=1)
    with pytest.raises(VisaBuildError, match="attempt 1"):
        image_inputs.on_current_archive(spec, settings, build)
    assert build.states == [READ]


def test_a_second_failure_names_both_and_a_third_attempt_never_comes(
    spec: ImageSpec, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror(monkeypatch, READ, SYNCED)
    build = Build(failures=5)
    with pytest.raises(VisaBuildError) as raised:
        image_inputs.on_current_archive(spec, settings, build)
    assert "attempt 2" in str(raised.value) and "attempt 1" in str(raised.value), raised.value
    assert build.states == [READ, SYNCED]


def test_a_config_error_a_missing_tool_or_an_unreadable_archive_keeps_the_first_error(
    spec: ImageSpec, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for error, raised in (
        (ConfigError, ConfigError),
        (lambda said: ToolNotFoundError(said, "apt install it"), ToolNotFoundError),
    ):
        mirror(monkeypatch, READ)  # a second read would fail the test: the list is empty
        with pytest.raises(raised, match="attempt 1"):
            image_inputs.on_current_archive(spec, settings, Build(failures=1, error=error))
    mirror(monkeypatch, READ, VisaBuildError("the mirror did not answer"))
    with pytest.raises(VisaBuildError, match="attempt 1"):
        image_inputs.on_current_archive(spec, settings, Build(failures=1))


def test_build_qcow2_reading_the_state_itself_builds_again_after_a_sync(
    spec: ImageSpec, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    mirror(monkeypatch, READ, SYNCED)
    built: list[str] = []

    def build_native(spec: ImageSpec, settings: Settings, context_dir: Path, state: str) -> qcow2.Qcow2:
        built.append(state)
        if len(built) == 1:
            raise VisaBuildError("docker build failed: 45-debian-updates.sh")
        return qcow2.Qcow2(tmp_path / f"visa-ci-{state}.qcow2", tmp_path / "key.pub", cached=False)

    monkeypatch.setattr(qcow2, "qcow2_context", lambda spec, settings: tmp_path / "context")
    monkeypatch.setattr(qcow2, "_build_native", build_native)
    monkeypatch.setattr(kept_images, "prune", lambda *args, **kwargs: [])
    qcow2.build_qcow2(spec, settings)
    assert built == [archive_state.state_key(READ), archive_state.state_key(SYNCED)], built
