"""visa-build tasks: parse flags, build a typed config, call one library function, map errors. The package's one
module that imports invoke: the checkout's tasks.py and the installed `visa-build` command both run `ns`.

Settings live under the `visa` config key: invoke.yaml or INVOKE_VISA_<KEY> variables override them.
"""

from __future__ import annotations

import logging
import shlex
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.program import Program
from invoke.tasks import task

from visa_build import base_qcow2, image_inputs, image_tests, interrupts, jobs, progress, qcow2, resources, runs
from visa_build import doctor as host_doctor
from visa_build import lock_files as locking
from visa_build.double_build import build_container as build_double
from visa_build.double_build import container_tag
from visa_build.errors import ConfigError, VisaBuildError
from visa_build.process import run
from visa_build.settings import DEFAULTS, Publishing, Settings, make_publishing, make_settings
from visa_build.site_repo import DEFAULT_BASE, write_site_repository

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


def _settings(c: Context, **overrides: str | None) -> Settings:
    """The build settings: the `visa.*` config with the task's flags over it. Also sets up the run's logging and
    where its output goes after a hang-up."""
    visa = c.config.visa
    logging.basicConfig(level=logging.DEBUG if visa.debug else logging.WARNING, format="%(name)s: %(message)s")
    given = {**{key: visa[key] for key in visa}, **{k: v for k, v in overrides.items() if v is not None}}
    settings = make_settings(**given)
    runs.use(settings.build_dir)  # from its start, no clean runs beside this run
    interrupts.keep_output_after_hangup(str(settings.log_dir / "hangup.log"))
    return settings


def _publishing(c: Context, cloud: str | None = None) -> Publishing:
    visa = c.config.visa
    return make_publishing(**{key: visa[key] for key in visa} | ({"cloud": cloud} if cloud is not None else {}))


def _checkout() -> Path:
    """visa-build's checkout, which its own test tasks need (an installed visa-build carries no tests/unit)."""
    source = resources.checkout()
    if source is None:
        raise ConfigError(
            "test-unit and test run visa-build's own tests, which an installed visa-build does not carry",
            tip="run them in a checkout of visa-build (./visa-build test); a site's image is tested by test-qcow2 "
            "and test-container",
        )
    return source


def _timed(label: str, job: Callable[[], str]) -> None:
    start = time.monotonic()
    outcome = job()
    progress.note(f"{label}: {outcome} in {time.monotonic() - start:.0f} s")


@task(help={"fix": "install missing packages, fetch Packer when PATH has none from 1.6.6 on, start dockerd"})
def doctor(c: Context, fix: bool = False) -> None:
    """Check this host for what builds need; --fix repairs it."""
    with _user_errors():
        settings = _settings(c)
        free_gib = host_doctor.build_free_gib(settings.disk_size)
        findings = host_doctor.examine(settings.build_dir, free_gib=free_gib)
        if fix:
            host_doctor.fix(findings, build_dir=settings.build_dir, mirror=settings.mirror)
            findings = host_doctor.examine(settings.build_dir, free_gib=free_gib)
        for finding in findings:
            mark = "ok " if finding.ok else "BAD"
            progress.result(f"{mark} {finding.check}: {finding.detail}" + ("" if finding.ok else f"  -> {finding.fix}"))
        if not all(f.ok for f in findings):
            raise Exit("ERROR this host is not ready\nTIP   run ./visa-build doctor --fix", code=1)


@task(help={"image": IMAGE_HELP})
def lock_files(c: Context, image: str | None = None) -> None:
    """Re-resolve the image's hash-pinned lock files from its top-level pins."""
    with _user_errors():
        for path in locking.lock_image(jobs.load_spec(_settings(c, image=image))):
            progress.result(str(path))


INSTALLER_HELP = "uv or pip (default: visa.installer, uv)"


@task(help={"image": IMAGE_HELP, "installer": INSTALLER_HELP})
def build_container(c: Context, image: str | None = None, installer: str | None = None) -> None:
    """Build the container double of the image: the same provisioning as the qcow2."""
    with _user_errors():
        settings = _settings(c, image=image, installer=installer)
        with jobs.image_run(settings, auto_fix=c.config.visa.auto_fix) as spec:
            _timed("build-container", lambda: build_double(spec, settings).tag)
        progress.result(container_tag(spec))


