"""What the tasks do, each as one call: the opening every image task shares (its spec loaded and buildable, the
host ready, the run registered, the spec locked against a second run), the nightly over several specs with its
publishing, publishing and promoting a release, and clean."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from . import build_proxy, doctor, leftovers, mounts, nightly, progress, publish, runs
from .docker_engine import remove_untagged_images
from .double_build import recorded_doubles
from .errors import ConfigError, VisaBuildError
from .image_spec import ImageSpec, load_image_spec, require_buildable
from .release import record
from .resources import workspace
from .settings import Publishing, Settings

#: In a night's record copy: the name of the release the night left as the spec's latest.
RELEASE_FILE = "RELEASE.txt"


def load_spec(settings: Settings) -> ImageSpec:
    """The spec of settings.image_dir (a relative folder is under the workspace: the checkout, or the current
    folder when visa-build is installed)."""
    return load_image_spec(workspace() / settings.image_dir)


def host_ready(settings: Settings, *, auto_fix: bool, for_tests: bool = False) -> None:
    """The host has what a run needs (fixed first when `auto_fix`): the tests' tools and the free disk of a whole
    `test` when `for_tests`, else a build's; and this run is registered in build_dir."""
    build_proxy.apply(settings.proxy, settings.no_proxy)  # the run's downloads, and its children's
    free_gib = doctor.TEST_FREE_GIB if for_tests else doctor.build_free_gib(settings.disk_size)
    doctor.ensure_ready(
        settings.build_dir, mirror=settings.mirror, auto_fix=auto_fix, free_gib=free_gib, for_tests=for_tests
    )
    runs.register(settings.build_dir)


@contextlib.contextmanager
def image_run(settings: Settings, *, auto_fix: bool, buildable: bool = True) -> Iterator[ImageSpec]:
    """The opening of every image task: the spec (checked buildable when `buildable`), the host ready, and the
    spec's lock held for the block, so two runs never build or test one spec at once."""
    spec = load_spec(settings)
    if buildable:
        require_buildable(spec)
    host_ready(settings, auto_fix=auto_fix)
    with runs.spec_lock(settings.build_dir, spec.name):
        yield spec


def nightly_of(
    folders: list[str],
    settings_of: Callable[[str], Settings],
    publishing: Publishing,
    *,
    auto_fix: bool,
    record_copy: Path | None,
) -> list[str]:
    """The nightly of each spec folder, then publishing (and promoting) its latest release when configured. One
    spec's failure (any VisaBuildError or OSError, such as a full disk) does not stop the others; returns what
    failed. `record_copy` (a subfolder per spec when several run) is checked before any night runs."""
    if record_copy is not None:
        for folder in folders:
            check_record_copy(record_copy, settings_of(folder))
    failed: list[str] = []
    for folder in folders:
        failed += _night_of(
            folder,
            settings_of(folder),
            publishing,
            auto_fix=auto_fix,
            record_copy=record_copy,
            per_spec=len(folders) > 1,
        )
    return failed


def check_record_copy(copy: Path, settings: Settings) -> None:
    """Refuse a --record-copy folder that is the current folder, the project, the build folder or a parent of
    it, or the release folder (or in it, or a parent of it)."""
    given, releases = copy.resolve(), settings.release_dir.resolve()
    refused = {workspace().resolve(): "the project", Path.cwd().resolve(): "the current folder"}
    if given in refused:
        what = refused[given]
    elif settings.build_dir.resolve().is_relative_to(given):
        what = "the build folder or a folder holding it"
    elif releases.is_relative_to(given) or given.is_relative_to(releases):
        what = "the release folder, a folder holding it or a folder in it"
    else:
        return
    raise ConfigError(
        f"--record-copy {copy} is {what}: a record's copy needs a folder of its own",
        tip="name a new folder, e.g. --record-copy record",
    )


def _night_of(
    folder: str,
    settings: Settings,
    publishing: Publishing,
    *,
    auto_fix: bool,
    record_copy: Path | None,
    per_spec: bool,
) -> list[str]:
    """The night of one spec folder, its record copied (into a subfolder named after the spec when `per_spec`)
    and its latest release published as configured; returns what failed."""
    try:
        with image_run(settings, auto_fix=auto_fix) as spec:
            night = nightly.run_nightly(spec, settings)
        progress.result(night.summary)
        if record_copy is not None:
            copy = record_copy / spec.name if per_spec else record_copy
            _copy_record(night, settings.release_dir / spec.name, copy)
    except (VisaBuildError, OSError) as error:
        _say_error(folder, error)
        return [folder]
    if night.verdict == "failed":
        return [spec.name]
    if not publishing.nightly_publish:
        return []
    try:  # the latest release, also when tonight changed nothing: a failed upload is retried
        release = publish_release(settings.release_dir / spec.name, publishing)
        if publishing.nightly_promote:
            promote(spec.name, publishing, release.name)
    except (VisaBuildError, OSError) as error:
        _say_error(f"{spec.name}: publishing failed", error)
        return [f"{spec.name} (publishing)"]
    return []


