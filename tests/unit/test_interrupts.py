"""Stop signals on a real process: the first one stops the run where it is, a shielded cleanup always completes,
later signals are ignored, and SIGHUP's dead terminal does not break the cleanup's output. Then `clean`'s release
of what a killed run left mounted, on real mounts and loop devices."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.helpers import REPO
from visa_build import mounts

# Shielded cleanup with a stop signal sent from outside: it writes "cleaned" when it completed.
SCRIPT = textwrap.dedent(
    """
    import sys, time
    from visa_build import interrupts
    interrupts.install()
    try:
        print("working", flush=True)
        time.sleep(30)
    except interrupts.Interrupted as exc:
        with interrupts.shielded():
            print("cleaning", flush=True)
            time.sleep(float(sys.argv[1]))
            print("cleaned", file=sys.stderr, flush=True)
        sys.exit(exc.exit_code)
    """
)


def start(cleanup_seconds: float, **popen: object) -> subprocess.Popen[str]:
    proc: subprocess.Popen[str] = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(cleanup_seconds)],
        cwd=REPO,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        **popen,  # type: ignore[call-overload]
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "working\n"
    return proc


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_stops_the_run_with_the_shells_exit_code(signum: int) -> None:
    proc = start(0)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 128 + signum, f"{signal.Signals(signum).name}: exit {proc.returncode}, stderr {err!r}"


def test_signals_during_the_cleanup_do_not_cut_it_short() -> None:
    proc = start(3)
    proc.send_signal(signal.SIGTERM)
    assert proc.stdout is not None and proc.stdout.readline() == "cleaning\n"
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        proc.send_signal(signum)
        time.sleep(0.2)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 143, f"the first signal decides the exit code; got {proc.returncode}, stderr {err!r}"


def test_later_signals_are_noted() -> None:
    proc = start(3)
    proc.send_signal(signal.SIGTERM)
    assert proc.stdout is not None and proc.stdout.readline() == "cleaning\n"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert "SIGINT received while cleaning up after SIGTERM" in err, err
    assert "cleaned" in err, f"the cleanup did not complete: {err!r}"


def test_after_sighup_the_cleanup_writes_to_a_closed_terminal_without_failing() -> None:
    proc = start(2)
    assert proc.stdout is not None and proc.stderr is not None
    proc.send_signal(signal.SIGHUP)
    proc.stdout.close()  # the terminal is gone: nobody reads any more
    proc.stderr.close()
    assert proc.wait(timeout=20) == 129, "the cleanup failed writing to the gone terminal"


def test_a_signal_during_a_shielded_cleanup_of_a_normal_run_takes_effect_after_it() -> None:
    script = textwrap.dedent(
        """
        import sys, time
        from visa_build import interrupts
        interrupts.install()
        try:
            with interrupts.shielded():
                print("cleaning", flush=True)
                time.sleep(2)
                print("cleaned", flush=True)
            print("went on after the signal", flush=True)
        except interrupts.Interrupted as exc:
            sys.exit(exc.exit_code)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO,
        text=True,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None and proc.stdout.readline() == "cleaning\n"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert out == "cleaned\n" and proc.returncode == 143, f"exit {proc.returncode}, output {out!r}"


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts and loop devices need root (CI runs as root)")
def test_release_all_under_unmounts_and_detaches_what_a_killed_run_left(tmp_path: Path) -> None:
    build = tmp_path / "build"
    (build / "fill/root/proc").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    disk = build / "disk.raw"
    with disk.open("wb") as handle:
        handle.truncate(8 << 20)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(build / "fill/root")], check=True)
    (build / "fill/root/proc").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(build / "fill/root/proc")], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(outside)], check=True)
    loop = subprocess.run(["losetup", "--find", "--show", str(disk)], check=True, capture_output=True, text=True)
    try:
        released = mounts.release_all_under(build)
        targets = subprocess.run(
            ["findmnt", "--list", "--noheadings", "--output", "TARGET"], capture_output=True, text=True, check=True
        ).stdout.split()
        assert not [m for m in targets if m.startswith(str(build))], f"still mounted under build: {targets}"
        assert str(outside) in targets, "a mount outside the build folder was touched"
        attached = subprocess.run(["losetup", "-j", str(disk)], capture_output=True, text=True).stdout
        assert not attached, f"the loop device is still attached: {attached}"
        assert released == [str(build / "fill/root/proc"), str(build / "fill/root"), loop.stdout.strip()]
    finally:
        subprocess.run(["umount", "--recursive", str(build / "fill/root")], capture_output=True)
        subprocess.run(["umount", str(outside)], capture_output=True)
        subprocess.run(["losetup", "--detach", loop.stdout.strip()], capture_output=True)


def test_output_after_a_hang_up_goes_to_the_run_log_even_before_its_folder_exists(tmp_path: Path) -> None:
    """The run's log folder (build/logs/<run id>/) is made when the terminal goes, if nothing made it before."""
    log = tmp_path / "logs" / "run-1" / "hangup.log"
    script = (
        "from visa_build import interrupts; "
        f"interrupts.keep_output_after_hangup({str(log)!r}); interrupts.detach_terminal(); print('after the hang-up')"
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True, timeout=60)
    assert log.read_text() == "after the hang-up\n"
