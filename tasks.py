"""visa-build tasks: parse flags, build a typed config, call one library function, map errors.

Settings live under the `visa` config key: invoke.yaml or INVOKE_VISA_<KEY> variables override them.
"""

from __future__ import annotations

import logging
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from visa_build import (
    base_disk,
    double,
    host,
    image_files,
    interrupts,
    leftovers,
    lock,
    nightly,
    pipeline,
    progress,
    publish,
    qcow2,
    runs,
)
from visa_build.config import ImageSpec, load_image_spec
from visa_build.errors import VisaBuildError
from visa_build.process import run
from visa_build.release import record
from visa_build.settings import Publishing, Settings, make_publishing, make_settings

REPO = Path(__file__).resolve().parent
IMAGE_HELP = "image spec folder (default: visa.image, images/visa-jupyter)"


@contextmanager
def _user_errors() -> Iterator[None]:
    """The one boundary where errors meet the user: ERROR and TIP, exit 1; anything else is a bug."""
    interrupts.install()  # Ctrl-C, SIGTERM (a cancelled pipeline) and SIGHUP (a dropped ssh session) clean up
    try:
        yield
    except VisaBuildError as exc:
        raise Exit(f"ERROR {exc}" + (f"\nTIP   {exc.tip}" if exc.tip else ""), code=1) from None
    except KeyboardInterrupt as exc:
        stop = exc if isinstance(exc, interrupts.Interrupted) else interrupts.Interrupted(signal.SIGINT)
        raise Exit(
            f"ERROR stopped by {stop.signal_name}; its VMs, containers, mounts, loop devices and temporary "
            "files were removed, nothing half-written was kept",
            code=stop.exit_code,
        ) from None


def _settings(
    c: Context, image: str | None = None, installer: str | None = None, accelerator: str | None = None,
    fill: str | None = None,
) -> Settings:  # fmt: skip
    visa = c.config.visa
    logging.basicConfig(level=logging.DEBUG if visa.debug else logging.WARNING, format="%(name)s: %(message)s")
    settings = make_settings(
        image=image if image is not None else visa.image,
        build_dir=visa.build_dir,
        installer=installer if installer is not None else visa.installer,
        base_image=visa.base_image,
        mirror=visa.mirror,
        wheelhouse_port=visa.wheelhouse_port,
        accelerator=accelerator if accelerator is not None else visa.accelerator,
        base_qcow2=visa.base_qcow2,
        base_qcow2_checksum=visa.base_qcow2_checksum,
        disk_size=visa.disk_size,
        index_url=visa.index_url,
        index_ca_bundle=visa.index_ca_bundle,
        fill=fill if fill is not None else visa.fill,
        compression=visa.compression,
        security_mirror=visa.security_mirror,
        rebase_days=visa.rebase_days,
        releases=visa.release_dir,
        keep_releases=visa.keep_releases,
        index_allow_http=visa.index_allow_http,
    )
    interrupts.keep_output_after_hangup(str(settings.log_dir / f"hangup-{runs.RUN_ID}.log"))
    return settings


def _publishing(c: Context, cloud: str | None = None) -> Publishing:
    visa = c.config.visa
    return make_publishing(
        cloud=cloud if cloud is not None else visa.cloud,
        visibility=visa.publish_visibility,
        keep_archived=visa.publish_keep_archived,
        min_ram_mib=visa.publish_min_ram,
        nightly_publish=visa.nightly_publish,
        nightly_promote=visa.nightly_promote,
    )


def _ready(c: Context, settings: Settings) -> None:
    host.ensure_ready(settings.build_dir, auto_fix=c.config.visa.auto_fix)
    runs.register(settings.build_dir)


def _timed(label: str, job: Callable[[], str]) -> None:
    start = time.monotonic()
    outcome = job()
    progress.note(f"{label}: {outcome} in {time.monotonic() - start:.0f} s")