def _say_error(what: str, error: VisaBuildError | OSError) -> None:
    tip = error.tip if isinstance(error, VisaBuildError) else ""
    progress.note(f"ERROR {what}: {error}" + (f"\nTIP   {tip}" if tip else ""))


def _copy_record(night: nightly.Night, releases: Path, copy: Path) -> None:
    """The night's record without its qcow2 (or NO-CHANGE.txt), and in RELEASE_FILE the name of the release the
    night left as the spec's latest: the one the pipeline's publish and promote jobs act on (none after a failed
    night)."""
    record.copy_without_image(night.folder, copy, no_change=night.summary)
    (copy / RELEASE_FILE).unlink(missing_ok=True)
    latest = record.latest(releases)
    if night.verdict != "failed" and latest is not None:
        (copy / RELEASE_FILE).write_text(latest.name + "\n")


def release_folder(settings: Settings, release: str) -> Path:
    """The folder of `release`: a path (it holds a /), else a release name of the spec; "" is its latest."""
    return Path(release) if "/" in release else settings.release_dir / load_spec(settings).name / release


def publish_release(folder: Path, publishing: Publishing) -> record.Release:
    """Upload the release in `folder` (or the one its `latest` names) to Glance as a candidate."""
    release = record.read_release(folder)
    image, uploaded = publish.publish(publish.connect(publishing.cloud), release, publishing)
    verb = "published" if uploaded else "already in Glance:"
    progress.result(f"{release.spec_name}: {verb} {release.name} as {image.id} ({publish.state_of(image)})")
    return release


def promote(spec_name: str, publishing: Publishing, release: str = "") -> None:
    """Make the newest candidate of `spec_name` (or that of `release`) current; say what was archived or deleted."""
    promotion = publish.promote(publish.connect(publishing.cloud), spec_name, publishing, release=release)
    current = promotion.current
    progress.result(
        f"{spec_name}: current image {current.id} ({current.properties.get('visa_release')}, "
        f"visibility {current.visibility})"
    )
    for image in promotion.archived:
        progress.result(f"{spec_name}: archived and hid {image.id} ({image.properties.get('visa_release')})")
    for image in promotion.deleted:
        progress.result(f"{spec_name}: deleted {image.id} (more than visa.publish_keep_archived archived images)")
    for image, why in promotion.kept:
        progress.result(f"{spec_name}: kept {image.id} past visa.publish_keep_archived: {why}")


class ImageRemover(Protocol):
    """Removes the untagged images the builds of a build folder (by its id) made, but those in `keep`."""

    def __call__(self, build_dir_id: str, *, keep: set[str]) -> list[str]: ...


def clean(
    settings: Settings,
    *,
    caches_only: bool = False,
    remove_images: ImageRemover = remove_untagged_images,
) -> None:
    """Remove what interrupted runs left (VMs, containers, mounts, loop devices), then the images visa-build built
    that rebuilds left untagged (but, with `caches_only`, the doubles the kept qcow2s were filled beside), then
    everything under build_dir but the release records and the runs' locks (only build_dir/cache when
    `caches_only`); refused while another run uses build_dir (also one that has started and not yet registered)."""
    runs.use_alone(settings.build_dir)
    leftovers.reap(settings.build_dir)
    target = settings.cache_dir if caches_only else settings.build_dir
    with progress.step(f"Removing {target}" + ("" if caches_only else " (release records are kept)")):
        doubles = recorded_doubles(settings.build_dir) if caches_only else set()
        try:
            removed = remove_images(runs.build_dir_id(settings.build_dir), keep=doubles)
        except VisaBuildError as error:  # the engine does not answer: the files are removed all the same
            progress.note(f"Docker's images were not looked at: {error}")
        else:
            if removed:
                progress.note(f"removed {len(removed)} images that rebuilds had left untagged")
        for released in mounts.release_all_under(settings.build_dir):
            progress.note(f"released {released}, left by an interrupted run")
        if caches_only:
            shutil.rmtree(target, ignore_errors=True)
            return
        keep = settings.release_dir.resolve()
        for entry in sorted(settings.build_dir.iterdir()) if settings.build_dir.is_dir() else []:
            if entry.resolve() in (keep, runs.runs_dir(settings.build_dir).resolve()):
                continue
            if keep.is_relative_to(entry.resolve()):  # the release folder is deeper inside: keep its parents
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
