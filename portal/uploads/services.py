"""Writes of resumable (tus) uploads. The permission checks happened in the view.

No database transaction is open while bytes move: a PATCH claims its upload with a
conditional UPDATE (a lease in ``locked_until``), streams the chunk into the sink, then
records the new offset, running SHA-256 and sink state in one UPDATE that releases it.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from portal.exceptions import ApplicationError
from portal.models import Dataset, TusUpload, Upload
from portal.services.audit import audit
from portal.services.uploads import upload_quota_check, upload_register, upload_storage_name, upload_validate
from portal.uploads.hashstate import ResumableSha256
from portal.uploads.sinks import Body, Checksum, FileSystemSink, S3Sink, sink_for

log = logging.getLogger(__name__)


class Conflict(ApplicationError):
    """The client's offset is not the server's (tus: 409)."""


class Locked(ApplicationError):
    """Another request is writing this upload (423: clients retry)."""


class TooLarge(ApplicationError):
    """The chunk would pass the declared length (413)."""


def _sink() -> FileSystemSink | S3Sink:
    return sink_for(Upload._meta.get_field("file").storage)


def _clean_name(filename: str) -> str:
    return filename.replace("\\", "/").rsplit("/", 1)[-1][:255]


def tus_create(*, dataset: Dataset, filename: str, length: int, content_type: str, actor: Any) -> TusUpload:
    """A new upload of ``length`` bytes, refused before any byte is stored if the file is too
    large, of a type not accepted, or past the team's quota (``ValidationError``)."""
    name = _clean_name(filename)
    upload_validate(name=name, size=length)
    upload_quota_check(team=dataset.team, size=length)
    sink = _sink()
    tus = TusUpload(
        team=dataset.team,
        dataset=dataset,
        user=actor,
        filename=name,
        content_type=content_type[:100],
        length=length,
        storage_name=upload_storage_name(dataset=dataset, name=name),
        sink=sink.name,
        hash_state=ResumableSha256().state(),
        expires_at=timezone.now() + timedelta(seconds=settings.PORTAL_UPLOAD_EXPIRE_SECONDS),
    )
    tus.sink_state = sink.begin(upload_id=str(tus.pk), storage_name=tus.storage_name, content_type=content_type)
    tus.save()
    return tus


def tus_append(*, tus: TusUpload, offset: int, body: Body, length: int, checksum: Checksum | None = None) -> TusUpload:
    """Store the chunk that starts at ``offset``; on completion, create the ``Upload``.

    A body cut short keeps what arrived (except with a checksum, where a chunk is kept whole
    or not at all), so the client resumes from the last byte stored."""
    if tus.upload_id is not None or tus.offset == tus.length:
        raise Conflict("This upload is already complete.")
    if offset != tus.offset:
        raise Conflict(f"The upload is at offset {tus.offset}, not {offset}.")
    if offset + length > tus.length:
        raise TooLarge(f"The chunk ends at {offset + length}, past the declared length {tus.length}.")
    if not _claim(tus, offset=offset):
        tus.refresh_from_db()
        if tus.offset != offset:
            raise Conflict(f"The upload is at offset {tus.offset}, not {offset}.")
        raise Locked("Another request is writing this upload; try again in a moment.")
    sink = _sink()
    progress = None
    try:
        progress = sink.write(
            upload_id=str(tus.pk),
            storage_name=tus.storage_name,
            state=tus.sink_state,
            offset=offset,
            total=tus.length,
            body=body,
            length=length,
            hasher=ResumableSha256.from_state(bytes(tus.hash_state)),
            checksum=checksum,
        )
    finally:
        if progress is not None and progress.kept:
            tus.offset = offset + progress.kept
            tus.hash_state = progress.hasher.state()
            tus.sink_state = progress.state
            TusUpload.objects.filter(pk=tus.pk).update(
                offset=tus.offset,
                hash_state=tus.hash_state,
                sink_state=tus.sink_state,
                # The last chunk keeps the lease while the file is composed (a HEAD meanwhile waits).
                locked_until=None if tus.offset < tus.length else F("locked_until"),
            )
        else:
            TusUpload.objects.filter(pk=tus.pk).update(locked_until=None)
    if tus.offset == tus.length:
        try:
            tus_finish(tus=tus)
        finally:
            TusUpload.objects.filter(pk=tus.pk).update(locked_until=None)
    return tus


