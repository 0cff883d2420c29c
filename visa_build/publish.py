"""Publishing releases to OpenStack Glance, where VISA boots its instances from.

A release goes up as a *candidate*: private, tagged `visa-candidate`, invisible to VISA's users. Its upload is
tagged `visa-uploading` until Glance's own hash of the stored data (`os_hash_value`) equals the release's file:
only then does it become a candidate, and a failed or interrupted upload is deleted (or stays `visa-uploading`,
which a publish of the same release removes once it is UPLOAD_GRACE old). A candidate, current or archived image
is never deleted by publish. `promote` makes the newest candidate `visa-current` with the chosen visibility,
archives (tags and hides) every other current image and older candidate, and keeps the newest `keep_archived`
archived images. Every image of a spec carries the tag `visa-image:<spec>`; only the token's project's images
are touched; the cloud comes from clouds.yaml / OS_CLOUD / OS_*.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

import keystoneauth1.exceptions
import openstack
import openstack.exceptions

from . import progress
from .distros import DISTROS
from .errors import ConfigError, VisaBuildError
from .release import record
from .release.manifest import system_part
from .settings import Publishing

UPLOADING, CANDIDATE, CURRENT, ARCHIVED = "visa-uploading", "visa-candidate", "visa-current", "visa-archived"
STATES = (UPLOADING, CANDIDATE, CURRENT, ARCHIVED)
LAB = "/opt/visa/jupyter/jupyterlab"
CHUNK = 8 << 20
#: An upload younger than this may be another publish's, still going: publish leaves it alone.
UPLOAD_GRACE = timedelta(hours=6)
#: The property ordering promotions: of two current images, the one promoted later stays current.
PROMOTED_AT = "visa_promoted_at"

#: Called with (bytes sent, bytes in all) while the image data goes up.
OnSent = Callable[[int, int], None]


def spec_tag(spec_name: str) -> str:
    return f"visa-image:{spec_name}"


def properties(release: record.Release) -> dict[str, str]:
    """Glance properties: OpenStack's os_* conventions and visa_* ones naming the release and summing it up."""
    system = system_part(release.manifest)
    distro, packages = DISTROS[system["release"]], system["packages"]
    lab = release.manifest["python"].get(LAB, {})
    kernels = sorted(spec["display_name"] for spec in release.manifest.get("kernelspecs", {}).values())
    props = {
        "os_type": "linux",
        "os_distro": distro.distribution,
        "os_version": distro.version,
        "hw_disk_bus": "virtio",
        "hw_vif_model": "virtio",
        "visa_image": release.spec_name,
        "visa_release": release.name,
        "visa_sha256": release.sha256,
        "visa_debian_packages": str(len(packages)),
        "visa_kernels": ", ".join(kernels)[:255],
        "visa_jupyterlab": lab.get("jupyterlab", {}).get("version", ""),
        "visa_kernel_version": packages.get(distro.kernel_package, ""),
    }
    if "qemu-guest-agent" in packages:
        props["hw_qemu_guest_agent"] = "yes"
    return props


def min_disk_gib(release: record.Release) -> int:
    return math.ceil(int(release.build["sizes"]["virtual_bytes"]) / (1 << 30))


@contextlib.contextmanager
def cloud_errors(cloud: str) -> Iterator[None]:
    """OpenStack's errors as one line each, naming the cloud and what to do."""
    where = _where(cloud)
    try:
        yield
    except openstack.exceptions.ConfigException as exc:
        raise ConfigError(
            f"{where} is not configured: {exc}",
            tip="name a cloud of clouds.yaml with --cloud or OS_CLOUD, or set OS_AUTH_URL and "
            "the other OS_* variables (see docs/nightly-and-publishing.md)",
        ) from None
    except (keystoneauth1.exceptions.Unauthorized, keystoneauth1.exceptions.MissingRequiredOptions) as exc:
        raise VisaBuildError(
            f"{where} refused the credentials: {exc}", tip="check the auth section of clouds.yaml or the OS_* variables"
        ) from None
    except (keystoneauth1.exceptions.ConnectionError, keystoneauth1.exceptions.DiscoveryFailure) as exc:
        raise VisaBuildError(
            f"{where} cannot be reached: {exc}", tip="check the endpoint in clouds.yaml, the network and any proxy"
        ) from None
    except openstack.exceptions.HttpException as exc:
        raise _http_error(where, exc) from None


def _where(cloud: str) -> str:
    return f"cloud {cloud!r}" if cloud else "the cloud of OS_CLOUD / OS_* variables"