@task(help={"fix": "install missing Debian packages and start the Docker engine"})
def doctor(c: Context, fix: bool = False) -> None:
    """Check this host for what visa-build needs (tools, Docker engine, disk); --fix repairs it."""
    with _user_errors():
        settings = _settings(c)
        findings = host.examine(settings.build_dir)
        if fix:
            host.fix(findings)
            findings = host.examine(settings.build_dir)
        for finding in findings:
            mark = "ok " if finding.ok else "BAD"
            progress.result(f"{mark} {finding.check}: {finding.detail}" + ("" if finding.ok else f"  -> {finding.fix}"))
        if not all(f.ok for f in findings):
            raise Exit("ERROR this host is not ready\nTIP   run ./visa-build doctor --fix", code=1)


def _spec(settings: Settings) -> ImageSpec:
    return load_image_spec(REPO / settings.image_dir if not settings.image_dir.is_absolute() else settings.image_dir)


@task(help={"image": IMAGE_HELP})
def lock_files(c: Context, image: str | None = None) -> None:
    """Re-resolve the image's lock files (hash-pinned, for the image's Python) from its top-level pins."""
    with _user_errors():
        spec = _spec(_settings(c, image))
        for path in lock.lock_image(spec):
            progress.result(str(path))


@task(help={"image": IMAGE_HELP, "installer": "uv or pip (default: visa.installer, uv)"})
def build_container(c: Context, image: str | None = None, installer: str | None = None) -> None:
    """Build the container double of the image (Docker): the same provisioning as the qcow2."""
    with _user_errors():
        settings = _settings(c, image, installer)
        spec = _spec(settings)
        double.check_buildable(spec)
        _ready(c, settings)
        with runs.spec_lock(settings.build_dir, spec.name):
            _timed("build-container", lambda: double.build_container(spec, settings).tag)
        progress.result(double.container_tag(spec))


@task(
    help={
        "image": IMAGE_HELP,
        "installer": "uv or pip (default: visa.installer, uv)",
        "pytest-args": "extra pytest arguments, e.g. '-k kernel -x'",
    }
)
def test_container(c: Context, image: str | None = None, installer: str | None = None, pytest_args: str = "") -> None:
    """Build the container double, boot it with VISA metadata and run the infra suite against it."""
    with _user_errors():
        settings = _settings(c, image, installer)
        spec = _spec(settings)
        double.check_buildable(spec)
        _ready(c, settings)
        start = time.monotonic()
        with runs.spec_lock(settings.build_dir, spec.name):
            report = pipeline.test_container(spec, settings, pytest_args=shlex.split(pytest_args))
        progress.result(
            f"PASSED test-container {report.tag}: id {report.instance_id}, owner {report.owner}, "
            f"server answered {report.seconds_to_status:.0f} s after boot; suite {report.suite.summary} "
            f"({report.suite.seconds:.0f} s); total {time.monotonic() - start:.0f} s"
        )


ACCEL_HELP = "auto (probe KVM, fall back to TCG), kvm or tcg (default: visa.accelerator)"


@task(help={"image": IMAGE_HELP})
def build_base(c: Context, image: str | None = None) -> None:
    """Build (or verify the cached) base qcow2 from the Debian mirror: bootable, cloud-init ready."""
    with _user_errors():
        settings = _settings(c, image)
        spec = _spec(settings)
        _ready(c, settings)
        sources = double.image_sources(spec, settings)
        progress.result(str(base_disk.ensure_base_qcow2(sources, settings.cache_dir)))


@task(help={"image": IMAGE_HELP, "installer": "uv, pip or pip-index (default: visa.installer, uv)",
            "accelerator": ACCEL_HELP,
            "fill": "native (Docker image, one boot) or guest (installed under QEMU); default: visa.fill"})  # fmt: skip