@task(
    help={
        "image": IMAGE_HELP,
        "installer": INSTALLER_HELP,
        "pytest-args": "extra pytest arguments, e.g. '-k kernel -x'",
    }
)
def test_container(c: Context, image: str | None = None, installer: str | None = None, pytest_args: str = "") -> None:
    """Build the container double, boot it with VISA metadata and run the infra suite."""
    with _user_errors():
        settings = _settings(c, image=image, installer=installer)
        start = time.monotonic()
        with jobs.image_run(settings, auto_fix=c.config.visa.auto_fix) as spec:
            report = image_tests.test_container(spec, settings, pytest_args=shlex.split(pytest_args))
        progress.result(
            f"PASSED test-container {report.tag}: id {report.instance_id}, owner {report.owner}, "
            f"server answered {report.seconds_to_status:.0f} s after boot; suite {report.suite.summary} "
            f"({report.suite.seconds:.0f} s); total {time.monotonic() - start:.0f} s"
        )


ACCEL_HELP = "auto (probe KVM, fall back to TCG), kvm or tcg (default: visa.accelerator)"


@task(help={"image": IMAGE_HELP})
def build_base(c: Context, image: str | None = None) -> None:
    """Build (or verify the cached) base qcow2 of in-guest builds from the mirror."""
    with _user_errors():
        settings = _settings(c, image=image)
        with jobs.image_run(settings, auto_fix=c.config.visa.auto_fix, buildable=False) as spec:
            path = base_qcow2.ensure_base_qcow2(image_inputs.sources(spec, settings), settings.cache_dir)
        progress.result(str(path))


@task(
    help={
        "image": IMAGE_HELP,
        "installer": "uv, pip or pip-index (default: visa.installer, uv)",
        "accelerator": ACCEL_HELP,
        "fill": "native (Docker image, one boot) or guest (installed under QEMU); default: visa.fill",
    }
)
def build_qcow2(
    c: Context,
    image: str | None = None,
    installer: str | None = None,
    accelerator: str | None = None,
    fill: str | None = None,
) -> None:
    """Build the VISA qcow2 of the image, every step cached by content.

    Filled natively (the default): the double's filesystem is copied onto a disk and sealed by one Packer boot.
    Filled in the guest: Packer stages install it under QEMU."""
    with _user_errors():
        settings = _settings(c, image=image, installer=installer, accelerator=accelerator, fill=fill)
        start = time.monotonic()
        with jobs.image_run(settings, auto_fix=c.config.visa.auto_fix) as spec:
            built = qcow2.build_qcow2(spec, settings)
        progress.note(f"build-qcow2: {'cached' if built.cached else 'built'} in {time.monotonic() - start:.0f} s")
        progress.result(str(built.path))


@task(
    help={
        "image": IMAGE_HELP,
        "accelerator": ACCEL_HELP,
        "qcow2": "test this qcow2 instead of building the image's (it is never changed)",
        "pytest-args": "extra pytest arguments, e.g. '-k kernel -x'",
        "datasource-boots": "boot it also through these of VISA's metadata paths, comma-separated, '' for none "
        "(default: visa.datasource_boots, all seven)",
    }
)
def test_qcow2(
    c: Context,
    image: str | None = None,
    accelerator: str | None = None,
    qcow2: str | None = None,
    pytest_args: str = "",
    datasource_boots: str | None = None,
) -> None:
    """Boot the qcow2 with VISA metadata and run the infra and VM suites over ssh."""
    with _user_errors():
        settings = _settings(c, image=image, accelerator=accelerator, datasource_boots=datasource_boots)
        start = time.monotonic()
        with jobs.image_run(settings, auto_fix=c.config.visa.auto_fix, buildable=False) as spec:
            report = image_tests.test_qcow2(
                spec, settings, qcow2=Path(qcow2) if qcow2 else None, pytest_args=shlex.split(pytest_args)
            )
        progress.result(
            f"PASSED test-qcow2 {report.tag}: id {report.instance_id}, owner {report.owner}, "
            f"ssh {report.seconds_to_ssh:.0f} s and /api/status {report.seconds_to_status:.0f} s after boot; "
            f"suite {report.suite.summary} ({report.suite.seconds:.0f} s); total {time.monotonic() - start:.0f} s"
        )


#: The lint gates of test-unit, run with the project's pinned dev tools (pyproject.toml's settings).
LINT_GATES = (["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy"])


