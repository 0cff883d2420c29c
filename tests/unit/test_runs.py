"""Runs sharing a host (runs.py), with real processes: a killed run is told apart from a live one, work on one
spec waits for the other run with a line saying so, and the lock is re-entrant within a run. What a killed run
left (scratch folders too) is reaped by the next run, also when another reaper was quicker; `clean` never runs
beside another run, registered or still starting."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import docker.errors
import pytest

from tests.helpers import IMAGES, REPO
from visa_build import docker_engine, jobs, leftovers, runs
from visa_build.errors import ConfigError, VisaBuildError
from visa_build.process import Result
from visa_build.settings import make_settings


def other_process(code: str) -> subprocess.Popen[str]:
    """Another visa-build process running `code` (with sys, time, Path and runs imported)."""
    script = f"import sys, time; from pathlib import Path; from visa_build import runs\n{code}"
    return subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def other_run(build_dir: Path, code: str) -> subprocess.Popen[str]:
    """Another visa-build process: registers as a run of `build_dir`, prints its id, then runs `code`."""
    return other_process(f"print(runs.register(Path({str(build_dir)!r})), flush=True)\n{code}")


def test_a_killed_run_is_dead_and_a_live_run_is_not(tmp_path: Path) -> None:
    live, killed = other_run(tmp_path, "time.sleep(60)"), other_run(tmp_path, "time.sleep(60)")
    try:
        live_id, killed_id = live.stdout.readline().strip(), killed.stdout.readline().strip()  # type: ignore[union-attr]
        assert runs.dead_runs(tmp_path) == [], "no run has ended yet"
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait()
        assert runs.dead_runs(tmp_path) == [killed_id], "a run killed with SIGKILL must count as dead"
        assert live_id in runs.live_runs(tmp_path) and killed_id not in runs.live_runs(tmp_path)
    finally:
        live.kill()
        live.wait()


def test_a_run_that_ends_normally_leaves_no_lock_file(tmp_path: Path) -> None:
    ended = other_run(tmp_path, "pass")
    run_id = ended.stdout.readline().strip()  # type: ignore[union-attr]
    assert ended.wait(timeout=60) == 0
    assert not (runs.runs_dir(tmp_path) / f"{run_id}.lock").exists()


@contextlib.contextmanager
def spec_held_by_another_run(build_dir: Path, seconds: int) -> Iterator[None]:
    """Another run holds the spec lock of visa-ci for `seconds` (from when the block starts)."""
    holder = other_run(
        build_dir,
        f"with runs.spec_lock(Path({str(build_dir)!r}), 'visa-ci'):\n"
        f"    print('held', flush=True); time.sleep({seconds})",
    )
    try:
        holder.stdout.readline()  # type: ignore[union-attr]  # its run id
        assert holder.stdout.readline().strip() == "held"  # type: ignore[union-attr]
        yield
    finally:
        holder.kill()
        holder.wait()


def test_the_second_run_of_a_spec_waits_and_says_for_what(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with spec_held_by_another_run(tmp_path, 3):
        started = time.monotonic()
        with runs.spec_lock(tmp_path, "visa-ci"):
            waited = time.monotonic() - started
    assert 1 < waited < 30, f"the second run did not wait for the first (waited {waited:.1f} s)"
    assert "waiting for the other run of spec visa-ci" in capfd.readouterr().err


def test_other_specs_do_not_wait_and_the_lock_is_reentrant(tmp_path: Path) -> None:
    with spec_held_by_another_run(tmp_path, 30):
        started = time.monotonic()
        with runs.spec_lock(tmp_path, "visa-ci-trixie"), runs.spec_lock(tmp_path, "visa-ci-trixie"):
            pass
        assert time.monotonic() - started < 1, "another spec's lock must not wait"


def test_a_lock_held_too_long_is_a_clear_error(tmp_path: Path) -> None:
    lock = tmp_path / "locks" / "spec-visa-ci.lock"
    with spec_held_by_another_run(tmp_path, 30), pytest.raises(VisaBuildError, match="gave up waiting"):  # noqa: SIM117
        with runs.exclusive(lock, "spec visa-ci", timeout=1):
            pass


def test_what_another_reaper_removed_first_counts_as_done(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs reap the same dead run: the lock file, containers and build network the other removed are done,
    not a crash."""
    runs.runs_dir(tmp_path).mkdir()
    (runs.runs_dir(tmp_path) / "0badc0de.lock").symlink_to(tmp_path / "removed")  # listed, gone when opened
    assert runs.dead_runs(tmp_path) == [] and runs.scratch_of(tmp_path, "0badc0de") == []

    class Gone:
        def remove(self, force: bool = False) -> None:
            raise docker.errors.NotFound("No such container or network")

    client = SimpleNamespace(
        containers=SimpleNamespace(list=lambda **_: [Gone()]), networks=SimpleNamespace(list=lambda **_: [Gone()])
    )
    monkeypatch.setattr(docker_engine, "docker_client", lambda: client)
    assert docker_engine.remove_containers_of("0badc0de") == 1


def no_mounts(argv: list[str], **_: object) -> Result:
    """findmnt and losetup on a host where nothing is mounted or attached under the build folder."""
    return Result(argv, 0, ["/", "/proc"] if argv[0] == "findmnt" else [])


