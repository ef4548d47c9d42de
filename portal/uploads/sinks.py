"""Where a tus upload's bytes go as they arrive: one sink per kind of storage, no copies.

- ``FileSystemSink`` appends each chunk in place to ``tus/<id>.part`` in the storage's
  folder and renames it to its final name on completion (same filesystem: no copy).
- ``S3Sink`` makes each chunk a part of an S3 multipart upload of the final key, and
  completion is S3's server-side compose (``CompleteMultipartUpload``). S3 refuses parts
  under 5 MiB except the last, so bytes that do not make a part yet (a small chunk, or what
  arrived before a cut) are kept in S3 as a "tail" object and sent with the next part. On
  the web host a part is spooled to an anonymous temporary file (at most one part: the tail
  plus one chunk, or one part of a larger PATCH) so that botocore can sign, checksum and retry it; never held in memory.

A sink reads the request body in blocks, feeds the running SHA-256 and returns how many
bytes it kept; the caller records the new offset, hash and sink state in the database.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import FileSystemStorage, Storage

from portal.uploads.hashstate import ResumableSha256

BLOCK = 256 * 1024  # bytes read from the request per call: small, so the web process stays flat
MIN_PART = 5 * 1024 * 1024  # S3's smallest part, except the last
SHARED_CLIENT = "_portal_tus_client"  # S3Sink._client
_client_lock = threading.Lock()


class Body(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


@dataclass
class Progress:
    """What a write kept: the bytes stored, the hash over everything stored, the sink's new state."""

    kept: int
    hasher: ResumableSha256
    state: dict[str, Any] = field(default_factory=dict)


class Cut(Exception):
    """The client's body ended before its declared length (a network cut)."""


def read_body(body: Body, length: int) -> Iterator[bytes]:
    """Blocks of ``body`` up to ``length`` bytes; raises ``Cut`` if it ends or breaks before that."""
    left = length
    while left > 0:
        try:
            block = body.read(min(BLOCK, left))
        except Exception as exc:  # the server's own error type for a broken client connection
            raise Cut(str(exc)) from exc
        if not block:
            raise Cut(f"the body ended {left} bytes early")
        left -= len(block)
        yield block


class Sink(Protocol):
    name: str

    def begin(self, *, upload_id: str, storage_name: str, content_type: str) -> dict[str, Any]: ...

    def write(
        self,
        *,
        upload_id: str,
        storage_name: str,
        state: dict[str, Any],
        offset: int,
        total: int,
        body: Body,
        length: int,
        hasher: ResumableSha256,
        checksum: Checksum | None = None,
    ) -> Progress: ...

    def finish(self, *, upload_id: str, storage_name: str, state: dict[str, Any]) -> None: ...

    def discard(self, *, upload_id: str, storage_name: str, state: dict[str, Any]) -> None: ...


class ChecksumMismatch(Exception):
    """The chunk's bytes do not match its ``Upload-Checksum`` (tus: 460); nothing was kept."""


class LostBytes(Exception):
    """Bytes recorded as stored are gone (the host crashed before they reached the disk)."""


class Checksum:
    """tus checksum extension: the digest of one chunk, compared with the client's."""

    ALGORITHMS = ("sha1", "sha256", "md5")

    def __init__(self, algorithm: str, expected: bytes):
        self._digest = hashlib.new(algorithm, usedforsecurity=False)
        self._expected = expected

    def update(self, block: bytes) -> None:
        self._digest.update(block)

    def matches(self) -> bool:
        return hmac.compare_digest(self._digest.digest(), self._expected)


class FileSystemSink:
    name = "filesystem"

    def __init__(self, storage: FileSystemStorage):
        self.storage = storage

    def _part(self, upload_id: str) -> Path:
        return Path(self.storage.path(f"tus/{upload_id}.part"))

    def begin(self, *, upload_id: str, storage_name: str, content_type: str) -> dict[str, Any]:
        part = self._part(upload_id)
        part.parent.mkdir(parents=True, exist_ok=True)
        part.touch()
        return {}

    def write(
        self,
        *,
        upload_id: str,
        storage_name: str,
        state: dict[str, Any],
        offset: int,
        total: int,
        body: Body,
        length: int,
        hasher: ResumableSha256,
        checksum: Checksum | None = None,
    ) -> Progress:
        kept = 0
        with open(self._part(upload_id), "r+b") as f:
            if os.fstat(f.fileno()).st_size < offset:
                # Written, recorded, then lost before the page cache reached the disk (the host
                # crashed): no fsync per chunk, like tusd's filestore. The client must start again.
                raise LostBytes(f"Only {os.fstat(f.fileno()).st_size} of the {offset} bytes recorded are on disk.")
            # Bytes past the recorded offset were written by a request that died before it
            # recorded them (their hash was not saved): drop them.
            f.truncate(offset)
            f.seek(offset)
            try:
                for block in read_body(body, length):
                    f.write(block)
                    hasher.update(block)
                    if checksum is not None:
                        checksum.update(block)
                    kept += len(block)
            except Cut:
                if checksum is not None:  # a chunk with a checksum is kept whole or not at all
                    f.truncate(offset)
                    return Progress(0, hasher, state)
            if checksum is not None and not checksum.matches():
                f.truncate(offset)
                raise ChecksumMismatch
        return Progress(kept, hasher, state)

    def finish(self, *, upload_id: str, storage_name: str, state: dict[str, Any]) -> None:
        target = Path(self.storage.path(storage_name))
        target.parent.mkdir(parents=True, exist_ok=True)
        if not self._part(upload_id).exists() and target.exists():
            return  # renamed already, by a request that died before recording the upload
        os.replace(self._part(upload_id), target)

    def discard(self, *, upload_id: str, storage_name: str, state: dict[str, Any]) -> None:
        self._part(upload_id).unlink(missing_ok=True)

    def truncate(self, *, upload_id: str, offset: int) -> None:
        with open(self._part(upload_id), "r+b") as f:
            f.truncate(offset)