def _http_error(where: str, exc: openstack.exceptions.HttpException) -> VisaBuildError:
    status, details = exc.status_code, (exc.details or str(exc)).strip()
    if status == 401:
        return VisaBuildError(
            f"{where} refused the credentials (HTTP 401): {details}",
            tip="check the auth section of clouds.yaml or the OS_* variables",
        )
    if status == 413 or "quota" in details.lower():
        return VisaBuildError(
            f"{where}: the image quota is used up (HTTP {status}): {details}",
            tip="delete archived images (lower visa.publish_keep_archived) or ask for a larger image quota",
        )
    if status == 403:
        return VisaBuildError(
            f"{where} does not allow this (HTTP 403): {details}",
            tip="publicizing needs the cloud's admin role; set visa.publish_visibility to "
            "community or shared, or ask the cloud's operators",
        )
    return VisaBuildError(f"{where}: Glance answered HTTP {status}: {details}", tip="see Glance's logs")


def connect(cloud: str) -> Any:
    """An openstacksdk connection to `cloud` ("" = OS_CLOUD or the OS_* variables), checked with one request."""
    with cloud_errors(cloud):
        conn = openstack.connect(cloud=cloud or None)
        next(iter(conn.image.images(limit=1)), None)
    return conn


def spec_images(conn: Any, spec_name: str, settings: Publishing) -> list[Any]:
    """Every image of `spec_name` this project owns, hidden and community ones too (Glance lists neither unless
    asked), newest first. Another project's image with the same tag is never touched."""
    owner = _project(conn, settings)
    query = {"tag": spec_tag(spec_name), "visibility": "all"} | ({"owner": owner} if owner else {})
    found = {image.id: image for hidden in (False, True) for image in conn.image.images(is_hidden=hidden, **query)}
    return sorted(found.values(), key=_release_of, reverse=True)


def _project(conn: Any, settings: Publishing) -> str | None:
    """The token's project, whose images alone may be changed. A token without one (unscoped, domain or system
    scope) lists every project's images, so it is refused unless settings.no_keystone says there is no Keystone."""
    project: str | None = conn.current_project_id
    if project or settings.no_keystone:
        return project
    raise VisaBuildError(
        f"{_where(settings.cloud)} gives a token of no project: visa-build could not tell this project's images "
        "from other projects'",
        tip="scope the credentials to the project (project_name or project_id in clouds.yaml, OS_PROJECT_NAME); "
        "for a Glance without Keystone set visa.publish_no_keystone",
    )


def state_of(image: Any) -> str:
    return next((tag for tag in STATES if tag in image.tags), "")


class _Reader:
    """The qcow2 as requests streams it, reporting each chunk sent."""

    def __init__(self, data: BinaryIO, size: int, on_sent: OnSent) -> None:
        self._data, self._size, self._sent, self._on_sent = data, size, 0, on_sent

    def __len__(self) -> int:
        return self._size

    def read(self, size: int = -1) -> bytes:
        chunk = self._data.read(CHUNK if size < 0 else size)
        self._sent += len(chunk)
        self._on_sent(self._sent, self._size)
        return chunk


class _ShowSent:
    """Progress of the upload: a line every 64 MiB and at the end."""

    def __init__(self) -> None:
        self._shown = -1

    def __call__(self, sent: int, total: int) -> None:
        step = sent >> 26
        if step != self._shown or sent == total:
            self._shown = step
            progress.line(f"{sent >> 20} of {total >> 20} MiB sent")


def publish(
    conn: Any, release: record.Release, settings: Publishing, *, on_sent: OnSent | None = None
) -> tuple[Any, bool]:
    """Upload `release` as a candidate; returns the image and whether it was uploaded now (False: Glance holds
    this sha256 already, checked, and nothing changed)."""
    with cloud_errors(settings.cloud):
        for image in spec_images(conn, release.spec_name, settings):
            if image.properties.get("visa_sha256") != release.sha256:
                continue
            if state_of(image) == UPLOADING:
                _remove_stale_upload(conn, image, release)
                continue
            _require_intact(image, release)
            progress.note(
                f"{release.spec_name}: release {release.name} is in Glance already as {image.id} "
                f"({state_of(image) or 'untagged'}): nothing to do"
            )
            return image, False
        return _upload(conn, release, settings, on_sent or _ShowSent()), True


def _remove_stale_upload(conn: Any, image: Any, release: record.Release) -> None:
    """Delete an upload of `release` that never finished; one younger than UPLOAD_GRACE may still be going."""
    if datetime.now(UTC) - datetime.fromisoformat(image.created_at) < UPLOAD_GRACE:
        raise VisaBuildError(
            f"{release.spec_name}: release {release.name} is being uploaded to Glance as {image.id} "
            f"(since {image.created_at}), by another publish or one that was killed",
            tip=f"wait for the other publish; an upload left behind is removed by the first publish "
            f"{UPLOAD_GRACE.total_seconds() / 3600:.0f} h after it started, or now by "
            f"`openstack image delete {image.id}`",
        )
    progress.note(
        f"{release.spec_name}: removing {image.id}, an upload of this release that did not finish "
        f"(started {image.created_at})"
    )
    conn.image.delete_image(image, ignore_missing=True)