def build_qcow2(
    c: Context, image: str | None = None, installer: str | None = None, accelerator: str | None = None,
    fill: str | None = None,
) -> None:  # fmt: skip
    """Build the VISA qcow2: the double's filesystem filled onto a disk and sealed by one Packer boot (or
    installed in the guest); base, wheelhouse and Docker layers are each cached by content."""
    with _user_errors():
        settings = _settings(c, image, installer, accelerator, fill)
        spec = _spec(settings)
        double.check_buildable(spec)
        _ready(c, settings)
        start = time.monotonic()
        with runs.spec_lock(settings.build_dir, spec.name):
            built = qcow2.build_qcow2(spec, settings)
        progress.note(f"build-qcow2: {'cached' if built.cached else 'built'} in {time.monotonic() - start:.0f} s")
        progress.result(str(built.path))


@task(
    help={
        "image": IMAGE_HELP,
        "accelerator": ACCEL_HELP,
        "qcow2": "test this qcow2 instead of building the image's (it is never changed)",
        "pytest-args": "extra pytest arguments, e.g. '-k kernel -x'",
    }
)
def test_qcow2(
    c: Context,
    image: str | None = None,
    accelerator: str | None = None,
    qcow2: str | None = None,
    pytest_args: str = "",
) -> None:
    """Boot the qcow2 (through an overlay) with VISA metadata and run the infra suite and VM tests over ssh."""
    with _user_errors():
        settings = _settings(c, image, accelerator=accelerator)
        spec = _spec(settings)
        _ready(c, settings)
        start = time.monotonic()
        with runs.spec_lock(settings.build_dir, spec.name):
            report = pipeline.test_qcow2(spec, settings, qcow2=Path(qcow2) if qcow2 else None,
                                         pytest_args=shlex.split(pytest_args))  # fmt: skip
        progress.result(
            f"PASSED test-qcow2 {report.tag}: id {report.instance_id}, owner {report.owner}, "
            f"ssh {report.seconds_to_ssh:.0f} s and /api/status {report.seconds_to_status:.0f} s after boot; "
            f"suite {report.suite.summary} ({report.suite.seconds:.0f} s); total {time.monotonic() - start:.0f} s"
        )


#: The lint gates of test-unit, run with the project's pinned dev tools (pyproject.toml's settings).
LINT_GATES = (["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy"])


@task
def test_unit(c: Context) -> None:
    """Run the lint gates (ruff check, ruff format --check, mypy --strict), the unit tests (seconds; no Docker
    or QEMU) and check the Packer templates (packer fmt, validate)."""
    with _user_errors():
        _ready(c, _settings(c))  # installs shellcheck and packer on a fresh host
        failed = []
        for gate in LINT_GATES:
            with progress.step(" ".join(gate)):
                code = run([sys.executable, "-m", *gate], timeout=600, cwd=str(REPO), on_line=progress.passthrough,
                           check=False).returncode  # fmt: skip
            if code != 0:
                failed.append(" ".join(gate))
        code = run([sys.executable, "-m", "pytest", "tests/unit", "tests/packer"], timeout=600, cwd=str(REPO),
                   on_line=progress.passthrough, check=False).returncode  # fmt: skip
        if code != 0:
            failed.append(f"unit tests (pytest exit code {code})")
        if failed:
            raise Exit(f"ERROR failed: {', '.join(failed)}\nTIP   `.venv/bin/ruff format .` fixes formatting; "
                       "the findings are printed above", code=1)  # fmt: skip


def _spec_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


NIGHTLY_HELP = {
    "image": "image spec folder, repeatable (default: visa.nightly_images)",
    "record-copy": "copy each night's record, without its qcow2, here (a subfolder per spec when several run)",
}


