"""What killed runs left behind (runs.py tells which runs are dead): their VMs, containers and scratch folders
(with what is mounted or attached in them) are removed; nothing of a live run, nor any process that is not
visa-build's own, is touched. What another run reaps at the same time is taken as done."""

from __future__ import annotations

import shutil
from pathlib import Path

from . import mounts, progress, runs, vm
from .docker_engine import remove_containers_of
from .errors import VisaBuildError
from .process import Runner, run


def reap(build_dir: Path, *, runner: Runner = run) -> None:
    """Register this run, then remove the VMs, containers and scratch folders of every dead run of `build_dir`."""
    runs.register(build_dir)
    for run_id in runs.dead_runs(build_dir):
        vms, containers = vm.stop_vms(run_id), remove_containers_of(run_id)
        scratch = runs.scratch_of(build_dir, run_id)
        kept = [folder for folder in scratch if not _removed(folder, runner)]
        if vms or containers or scratch:
            progress.note(
                f"removed {vms} VM(s), {containers} container(s) and {len(scratch) - len(kept)} scratch folder(s) "
                f"left by the interrupted run {run_id}"
            )
        if not kept:  # else the next run tries again
            runs.forget(build_dir, run_id)


def _removed(folder: Path, runner: Runner) -> bool:
    """Remove `folder` after releasing what is mounted or attached in it; False (and why) when something stays."""
    try:
        mounts.release_all_under(folder, runner=runner)
    except VisaBuildError as error:
        progress.note(f"kept {folder}: {error}")
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return True