def run_with_scratch(build_dir: Path) -> tuple[subprocess.Popen[str], str, Path]:
    """Another run holding a scratch folder of a few bytes (a disk, in a real run) under build_dir/cache."""
    holder = other_run(
        build_dir,
        f"(Path({str(build_dir)!r}) / 'cache').mkdir(exist_ok=True)\n"
        f"scratch = runs.scratch_dir(Path({str(build_dir)!r}) / 'cache', '.fill-')\n"
        "(scratch / 'disk.raw').write_bytes(b'x' * 4096)\n"
        "print(scratch, flush=True); time.sleep(60)",
    )
    run_id = holder.stdout.readline().strip()  # type: ignore[union-attr]
    return holder, run_id, Path(holder.stdout.readline().strip())  # type: ignore[union-attr]


def test_a_killed_runs_scratch_is_removed_by_the_next_run_and_a_live_runs_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(leftovers, "remove_containers_of", lambda run_id: 0)  # no Docker engine in unit tests
    (killed, killed_id, killed_scratch), (live, _, live_scratch) = (
        run_with_scratch(tmp_path),
        run_with_scratch(tmp_path),
    )
    try:
        assert f".fill-{killed_id}-" in killed_scratch.name, "a scratch folder's name must carry its run's id"
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait()
        leftovers.reap(tmp_path, runner=no_mounts)
        assert not killed_scratch.exists(), "the killed run's scratch folder was left"
        assert not (runs.runs_dir(tmp_path) / f"{killed_id}.lock").exists(), "the reaped run was not forgotten"
        assert (live_scratch / "disk.raw").exists(), "a live run's scratch folder was touched"
    finally:
        live.kill()
        live.wait()


def test_a_scratch_folder_that_stays_mounted_is_kept_and_reaped_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(leftovers, "remove_containers_of", lambda run_id: 0)
    killed, killed_id, scratch = run_with_scratch(tmp_path)
    killed.kill()
    killed.wait()

    def busy(argv: list[str], **_: object) -> Result:
        return Result(argv, 0, [str(scratch / "root")] if argv[0] == "findmnt" else [])

    leftovers.reap(tmp_path, runner=busy)
    assert (scratch / "disk.raw").exists(), "a folder was deleted through a mount that stayed"
    assert killed_id in runs.dead_runs(tmp_path), "the run must stay to be reaped again"


def test_clean_refuses_while_a_run_is_starting(tmp_path: Path) -> None:
    build = tmp_path / "build"
    starting = other_process(f"runs.use(Path({str(build)!r})); print('started', flush=True); time.sleep(60)")
    try:
        assert starting.stdout.readline().strip() == "started"  # type: ignore[union-attr]
        (build / "cache").mkdir()
        (build / "cache" / "disk.qcow2").write_text("x")
        with pytest.raises(VisaBuildError, match="a visa-build run that is starting is using"):
            jobs.clean(make_settings(build_dir=str(build)))
        assert (build / "cache" / "disk.qcow2").exists(), "clean removed files of a starting run"
    finally:
        starting.kill()
        starting.wait()


def test_a_run_starting_during_clean_waits_for_it_and_says_so(tmp_path: Path) -> None:
    cleaning = other_process(f"runs.use_alone(Path({str(tmp_path)!r})); print('cleaning', flush=True); time.sleep(3)")
    try:
        assert cleaning.stdout.readline().strip() == "cleaning"  # type: ignore[union-attr]
        started = time.monotonic()
        starting = other_run(tmp_path, "")
        starting.stdout.readline()  # type: ignore[union-attr]  # registered
        waited = time.monotonic() - started
        assert starting.wait(timeout=60) == 0
        assert 1 < waited < 30, f"a run registered while clean held the build folder (after {waited:.1f} s)"
        assert "waiting for the clean of" in starting.stderr.read()  # type: ignore[union-attr]
    finally:
        cleaning.kill()
        cleaning.wait()


def test_the_crafted_doubles_belong_to_a_registered_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/double starts its doubles labelled with the pytest session's run id: that run must be registered in
    the build folder, or nothing reaps the doubles of a killed pytest."""
    from tests.double import conftest as doubles

    build, registered = tmp_path / "build", []

    @contextlib.contextmanager
    def double(image: str, seed: object, **_: object) -> Iterator[object]:
        registered.append((runs.runs_dir(build) / f"{runs.RUN_ID}.lock").exists())
        yield object()

    monkeypatch.setattr(doubles, "running_double", double)
    options = {
        "--visa-image": "visa-build/double:test",
        "--visa-log-dir": str(tmp_path / "logs"),
        "--visa-build-dir": str(build),
        "--image-spec": str(IMAGES / "visa-jupyter"),
    }
    config = SimpleNamespace(getoption=options.__getitem__, stash=pytest.Stash())
    item = SimpleNamespace(callspec=SimpleNamespace(params={"case": "id 12a"}), fixturenames=("crafted",))
    doubles.pytest_collection_finish(cast(pytest.Session, SimpleNamespace(config=config, items=[item])))
    assert registered == [True], "a crafted double was started by a run that is not registered in the build folder"


def test_a_build_folder_the_user_cannot_write_is_named(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "build"
    not_a_folder.write_text("a file where the build folder should be")
    with pytest.raises(ConfigError, match="cannot write the build folder's run records"):
        runs.use(not_a_folder)


def test_a_build_folder_keeps_its_id_and_another_has_its_own(tmp_path: Path) -> None:
    first = runs.build_dir_id(tmp_path / "a")
    assert runs.build_dir_id(tmp_path / "a") == first, "a build folder's id changed between runs"
    assert runs.build_dir_id(tmp_path / "b") != first, "two build folders share an id: each would remove the other's"
    assert sorted(p.name for p in (tmp_path / "a" / "runs").iterdir()) == ["build-dir-id"], "a partial file was left"
