"""Uploads: validation, storage, the resumable chunked API."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Sum

from portal.exceptions import ApplicationError
from portal.models import ChunkedUpload, Dataset, Team, TusUpload, Upload
from portal.services.audit import audit


def upload_validate(*, name: str, size: int) -> None:
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    allowed = settings.PORTAL_UPLOAD_EXTENSIONS
    if size == 0:
        raise ValidationError("The file is empty.", code="empty")
    if size > settings.PORTAL_UPLOAD_MAX_BYTES:
        raise ValidationError(
            f"The file is {size:,} bytes; the limit is {settings.PORTAL_UPLOAD_MAX_BYTES:,} bytes.", code="too_large"
        )
    if extension not in allowed:
        raise ValidationError(
            f"Files of type .{extension or '(none)'} are not accepted. "
            f"Accepted: {', '.join('.' + e for e in allowed)}.",
            code="type",
        )


def upload_quota_check(*, team: Team, size: int) -> None:
    """Refuse ``size`` more bytes if the team's uploads, finished and in flight, would pass its quota."""
    quota = settings.PORTAL_UPLOAD_TEAM_QUOTA_BYTES
    if not quota:
        return
    stored = Upload.objects.filter(team=team).aggregate(total=Sum("size"))["total"] or 0
    in_flight = TusUpload.objects.filter(team=team, upload__isnull=True).aggregate(total=Sum("length"))["total"] or 0
    if stored + in_flight + size > quota:
        raise ValidationError(
            f"This upload of {size:,} bytes would pass the team's quota of {quota:,} bytes "
            f"({stored + in_flight:,} bytes are used).",
            code="quota",
        )


@transaction.atomic
def upload_register(
    *, dataset: Dataset, name: str, stored_name: str, size: int, sha256: str, content_type: str, actor: Any
) -> Upload:
    """The ``Upload`` row (and its audit line) of a file already in storage under ``stored_name``."""
    upload = Upload(
        team=dataset.team,
        dataset=dataset,
        original_name=name,
        size=size,
        sha256=sha256,
        content_type=content_type[:100],
        uploaded_by=actor,
    )
    upload.file.name = stored_name
    upload.save()
    audit(actor=actor, action="upload-created", obj=upload, changes={"name": name, "size": size, "sha256": sha256})
    return upload


def upload_storage_name(*, dataset: Dataset, name: str) -> str:
    """A fresh server-generated storage name for a file of ``dataset`` (the original name is never used)."""
    return Upload._meta.get_field("file").generate_filename(Upload(team=dataset.team), name)


def upload_create(*, dataset: Dataset, file: File, actor: User) -> Upload:
    """Store a file under a server-generated name through Django storage, hashing it on the way.

    The hashing and storing happen before, not inside, the transaction that records the row."""
    name = (file.name or "upload").replace("\\", "/").rsplit("/", 1)[-1][:255]
    upload_validate(name=name, size=file.size or 0)
    upload_quota_check(team=dataset.team, size=file.size or 0)
    digest = hashlib.sha256()
    for chunk in file.chunks():
        digest.update(chunk)
    file.seek(0)
    storage = Upload._meta.get_field("file").storage
    stored_name = storage.save(upload_storage_name(dataset=dataset, name=name), file)
    try:
        return upload_register(
            dataset=dataset,
            name=name,
            stored_name=stored_name,
            size=file.size or 0,
            sha256=digest.hexdigest(),
            content_type=getattr(file, "content_type", "") or "",
            actor=actor,
        )
    except BaseException:
        storage.delete(stored_name)
        raise


def chunked_upload_start(*, dataset: Dataset, filename: str, size: int, actor: User) -> ChunkedUpload:
    name = filename.replace("\\", "/").rsplit("/", 1)[-1][:255]
    upload_validate(name=name, size=size)
    return ChunkedUpload.objects.create(team=dataset.team, dataset=dataset, user=actor, filename=name, size=size)


def chunked_upload_append(*, chunked: ChunkedUpload, offset: int, data: File) -> ChunkedUpload:
    """Store the piece that starts at ``offset``. The client asks for ``offset`` after a cut
    and sends the rest; a piece at any other offset is refused, so nothing is written twice."""
    length = data.size or 0
    if chunked.upload_id:
        raise ApplicationError("This upload is already complete.")
    if offset != chunked.offset:
        raise ApplicationError(f"Expected the piece at offset {chunked.offset}, got {offset}.")
    if length == 0:
        raise ApplicationError("The piece is empty.")
    if offset + length > chunked.size:
        raise ApplicationError(f"The piece ends at {offset + length}, past the declared size {chunked.size}.")
    name = default_storage.save(f"chunked/{chunked.pk}/{offset:015d}", data)
    # Advance only if nobody else did meanwhile (a retried request): otherwise drop our copy.
    updated = ChunkedUpload.objects.filter(pk=chunked.pk, offset=offset).update(
        offset=offset + length, parts=chunked.parts + [name]
    )
    if not updated:
        default_storage.delete(name)
        raise ApplicationError("Another request stored this piece first; ask for the offset again.")
    chunked.refresh_from_db()
    return chunked


class _Concatenated(File):
    """The pieces of a chunked upload read one after the other, never all in memory."""

    def __init__(self, names: list[str], size: int, name: str):
        super().__init__(None, name=name)
        self._names, self.size = names, size
        self._reader: Iterator[bytes] | None = None
        self._buffer = b""

    def chunks(self, chunk_size: int | None = None) -> Iterator[bytes]:
        for part in self._names:
            with default_storage.open(part, "rb") as f:
                while block := f.read(chunk_size or 1024 * 1024):
                    yield block

    def read(self, size: int = -1) -> bytes:
        """A file-like read, for storages that stream with ``read()`` (S3's multipart upload), not ``chunks()``."""
        if self._reader is None:
            self._reader = self.chunks()
        while size < 0 or len(self._buffer) < size:
            block = next(self._reader, b"")
            if not block:
                break
            self._buffer += block
        if size < 0:
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out

    def seek(self, offset: int = 0, whence: int = 0, /) -> int:  # chunks() and read() start again at the start
        self._reader, self._buffer = None, b""
        return 0

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks()


def chunked_upload_complete(*, chunked: ChunkedUpload, actor: User) -> Upload:
    if chunked.upload_id:
        return chunked.upload  # type: ignore[return-value]
    if chunked.offset != chunked.size:
        raise ApplicationError(f"Only {chunked.offset} of {chunked.size} bytes arrived; send the rest first.")
    # No transaction around this: upload_create hashes and stores before it records the row.
    upload = upload_create(
        dataset=chunked.dataset, file=_Concatenated(chunked.parts, chunked.size, chunked.filename), actor=actor
    )
    chunked.upload = upload
    chunked.save(update_fields=["upload"])
    for part in chunked.parts:
        default_storage.delete(part)
    return upload
