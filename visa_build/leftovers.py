"""What killed runs left behind (runs.py tells which runs are dead): their VMs and containers are removed;
nothing of a live run, nor any process that is not visa-build's own, is touched."""

from __future__ import annotations

from pathlib import Path

from . import progress, runs, vm
from .docker_engine import remove_containers_of


def reap(build_dir: Path) -> None:
    """Register this run, then remove the VMs and containers of every dead run of `build_dir`."""
    runs.register(build_dir)
    for run_id in runs.dead_runs(build_dir):
        vms, containers = vm.stop_vms(run_id), remove_containers_of(run_id)
        if vms or containers:
            progress.note(f"removed {vms} VM(s) and {containers} container(s) left by the interrupted run {run_id}")
        runs.forget(build_dir, run_id)