@task
def test_unit(c: Context) -> None:
    """Run the lint gates, the unit tests and the Packer template checks (no Docker or QEMU).

    The gates: ruff check, ruff format --check, mypy --strict (the package, tasks.py and the tests). Then
    pytest's default set (tests/unit, tests/packer): unit tests, shellcheck, packer fmt and validate."""
    with _user_errors():
        checkout = _checkout()
        settings = _settings(c)
        jobs.host_ready(settings, auto_fix=c.config.visa.auto_fix, for_tests=True)
        failed = []
        for gate in LINT_GATES:
            with progress.step(" ".join(gate)):
                code = run(
                    [sys.executable, "-m", *gate],
                    timeout=600,
                    cwd=str(checkout),
                    on_line=progress.passthrough,
                    check=False,
                ).returncode
            if code != 0:
                failed.append(" ".join(gate))
        pytest = [sys.executable, "-m", "pytest", f"--visa-build-dir={settings.build_dir}"]  # its Packer is there
        code = run(pytest, timeout=600, cwd=str(checkout), on_line=progress.passthrough, check=False).returncode
        if code != 0:
            failed.append(f"unit tests (pytest exit code {code})")
        if failed:
            raise Exit(
                f"ERROR failed: {', '.join(failed)}\nTIP   `.venv/bin/ruff format .` fixes formatting; "
                "the findings are printed above",
                code=1,
            )


def _spec_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


NIGHTLY_HELP = {
    "image": "image spec folder, repeatable (default: visa.nightly_images)",
    "record-copy": "copy each night's record, without its qcow2, into this folder of its own (a subfolder per spec "
    "when several run)",
}


@task(iterable=["image"], help=NIGHTLY_HELP)
def nightly_build(c: Context, image: list[str] | None = None, record_copy: str = "") -> None:
    """Build and test each image with the archive's updates, and write its release record.

    Each image gets a release record (manifest, changes, SBOM, JUnit) or one line saying nothing changed; exit 1
    when any image failed (its record says why)."""
    with _user_errors():
        failed = jobs.nightly_of(
            image or _spec_list(c.config.visa.nightly_images),
            lambda folder: _settings(c, image=folder),
            _publishing(c),
            auto_fix=c.config.visa.auto_fix,
            record_copy=Path(record_copy) if record_copy else None,
        )
        if failed:
            raise Exit(
                f"ERROR the nightly failed for {', '.join(failed)}\nTIP   each failed record holds "
                "build.json, ERROR.txt, the JUnit files and the logs; when publishing failed, the release "
                "stands and the next nightly (or invoke publish) tries again",
                code=1,
            )


CLOUD_HELP = "a cloud of clouds.yaml (default: visa.cloud, else OS_CLOUD or the OS_* variables)"


@task(
    help={
        "image": IMAGE_HELP,
        "release": "a release name of the image, or a release folder (with a /) (default: the image's latest)",
        "cloud": CLOUD_HELP,
    }
)
def publish_release(c: Context, image: str | None = None, release: str = "", cloud: str | None = None) -> None:
    """Upload a release's qcow2 to Glance as a private candidate.

    The upload is checked against Glance's hash; a release already there changes nothing."""
    with _user_errors():
        jobs.publish_release(jobs.release_folder(_settings(c, image=image), release), _publishing(c, cloud))


@task(
    help={
        "image": IMAGE_HELP,
        "release": "promote the candidate of this release (default: the newest)",
        "cloud": CLOUD_HELP,
    }
)
def promote(c: Context, image: str | None = None, release: str = "", cloud: str | None = None) -> None:
    """Make the image's newest candidate current in Glance.

    It gets visa.publish_visibility; the image it replaces is archived and hidden; visa.publish_keep_archived
    archived images are kept."""
    with _user_errors():
        jobs.promote(jobs.load_spec(_settings(c, image=image)).name, _publishing(c, cloud), release)


def _pytest_step(title: str, args: list[str], build_dir: Path) -> None:
    with _user_errors(), progress.step(title):
        code = run(
            [sys.executable, "-m", "pytest", *args, f"--visa-build-dir={build_dir}"],
            timeout=5400,
            cwd=str(_checkout()),
            on_line=progress.passthrough,
            check=False,
            stop_grace=image_tests.SUITE_STOP_GRACE,
        ).returncode
        if code != 0:
            raise Exit(f"ERROR {title}: failed (pytest exit code {code}); the findings are printed above", code=1)


#: The CI image whose qcow2 `test` also boots through VISA's metadata paths (visa.datasource_boots).
DATASOURCE_BOOTS_IMAGE = "ci-noble"