@task(iterable=["image"], help=NIGHTLY_HELP)
def nightly_build(c: Context, image: list[str] | None = None, record_copy: str = "") -> None:
    """Nightly: Debian updates in, build and test each image, then a release record (manifest, changes, SBOM,
    JUnit) or one line saying nothing changed; exit 1 when any image failed (its record says why)."""
    with _user_errors():
        failed, publishing = [], _publishing(c)
        folders = image or _spec_list(c.config.visa.nightly_images)
        for folder in folders:
            settings = _settings(c, folder)
            spec = _spec(settings)
            double.check_buildable(spec)
            _ready(c, settings)
            with runs.spec_lock(settings.build_dir, spec.name):
                night = nightly.run_nightly(spec, settings)
            progress.result(night.detail)
            if record_copy:
                copy = Path(record_copy) / (spec.name if len(folders) > 1 else "")
                if night.folder:
                    record.copy_without_image(night.folder, copy)
                else:
                    copy.mkdir(parents=True, exist_ok=True)
                    (copy / "NO-CHANGE.txt").write_text(night.detail + "\n")
            if night.verdict == "failed":
                failed.append(spec.name)
            elif publishing.nightly_publish:
                try:  # the latest release, also when tonight changed nothing: a failed upload is retried
                    _publish(settings.release_dir / spec.name, publishing)
                    if publishing.nightly_promote:
                        _promote(spec.name, publishing)
                except VisaBuildError as error:
                    progress.note(
                        f"ERROR {spec.name}: publishing failed: {error}" + (f"\nTIP   {error.tip}" if error.tip else "")
                    )
                    failed.append(f"{spec.name} (publishing)")
        if failed:
            raise Exit(f"ERROR the nightly failed for {', '.join(failed)}\nTIP   each failed record holds "
                       "build.json, ERROR.txt, the JUnit files and the logs; when publishing failed, the release "
                       "stands and the next nightly (or invoke publish) tries again", code=1)  # fmt: skip


def _publish(folder: Path, publishing: Publishing) -> publish.Release:
    release = publish.read_release(folder)
    conn = publish.connect(publishing.cloud)
    image, uploaded = publish.publish(conn, release, publishing)
    verb = "published" if uploaded else "already in Glance:"
    progress.result(f"{release.spec}: {verb} {release.name} as {image.id} ({publish.state_of(image)})")
    return release


def _promote(spec: str, publishing: Publishing, release: str = "") -> None:
    promotion = publish.promote(publish.connect(publishing.cloud), spec, publishing, release=release)
    current = promotion.current
    progress.result(f"{spec}: current image {current.id} ({current.properties.get('visa_release')}, "
                    f"visibility {current.visibility})")  # fmt: skip
    for image in promotion.archived:
        progress.result(f"{spec}: archived and hid {image.id} ({image.properties.get('visa_release')})")
    for image in promotion.deleted:
        progress.result(f"{spec}: deleted {image.id} (more than visa.publish_keep_archived archived images)")
    for image, why in promotion.kept:
        progress.result(f"{spec}: kept {image.id} past visa.publish_keep_archived: {why}")


CLOUD_HELP = "a cloud of clouds.yaml (default: visa.cloud, else OS_CLOUD or the OS_* variables)"


@task(help={"image": IMAGE_HELP, "release": "a release folder (default: the image's latest release)",
            "cloud": CLOUD_HELP})  # fmt: skip
def publish_release(c: Context, image: str | None = None, release: str | None = None, cloud: str | None = None) -> None:
    """Upload a release's qcow2 to Glance as a private candidate, checked against Glance's hash; a release
    already there changes nothing."""
    with _user_errors():
        settings, publishing = _settings(c, image), _publishing(c, cloud)
        folder = Path(release) if release else settings.release_dir / _spec(settings).name
        _publish(folder, publishing)


@task(help={"image": IMAGE_HELP, "release": "promote the candidate of this release (default: the newest)",
            "cloud": CLOUD_HELP})  # fmt: skip
def promote(c: Context, image: str | None = None, release: str = "", cloud: str | None = None) -> None:
    """Make the image's newest candidate current (visa.publish_visibility), archive and hide the image it replaces,
    keep visa.publish_keep_archived archived images."""
    with _user_errors():
        _promote(_spec(_settings(c, image)).name, _publishing(c, cloud), release)


def _pytest_step(title: str, args: list[str], build_dir: Path) -> None:
    with _user_errors(), progress.step(title):
        code = run([sys.executable, "-m", "pytest", *args, f"--visa-build-dir={build_dir}"], timeout=5400,
                   cwd=str(REPO), on_line=progress.passthrough, check=False).returncode  # fmt: skip
        if code != 0:
            raise Exit(f"ERROR {title}: failed (pytest exit code {code}); the findings are printed above", code=1)