def _require_intact(image: Any, release: record.Release) -> None:
    """`image`, a finished upload of `release`, is active and holds the release's file; else stop, never touch it."""
    if image.status == "deactivated":
        raise VisaBuildError(
            f"{release.spec_name}: release {release.name} is in Glance as {image.id}, deactivated (an admin "
            "stopped new boots from it)",
            tip=f"if the image is sound, reactivate it (`openstack image set --activate {image.id}`); if not, "
            f"delete it (`openstack image delete {image.id}`) and publish a newer release",
        )
    if image.status != "active" or not _matches(image, release):
        raise VisaBuildError(
            f"{release.spec_name}: release {release.name} is in Glance as {image.id} ({state_of(image) or 'untagged'}"
            f", status {image.status}, {image.hash_algo} {image.hash_value}), which is not the release's file "
            f"(sha256 {release.sha256})",
            tip=f"visa-build leaves it alone: look at it (`openstack image show {image.id}`); if it is broken, "
            "delete it and publish again",
        )


def _matches(image: Any, release: record.Release) -> bool:
    """Whether Glance's hashes of `image` are those of the release's file; a hash visa-build cannot check stops."""
    local = {"sha512": release.sha512, "sha256": release.sha256}.get(image.hash_algo)
    if local is None:
        raise VisaBuildError(
            f"Glance hashes {image.id} with {image.hash_algo!r}; visa-build checks sha512 and sha256 only",
            tip="ask the cloud's operators about Glance's hashing_algorithm (its default is sha512)",
        )
    return bool(image.hash_value == local and image.checksum in (None, release.md5))


def _upload(conn: Any, release: record.Release, settings: Publishing, on_sent: OnSent) -> Any:
    size = release.qcow2.stat().st_size
    image = conn.image.create_image(
        f"{release.spec_name} {release.name}",
        disk_format="qcow2",
        container_format="bare",
        allow_duplicates=True,
        tags=[spec_tag(release.spec_name), UPLOADING],
        visibility="private",
        min_disk=min_disk_gib(release),
        min_ram=settings.min_ram_mib,
        sha256=release.sha256,
        md5=release.md5,
        validate_checksum=False,
        disable_vendor_agent=False,
        meta=properties(release),
    )
    finished = False
    try:
        with (
            progress.step(f"Uploading {release.qcow2.name} ({size >> 20} MiB) to Glance as {image.id}"),
            release.qcow2.open("rb") as data,
        ):
            try:
                response = image.upload(conn.image, data=_Reader(data, size, on_sent), size=size)
            except keystoneauth1.exceptions.ConnectionError as exc:
                conn.image.get_image(image.id)  # Glance answers: it refused the data rather than being away
                raise VisaBuildError(
                    f"Glance broke off the upload of {release.qcow2.name} ({exc}); the upload was deleted",
                    tip="an image quota or a proxy's request-size limit refuses it; check the project's quota "
                    "(delete archived images, lower visa.publish_keep_archived) and the proxy in front of Glance",
                ) from None
            openstack.exceptions.raise_from_response(response)
        stored = conn.image.get_image(image.id)
        if stored.status != "active" or not _matches(stored, release):
            raise VisaBuildError(
                f"Glance stored something else than {release.qcow2.name}: status {stored.status}, "
                f"{stored.hash_algo} {stored.hash_value} (the release's file has sha256 {release.sha256}); the "
                "upload was deleted",
                tip="run publish again; if it repeats, check the network path to Glance",
            )
        conn.image.add_tag(stored, CANDIDATE)
        conn.image.remove_tag(stored, UPLOADING)
        finished = True
        return conn.image.get_image(image.id)
    finally:
        if not finished:
            _discard(conn, image.id)


def _discard(conn: Any, image_id: str) -> None:
    """Delete an unfinished upload; when Glance cannot be told, it keeps its `visa-uploading` tag."""
    try:
        try:
            conn.image.delete_image(image_id, ignore_missing=True)
        except keystoneauth1.exceptions.ConnectionError:  # sent on the connection Glance closed, refusing the data
            conn.image.delete_image(image_id, ignore_missing=True)
        progress.note(f"the unfinished upload {image_id} was deleted from Glance")
    except Exception as exc:  # the upload's own error is the one to report
        progress.note(
            f"the unfinished upload {image_id} could not be deleted ({exc}); it stays tagged "
            f"{UPLOADING} and a publish of this release removes it {UPLOAD_GRACE.total_seconds() / 3600:.0f} h after "
            "it started"
        )