@task(pre=[test_unit])
def test(c: Context) -> None:
    """Run every test: unit, publishing, both targets of the CI images, the nightly, interrupted runs.

    In order: the unit tests; publishing through real Glance APIs, the CI templates, a build through a
    tinyproxy, a site repository's double built and tested by the installed wheel, and the quick start's set-up
    and a double's build in a Debian 13 and an Ubuntu 24.04 host container; the container double of
    each visa.test_container_images spec end to end, all at once (runs side by side); build and test the qcow2
    of each visa.test_qcow2_images spec (images/ci-trixie and images/ci-noble, whose small data-analysis
    environments fit CI under TCG); the nightly of images/ci twice, publishing its release to Glance
    (tests/nightly: its first night builds and tests images/ci's qcow2 with the archive's updates, the bookworm
    qcow2 of this run); then builds of images/ci stopped by signals in each step (tests/interrupted)."""
    build_dir = _settings(c).build_dir
    _pytest_step(
        "Publishing to real Glance APIs; the CI templates; the build proxy; a site's repository; Debian 13 and "
        "Ubuntu 24.04 build hosts (tests/publish, tests/pipelines, tests/proxy, tests/siterepo, tests/hosts)",
        ["tests/publish", "tests/pipelines", "tests/proxy", "tests/siterepo", "tests/hosts"],
        build_dir,
    )
    specs = c.config.visa.test_container_images
    _pytest_step(
        f"test-container of {specs} side by side (tests/concurrency)",
        ["-s", "tests/concurrency", f"--side-by-side={specs}"],
        build_dir,
    )
    for image in _spec_list(c.config.visa.test_qcow2_images):
        # VISA's metadata paths (Nova's service, a config drive, nocloud-net) for one image only: the desktop
        # one, whose key they also check. The others boot through NoCloud, as before.
        boots = c.config.visa.datasource_boots if Path(image).name == DATASOURCE_BOOTS_IMAGE else ""
        test_qcow2(c, image=image, datasource_boots=boots)
    _pytest_step("The nightly of images/ci, twice, then publishing (tests/nightly)", ["tests/nightly"], build_dir)
    _pytest_step(
        "Builds stopped by SIGTERM and SIGHUP in each step leave nothing behind (tests/interrupted)",
        ["tests/interrupted"],
        build_dir,
    )


@task(help={"caches-only": "delete only build/cache (bases, wheelhouses, fills, stages); keep images and logs"})
def clean(c: Context, caches_only: bool = False) -> None:
    """Remove what interrupted runs left, then build/ except the release records.

    Containers and VMs of dead runs are removed, their mounts and loop devices released, the Docker images of
    visa-build's that rebuilds left untagged removed (--caches-only keeps the doubles of the qcow2s it keeps),
    then caches, images and logs under build/ are deleted (--caches-only: build/cache alone); refused while
    another run uses build/."""
    with _user_errors():
        jobs.clean(_settings(c), caches_only=caches_only)


@task(
    help={
        "directory": "the new repository's folder (absent or empty)",
        "base": f"the visa-build spec its image inherits (default: {DEFAULT_BASE})",
        "name": "its image's name (default: the folder's name)",
    }
)
def init(c: Context, directory: str, base: str = DEFAULT_BASE, name: str | None = None) -> None:
    """Write a site's own repository: a spec inheriting visa-build's, visa-build pinned, CI, a README."""
    with _user_errors():
        folder = Path(directory)
        written = write_site_repository(
            folder,
            name=name if name is not None else folder.resolve().name,
            base=base,
            version=version("visa-build"),
        )
        for path in written:
            progress.result(str(path))


ns = Collection(
    doctor,
    lock_files,
    build_base,
    build_container,
    test_container,
    build_qcow2,
    test_qcow2,
    test_unit,
    test,
    clean,
    init,
)
ns.add_task(nightly_build, name="nightly")
ns.add_task(publish_release, name="publish")
ns.add_task(promote)
ns.configure({"visa": DEFAULTS})


class _Program(Program):
    """invoke's Program for the installed `visa-build` command: reads an invoke.yaml in the current folder (a site's
    repository), as invoke reads the one beside the checkout's tasks.py."""

    def parse_collection(self) -> None:
        super().parse_collection()
        self.config.set_project_location(str(Path.cwd()))
        self.config.load_project()


def main() -> None:
    """The `visa-build` command of an installed visa-build: the tasks of `./visa-build` in a checkout."""
    _Program(namespace=ns, name="visa-build", binary="visa-build", version=version("visa-build")).run()