@task(pre=[test_unit])
def test(c: Context) -> None:
    """Run every test: unit tests; publishing through real Glance APIs and the CI templates; the container double
    of each visa.test_container_images spec end to end, all at once (runs side by side); build and test the qcow2
    of each visa.test_qcow2_images spec (images/ci and images/ci-trixie, whose small data-analysis environments
    fit CI under TCG); builds of images/ci stopped by signals in each step (tests/interrupted); then the nightly of
    images/ci twice, publishing its release to Glance (tests/nightly)."""
    build_dir = _settings(c).build_dir
    _pytest_step("Publishing to real Glance APIs; the CI templates (tests/publish, tests/pipelines)",
                 ["tests/publish", "tests/pipelines"], build_dir)  # fmt: skip
    specs = c.config.visa.test_container_images
    _pytest_step(f"test-container of {specs} side by side (tests/concurrency)",
                 ["-s", "tests/concurrency", f"--side-by-side={specs}"], build_dir)  # fmt: skip
    for image in _spec_list(c.config.visa.test_qcow2_images):
        test_qcow2(c, image=image)
    _pytest_step("Builds stopped by SIGTERM and SIGHUP in each step leave nothing behind (tests/interrupted)",
                 ["tests/interrupted"], build_dir)  # fmt: skip
    _pytest_step("The nightly of images/ci, twice, then publishing (tests/nightly)", ["tests/nightly"], build_dir)


@task
def clean(c: Context) -> None:
    """Remove containers and VMs left by interrupted runs, unmount and detach what they left mounted, then delete
    everything under build/ (caches, images, logs); refused while another run uses build/."""
    with _user_errors():
        settings = _settings(c)
        leftovers.reap(settings.build_dir)
        active = runs.live_runs(settings.build_dir)
        if active:
            raise Exit(f"ERROR visa-build runs {', '.join(active)} are using {settings.build_dir}; clean removes "
                       f"nothing while they run\nTIP   wait for them (pids in {runs.runs_dir(settings.build_dir)})",
                       code=1)  # fmt: skip
        with progress.step(f"Removing {settings.build_dir}"):
            for released in image_files.release_all_under(settings.build_dir):
                progress.note(f"released {released}, left by an interrupted run")
            shutil.rmtree(settings.build_dir, ignore_errors=True)


ns = Collection(
    doctor, lock_files, build_base, build_container, test_container, build_qcow2, test_qcow2, test_unit, test, clean
)
ns.add_task(nightly_build, name="nightly")
ns.add_task(publish_release, name="publish")
ns.add_task(promote)
ns.configure(
    {
        "visa": {
            "image": "images/visa-jupyter",
            "build_dir": str(REPO / "build"),
            "installer": "uv",
            "base_image": "",
            "mirror": "http://deb.debian.org/debian",
            "security_mirror": "http://deb.debian.org/debian-security",
            "rebase_days": 7,
            "nightly_images": "images/visa-jupyter,images/visa-jupyter-trixie",
            "release_dir": "",
            "keep_releases": 7,
            "cloud": "",
            "publish_visibility": "shared",
            "publish_keep_archived": 3,
            "publish_min_ram": 2048,
            "nightly_publish": False,
            "nightly_promote": False,
            "wheelhouse_port": 8765,
            "accelerator": "auto",
            "base_qcow2": "",
            "base_qcow2_checksum": "",
            "disk_size": "12G",
            "index_url": "https://pypi.org/simple",
            "index_ca_bundle": "",
            "index_allow_http": False,
            "fill": "native",
            "compression": "zlib",
            "test_container_images": "images/visa-jupyter,images/ci-trixie",
            "test_qcow2_images": "images/ci,images/ci-trixie",
            "auto_fix": True,
            "debug": False,
        }
    }
)
