"""Benchmark: boot to ssh, boot to /jupyter/{id}/api/status, and the service's start counted from the moment
the owner account exists, next to a bare JupyterLab's own start in the same guest.

Usage (as root): .venv/bin/python bench/boot_timing.py [--image images/ci] [--qcow2 FILE]
Without --qcow2 the image is built first (or taken from the cache). Guest times come from the guest's own
journal: useradd's "new user" line and the server's "is running at" line for the service; for the bare
JupyterLab (started with systemd-run as the owner, same venv, config and base_url, after the service is
stopped and the page cache dropped), systemd's "Started" line and the same "is running at" line.
The last lines are the figures.
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from visa_build import image_tests
from visa_build import qcow2 as qcow2_build
from visa_build.image_spec import load_image_spec
from visa_build.process import run
from visa_build.resources import workspace
from visa_build.settings import make_settings

READY = "is running at"
BARE_UNIT = "visa-bench-bare-jupyter"


def guest_output(instance: image_tests.Instance, command: str) -> list[str]:
    return run(instance.guest.ssh_argv(f"sudo sh -c {shlex.quote(command)}"), timeout=120).lines


def journal_time(instance: image_tests.Instance, selector: str, text: str) -> float:
    """Realtime (s) of the first journal line of this boot matching `selector` that contains `text`."""
    lines = guest_output(instance, f"journalctl -b -o short-unix --no-pager {selector}")
    for line in lines:
        if text in line:
            return float(line.split()[0])
    raise SystemExit(f"no journal line with {text!r} ({selector}); journal ends with:\n" + "\n".join(lines[-10:]))


def bare_start_seconds(instance: image_tests.Instance, home: str) -> float:
    """Seconds from systemd starting a bare JupyterLab (as the owner) to its 'is running at' line."""
    venv = "/opt/visa/jupyter/jupyterlab"
    guest_output(instance, "systemctl stop visa-jupyter.service && sync && echo 3 > /proc/sys/vm/drop_caches")
    guest_output(
        instance,
        f"systemd-run --unit={BARE_UNIT} --uid={instance.owner} --working-directory={home} "
        f"-E JUPYTER_PATH=/opt/visa/jupyter/share/jupyter {venv}/bin/jupyter-lab "
        f"--config=/etc/visa/jupyter_server_config.py --ServerApp.base_url=/jupyter/{instance.instance_id}/ "
        f"--ServerApp.root_dir={home}",
    )
    deadline = time.monotonic() + 300 * instance.accel.slowdown
    while time.monotonic() < deadline:
        lines = guest_output(instance, f"journalctl -b -o short-unix --no-pager -u {BARE_UNIT}")
        if any(READY in line for line in lines):
            started = next(float(line.split()[0]) for line in lines if "Started" in line)
            ready = next(float(line.split()[0]) for line in lines if READY in line)
            guest_output(instance, f"systemctl stop {BARE_UNIT}")
            return ready - started
        time.sleep(1)
    raise SystemExit("the bare JupyterLab did not start; journal:\n" + "\n".join(lines[-10:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="images/ci", help="image spec folder (default: images/ci)")
    parser.add_argument("--qcow2", help="boot this qcow2 instead of the image's build")
    args = parser.parse_args()
    spec = load_image_spec((workspace() / args.image).resolve())
    settings = make_settings(
        image=args.image,
    )
    qcow2 = Path(args.qcow2) if args.qcow2 else qcow2_build.build_qcow2(spec, settings).path
    with image_tests.booted_instance(spec, settings, qcow2) as instance:
        owner_at = journal_time(instance, "-t useradd", f"new user: name={instance.owner},")
        ready_at = journal_time(instance, "-u visa-jupyter.service", READY)
        home = guest_output(instance, f"getent passwd {instance.owner} | cut -d: -f6")[0]
        bare = bare_start_seconds(instance, home)
    service = ready_at - owner_at
    print(
        f"{qcow2.name} (QEMU {instance.accel.name}): boot to ssh {instance.seconds_to_ssh:.0f} s, "
        f"boot to /jupyter/{{id}}/api/status {instance.seconds_to_status:.0f} s\n"
        f"service ready {service:.1f} s after the owner exists; bare JupyterLab ready {bare:.1f} s after its start\n"
        f"service - bare = {service - bare:+.1f} s (target <= +2 s)"
    )


if __name__ == "__main__":
    main()