class S3Sink:
    name = "s3"

    def __init__(self, storage: Any, part_bytes: int = 8 * 1024 * 1024):  # storage: S3Storage (untyped)
        self.storage = storage
        self.part_bytes = max(MIN_PART, part_bytes)

    @property
    def _client(self) -> Any:
        """One boto3 client per storage for all the process's threads.

        django-storages keeps a boto3 resource per thread, each with a session of its own and so its
        own copy of S3's service model (megabytes of dicts): under gunicorn's gthread workers, one
        copy per thread. boto3 clients, unlike sessions and resources, are thread-safe, so the sink's
        threads share the first one made. It is kept on the storage object itself (a settings change
        makes a new storage, and with it a new client)."""
        client = getattr(self.storage, SHARED_CLIENT, None)
        if client is None:
            with _client_lock:
                client = getattr(self.storage, SHARED_CLIENT, None)
                if client is None:
                    client = self.storage.connection.meta.client
                    setattr(self.storage, SHARED_CLIENT, client)
        return client

    @property
    def _bucket(self) -> str:
        return str(self.storage.bucket_name)

    def _key(self, name: str) -> str:
        return str(self.storage._normalize_name(name))

    def _tail_key(self, upload_id: str) -> str:
        return self._key(f"tus/{upload_id}.tail")

    def begin(self, *, upload_id: str, storage_name: str, content_type: str) -> dict[str, Any]:
        answer = self._client.create_multipart_upload(
            Bucket=self._bucket, Key=self._key(storage_name), ContentType=content_type or "application/octet-stream"
        )
        return {"upload_id": answer["UploadId"], "parts": [], "tail": 0}

    def write(
        self,
        *,
        upload_id: str,
        storage_name: str,
        state: dict[str, Any],
        offset: int,
        total: int,
        body: Body,
        length: int,
        hasher: ResumableSha256,
        checksum: Checksum | None = None,
    ) -> Progress:
        client, bucket, key = self._client, self._bucket, self._key(storage_name)
        parts = list(state.get("parts", []))
        old_tail = int(state.get("tail", 0))
        kept = 0
        with tempfile.TemporaryFile() as spool:

            def flush() -> None:
                size = spool.tell()
                spool.seek(0)
                number = len(parts) + 1
                answer = client.upload_part(
                    Bucket=bucket,
                    Key=key,
                    UploadId=state["upload_id"],
                    PartNumber=number,
                    Body=spool,
                    ContentLength=size,
                )
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
                spool.seek(0)
                spool.truncate()

            if old_tail:
                answer = client.get_object(Bucket=bucket, Key=self._tail_key(upload_id))
                for block in iter(lambda: answer["Body"].read(BLOCK), b""):
                    spool.write(block)
            try:
                for block in read_body(body, length):
                    spool.write(block)
                    hasher.update(block)
                    kept += len(block)
                    if checksum is not None:
                        checksum.update(block)  # a checksummed chunk is kept whole or not at all: no part yet
                    elif spool.tell() >= self.part_bytes:
                        flush()  # a large PATCH (a client sending the whole file at once) goes in parts
            except Cut:
                if checksum is not None or kept == 0:
                    return Progress(0, hasher, state)
            if checksum is not None and not checksum.matches():
                raise ChecksumMismatch
            buffered = spool.tell()
            if buffered and (buffered >= MIN_PART or offset + kept == total):
                flush()
                buffered = 0
            if buffered:  # too small for a part yet: kept in S3 until the next chunk
                spool.seek(0)
                client.put_object(Bucket=bucket, Key=self._tail_key(upload_id), Body=spool, ContentLength=buffered)
            elif old_tail:
                client.delete_object(Bucket=bucket, Key=self._tail_key(upload_id))
            return Progress(kept, hasher, {**state, "parts": parts, "tail": buffered})

    def finish(self, *, upload_id: str, storage_name: str, state: dict[str, Any]) -> None:
        client = self._client
        try:
            client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key(storage_name),
                UploadId=state["upload_id"],
                MultipartUpload={"Parts": state["parts"]},
            )
        except client.exceptions.NoSuchUpload:
            # Completed already, by a request that died before recording the upload.
            client.head_object(Bucket=self._bucket, Key=self._key(storage_name))

    def discard(self, *, upload_id: str, storage_name: str, state: dict[str, Any]) -> None:
        client = self._client
        if state.get("tail"):
            client.delete_object(Bucket=self._bucket, Key=self._tail_key(upload_id))
        if state.get("upload_id"):
            with contextlib.suppress(client.exceptions.NoSuchUpload):
                client.abort_multipart_upload(
                    Bucket=self._bucket, Key=self._key(storage_name), UploadId=state["upload_id"]
                )


def sink_for(storage: Storage) -> FileSystemSink | S3Sink:
    if isinstance(storage, FileSystemStorage):
        return FileSystemSink(storage)
    if storage.__class__.__module__.startswith("storages.backends.s3"):  # __class__: default_storage is lazy
        return S3Sink(storage, part_bytes=settings.PORTAL_UPLOAD_CHUNK_BYTES)
    raise ImproperlyConfigured(
        f"Resumable uploads need FileSystemStorage or S3Storage, not {storage.__class__.__name__}."
    )
