"""The jobs users run: build the container double, test it; composed from the modules beside this one."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from . import base, context, progress, render
from .config import ImageSpec
from .container import build_image, remove_leftovers, running_double, wait_for_status
from .errors import ConfigError, ImageTestError
from .process import run
from .proxy import reverse_proxy
from .seed import nocloud_seed, random_instance_id, visa_meta
from .settings import Settings
from .wheelhouse import ensure_wheelhouse, serving

REPO = context.REPO
#: How long the double may take from start to answering /jupyter/<id>/api/status.
SERVER_START_TIMEOUT = 300


def check_buildable(spec: ImageSpec) -> None:
    blockers = spec.build_blockers()
    if blockers:
        raise ConfigError(
            f"the image spec {spec.directory} cannot be built here:\n" + "\n".join(f"  - {b}" for b in blockers),
            tip="build images/visa-jupyter, or adapt the spec (see README, Image specs)",
        )


def container_tag(spec: ImageSpec) -> str:
    return f"visa-build/{spec.name}:latest"


def build_container(spec: ImageSpec, settings: Settings) -> str:
    """Build the container double of `spec`; returns its tag. Unchanged stages come from Docker's cache."""
    check_buildable(spec)
    base_image = settings.base_image or base.ensure_base_image(spec.debian, settings.mirror, settings.cache_dir)
    wheelhouse = ensure_wheelhouse(spec, settings.cache_dir)
    build_context = context.prepare(spec, settings.build_dir / "context" / spec.name)
    tag = container_tag(spec)
    with (
        serving(wheelhouse, port=settings.wheelhouse_port) as url,
        progress.step(f"Building container image {tag}"),
    ):
        env = render.provision_env(spec, target="container", wheelhouse_url=url, installer=settings.installer)
        build_image(build_context, tag, {"BASE_IMAGE": base_image, **env},
                    log_path=settings.log_dir / f"docker-build-{spec.name}.log")  # fmt: skip
    return tag


@dataclass(frozen=True)
class TestReport:
    tag: str
    instance_id: str
    owner: str
    seconds_to_status: float


def test_container(spec: ImageSpec, settings: Settings, *, pytest_args: list[str]) -> TestReport:
    """Build the double, boot it with VISA-shaped metadata and run tests/infra and tests/boot against it."""
    tag = build_container(spec, settings)
    stale = remove_leftovers()
    if stale:
        progress.note(f"removed {stale} container(s) left by an interrupted run")
    instance_id, owner = random_instance_id(), "visauser"
    seed = nocloud_seed(visa_meta(instance_id, owner), create_user=owner)
    logs = settings.log_dir
    with running_double(tag, seed, log_dir=logs, purpose="suite") as double:
        status_url = f"http://{double.address}:{spec.service.port}/jupyter/{instance_id}/api/status"
        with progress.step(f"Booting {double.name} (id {instance_id}, owner {owner} created late) until {status_url}"):
            waited = wait_for_status(status_url, timeout=SERVER_START_TIMEOUT)
        with reverse_proxy(f"{double.address}:{spec.service.port}", workdir=settings.build_dir / "proxy") as url:
            argv = [sys.executable, "-m", "pytest", str(REPO / "tests/infra"), str(REPO / "tests/boot"),
                    f"--hosts=docker://{double.name}", f"--jupyter-url={url}", f"--visa-image={tag}",
                    f"--image-spec={spec.directory}", f"--visa-log-dir={logs}", *pytest_args]  # fmt: skip
            with progress.step("Running the infra suite (tests/infra, tests/boot)"):
                result = run(argv, timeout=3600, cwd=str(REPO), on_line=progress.passthrough, check=False)
            if result.returncode != 0:
                raise ImageTestError(
                    f"the infra suite failed against {double.name} (pytest exit code {result.returncode})",
                    tip=f"the double's journal is kept under {logs}; rerun one test with -k",
                )
    return TestReport(tag, instance_id, owner, waited)