@dataclass(frozen=True)
class Promotion:
    current: Any
    archived: list[Any]
    deleted: list[Any]
    kept: list[tuple[Any, str]]  # archived images past the limit that were not deleted, and why


def promote(conn: Any, spec_name: str, settings: Publishing, *, release: str = "") -> Promotion:
    """Make the candidate of `release` (default: the newest candidate newer than the current image) current with
    settings.visibility; archive and hide every other current image and every candidate not newer; keep
    settings.keep_archived archived images. Without such a candidate the current image stays (promoting twice
    changes nothing); a promote stopped half-way is completed by the next."""
    with cloud_errors(settings.cloud):
        images = spec_images(conn, spec_name, settings)
        currents = [i for i in images if CURRENT in i.tags and release in ("", _release_of(i))]
        newest = max(map(_release_of, currents), default="")
        candidates = [
            i
            for i in images
            if state_of(i) == CANDIDATE and (_release_of(i) == release if release else _release_of(i) > newest)
        ]
        if candidates:
            _make_current(conn, candidates[0], settings.visibility)
        elif not currents:
            raise VisaBuildError(
                f"{spec_name}: no candidate image in Glance" + (f" of release {release}" if release else ""),
                tip="publish a release first (invoke publish)",
            )
        current, archived = _settle(conn, spec_name, settings)
        if not candidates:
            progress.note(f"{spec_name}: no newer candidate; {current.id} stays current")
        return Promotion(conn.image.get_image(current.id), archived, *_retire(conn, spec_name, settings))


def _make_current(conn: Any, image: Any, visibility: str) -> None:
    conn.image.update_image(image, visibility=visibility, is_hidden=False)
    # update_image with a property would send every other property as removed: this one keeps them
    conn.image.update_image_properties(image, meta={PROMOTED_AT: datetime.now(UTC).isoformat(timespec="microseconds")})
    conn.image.add_tag(image, CURRENT)
    _remove_tag(conn, image, CANDIDATE)


def _settle(conn: Any, spec_name: str, settings: Publishing) -> tuple[Any, list[Any]]:
    """Listed again after a promotion: the image promoted last stays current; every other current image and every
    candidate not newer is archived. Promotes running at once each decide the same, so one current image stays."""
    images = spec_images(conn, spec_name, settings)
    currents = [i for i in images if CURRENT in i.tags]
    if not currents:
        raise VisaBuildError(
            f"{spec_name}: the image just promoted is gone from Glance", tip="run promote again once nothing else does"
        )
    current = max(currents, key=lambda i: (i.properties.get(PROMOTED_AT, ""), _release_of(i)))
    if CANDIDATE in current.tags:
        _remove_tag(conn, current, CANDIDATE)
    archived = [i for i in images if i.id != current.id and _replaced_by(current, i)]
    for image in archived:
        _archive(conn, image)
    return current, archived


def _release_of(image: Any) -> str:
    return str(image.properties.get("visa_release", ""))


def _replaced_by(current: Any, image: Any) -> bool:
    """Whether `image` is one `current` replaces: another current image, or a candidate not newer."""
    return CURRENT in image.tags or (state_of(image) == CANDIDATE and _release_of(image) <= _release_of(current))


def _archive(conn: Any, image: Any) -> None:
    """Tag `image` archived and hide it; an image deleted meanwhile is left so."""
    with contextlib.suppress(openstack.exceptions.NotFoundException):
        conn.image.update_image(image, is_hidden=True)
        conn.image.add_tag(image, ARCHIVED)
        for tag in [tag for tag in (CURRENT, CANDIDATE) if tag in image.tags]:
            _remove_tag(conn, image, tag)


def _remove_tag(conn: Any, image: Any, tag: str) -> None:
    """Remove `tag` from `image`; Glance's 404 (the tag or image gone already, e.g. by a promote at the same time)
    means it is done."""
    with contextlib.suppress(openstack.exceptions.NotFoundException):
        conn.image.remove_tag(image, tag)


def _retire(conn: Any, spec_name: str, settings: Publishing) -> tuple[list[Any], list[tuple[Any, str]]]:
    """Delete archived images of `spec_name` beyond the newest settings.keep_archived, never a protected one."""
    archived = [image for image in spec_images(conn, spec_name, settings) if state_of(image) == ARCHIVED]
    deleted, kept = [], []
    for image in archived[settings.keep_archived :]:
        if image.is_protected:
            kept.append((image, "protected"))
            continue
        conn.image.delete_image(image, ignore_missing=True)
        deleted.append(image)
    return deleted, kept