# How long a HEAD waits for a PATCH that is writing the upload (tus_settled).
SETTLE_SECONDS = 5.0


def tus_settled(*, tus: TusUpload, wait: float | None = None) -> TusUpload:
    """The upload once no request is writing it, waiting up to ``wait`` seconds for one that is.

    After a cut the client asks where the upload is (HEAD) while the server may still be
    recording what the dying PATCH kept: answered then, the offset is about to move and the
    client's next PATCH meets a 409. Like tusd, whose HEAD takes the upload's lock, the answer
    waits for the writer (a stale lease of a dead process: ``wait`` seconds at most, SETTLE_SECONDS
    by default)."""
    deadline = time.monotonic() + (SETTLE_SECONDS if wait is None else wait)
    while tus.locked_until is not None and tus.locked_until > timezone.now() and time.monotonic() < deadline:
        time.sleep(0.05)
        tus.refresh_from_db()
    return tus


def tus_recover(*, tus: TusUpload) -> None:
    """Finish an upload whose last chunk was stored but whose request died before composing it."""
    if tus.upload_id is None and tus.offset == tus.length and _claim(tus, offset=tus.length):
        try:
            tus_finish(tus=tus)
        finally:
            TusUpload.objects.filter(pk=tus.pk).update(locked_until=None)


def _claim(tus: TusUpload, *, offset: int) -> bool:
    """Take the upload's lease if it is at ``offset``, unfinished and nobody holds it."""
    now = timezone.now()
    return bool(
        TusUpload.objects.filter(pk=tus.pk, offset=offset, upload__isnull=True)
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
        .update(locked_until=now + timedelta(seconds=settings.PORTAL_UPLOAD_LOCK_SECONDS))
    )


def tus_finish(*, tus: TusUpload) -> Upload:
    """Compose the stored bytes into the final file (a rename or S3's server-side compose),
    then record the ``Upload`` through the ordinary upload service. Called again (by HEAD)
    if a crash came between the last chunk and this (``tus_recover``); the caller holds the lease."""
    sha256 = ResumableSha256.from_state(bytes(tus.hash_state)).hexdigest()
    _sink().finish(upload_id=str(tus.pk), storage_name=tus.storage_name, state=tus.sink_state)
    upload = upload_register(
        dataset=tus.dataset,
        name=tus.filename,
        stored_name=tus.storage_name,
        size=tus.length,
        sha256=sha256,
        content_type=tus.content_type,
        actor=tus.user,
    )
    tus.upload = upload
    TusUpload.objects.filter(pk=tus.pk).update(upload=upload, sink_state={})
    return upload


def tus_terminate(*, tus: TusUpload, actor: Any) -> None:
    """tus termination: the stored bytes and the row go; a finished upload's file stays."""
    if tus.upload_id is None:
        _sink().discard(upload_id=str(tus.pk), storage_name=tus.storage_name, state=tus.sink_state)
        audit(
            actor=actor,
            action="upload-terminated",
            obj=tus,
            changes={"name": tus.filename, "offset": tus.offset, "length": tus.length},
        )
    tus.delete()


def tus_expire(*, now: Any = None) -> int:
    """Delete the uploads past their expiry: the unfinished ones' parts or partial files (S3
    multipart uploads aborted), and every expired row. One audit line per unfinished upload."""
    now = now or timezone.now()
    count = 0
    for tus in TusUpload.objects.filter(expires_at__lt=now).select_related("team"):
        if tus.upload_id is None:
            try:
                sink_for_row(tus).discard(upload_id=str(tus.pk), storage_name=tus.storage_name, state=tus.sink_state)
            except Exception:
                log.exception("Could not discard the stored bytes of expired upload %s; will retry", tus.pk)
                continue
            audit(
                actor=None,
                action="upload-expired",
                obj=tus,
                changes={"name": tus.filename, "offset": tus.offset, "length": tus.length},
            )
            count += 1
        tus.delete()
    return count


def sink_for_row(tus: TusUpload) -> FileSystemSink | S3Sink:
    sink = _sink()
    if sink.name != tus.sink:
        log.warning("Upload %s was started on %s storage, now %s", tus.pk, tus.sink, sink.name)
    return sink
