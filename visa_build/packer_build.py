"""One Packer build of a qcow2: boot a source disk with a throw-away build user, run provisioning scripts from
the build context, seal, and publish the result with its sha256 sidecar; the VM never outlives the build."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from . import accelerator, artefact, interrupts, packer, packer_binary, progress, runs, timings, vm
from .errors import VisaBuildError
from .process import run
from .render import SECRET_ENV
from .seed import Login, build_seed

BUILD_USER = "visa-build"


def build_key_file(qcow2: Path) -> Path:
    """Beside a published qcow2: the public key its build logged in with (tests prove it is gone)."""
    return qcow2.with_name(f"{qcow2.stem}.build-key.pub")


@dataclass(frozen=True)
class PackerJob:
    """What one Packer build boots, runs and writes."""

    name: str  # the build VM's and the qcow2's name, e.g. visa-ci-image
    source: tuple[str, str]  # path or URL of the disk it boots, and its checksum (sha256:<hex>, file:<URL>)
    output: Path  # where the published qcow2 goes
    scripts: tuple[str, ...]  # from provision/, in order
    context_dir: Path
    env: dict[str, str]  # the scripts' VISA_* variables
    compression: str  # "" (an uncompressed intermediate), "zlib" or "zstd"
    title: str  # how progress names this build
    expected: float | None = None  # seconds the same build took last time, for the ETA


def build(
    job: PackerJob, *, accel: accelerator.Accel, disk_size: str, build_dir: Path, log_dir: Path, cache_dir: Path
) -> None:
    """Run `job` with Packer; its qcow2 is published at job.output with the build's public key beside it."""
    work = private_folder(build_dir / "packer" / job.output.stem)
    try:
        private_key, public = vm.keypair(work)
        seed_dir = vm.write_seed(build_seed(Login(BUILD_USER, public), name=job.name), work / "seed")
        log_dir.mkdir(parents=True, exist_ok=True)
        serial_log = log_dir / f"packer-{job.name}-serial.log"
        packer_log = log_dir / f"packer-{job.name}.log"
        serial_log.unlink(missing_ok=True)
        values: dict[str, packer.VarValue] = {
            "image_name": job.name,
            "base_image": job.source[0],
            "base_image_checksum": job.source[1],
            "accelerator": accel.name,
            "disk_size": disk_size,
            "output_directory": str(work / "out"),
            "seed_dir": str(seed_dir),
            "build_user": BUILD_USER,
            "vm_name": vm.vm_name(job.name),
            "ssh_private_key_file": str(private_key),
            "ssh_timeout": f"{5 * accel.slowdown}m",
            "serial_log": str(serial_log),
            "compress": bool(job.compression),
            "compression": job.compression or "zlib",
            "context_dir": str(job.context_dir),
            "provision_scripts": list(job.scripts),
            "provision_env": {name: value for name, value in job.env.items() if name not in SECRET_ENV},
            "provision_secrets": {name: value for name, value in job.env.items() if name in SECRET_ENV},
        }
        var_path = write_private(work / f"{job.name}.pkrvars.hcl", packer.var_file(values))
        program = packer_binary.choose(build_dir)
        produced = _run_packer(
            program.path,
            _templates(work, program),
            var_path,
            accel,
            packer_log,
            serial_log,
            cache_dir / "packer",
            title=job.title,
            expected=job.expected,
        )
        qcow2 = work / "out" / f"{job.name}.qcow2"
        if str(qcow2) not in produced or not qcow2.is_file():
            raise VisaBuildError(
                f"Packer finished but produced no qcow2 (artefacts: {produced or 'none'})",
                tip=f"see {packer_log} and {serial_log}",
            )
        output = job.output
        with progress.step(f"Publishing {output.name} (sha256 sidecar, Packer manifest)"):
            output.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(work / "out" / "packer-manifest.json", output.with_name(f"{output.stem}.manifest.json"))
            build_key_file(output).write_text(public + "\n")
            artefact.store(qcow2, output)
    finally:
        with interrupts.shielded():
            shutil.rmtree(work, ignore_errors=True)  # the private key, the seed, a half-written qcow2
            vm.stop_vms(runs.RUN_ID)  # Packer stops its VM; this catches one it left when it was killed


def private_folder(path: Path) -> Path:
    """`path` made afresh, 0700 from its creation: it holds the var file with the index's credentials and the
    build's private key."""
    shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.mkdir(mode=0o700)
    return path


def write_private(path: Path, text: str) -> Path:
    """`text` in a new file `path`, 0600 from its creation (never readable by others, not even for a moment)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def _templates(work: Path, program: packer_binary.Packer) -> Path:
    """The template folder to run: packer/ itself, or a copy with the plugin block for Packer >= 1.7."""
    if not packer.needs_plugin_block(program.version):
        return packer.TEMPLATES
    staged = work / "templates"
    staged.mkdir()
    for template in packer.TEMPLATES.glob("*.pkr.hcl"):
        shutil.copyfile(template, staged / template.name)
    shutil.copyfile(packer.PLUGINS_FILE, staged / packer.PLUGINS_FILE.name)
    run(
        packer.init_argv(program.path, staged),
        timeout=600,
        on_line=progress.line,
        tip="packer init needs the plugin registry",
    )
    return staged


def _run_packer(
    program: str,
    templates: Path,
    var_path: Path,
    accel: accelerator.Accel,
    packer_log: Path,
    serial_log: Path,
    cache: Path,
    *,
    title: str,
    expected: float | None,
) -> list[str]:
    """Run packer build with its steps shown as they come, each with the time elapsed (and the previous build's
    duration when known); returns the files of its artefacts."""
    started = time.monotonic()
    log = packer.BuildLog()
    handler = log.handler(
        on_step=lambda text: progress.note(f"{timings.eta(time.monotonic() - started, expected)} {text}"),
        on_message=lambda text: progress.line(f"{timings.eta(time.monotonic() - started, expected)} {text}"),
    )
    previously = f", about {expected:.0f} s last time" if expected is not None else ""
    with progress.step(f"Building {title} with Packer (QEMU {accel.name}{previously}; logs under {packer_log.parent})"):
        result = run(
            packer.build_argv(program, templates, var_path),
            timeout=2400 * accel.slowdown + 1200,
            env={
                "PACKER_LOG": "1",
                "PACKER_LOG_PATH": str(packer_log),
                "CHECKPOINT_DISABLE": "1",
                "PACKER_CACHE_DIR": str(cache),
            },
            on_line=handler,
            check=False,
        )
        if result.returncode != 0:
            shown = "\n".join(f"    {error}" for error in log.errors[-6:])
            raise VisaBuildError(
                f"packer build failed (exit code {result.returncode}):\n{shown}",
                tip=f"the VM was stopped; see {serial_log} (console) and {packer_log} (Packer)",
            )
    return log.files
