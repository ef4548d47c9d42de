"""The tus server against a running portal (live_server), driven by tuspy, a standard tus client."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings
from tusclient.client import TusClient

from portal.models import AuditEvent, TusUpload, Upload

from .conftest import cut_patch, metadata

pytestmark = pytest.mark.django_db(transaction=True)

MiB = 1024 * 1024


def _tus_url(live_server) -> str:
    return live_server.url + "/api/v1/uploads/tus/"


def _wait_unlocked(pk) -> TusUpload:
    # The server thread that served the cut request records what it kept once it sees the end of the body.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        row = TusUpload.objects.get(pk=pk)
        if row.locked_until is None and row.offset:
            return row
        time.sleep(0.05)
    raise AssertionError("the cut request never released the upload")


def test_it_resumes_a_tuspy_upload_after_a_cut(live_server, sales, olivia_key):
    data = os.urandom(3 * MiB + 12345)
    chunk = 1 * MiB
    client = TusClient(_tus_url(live_server), headers={"Authorization": f"Bearer {olivia_key}"})
    uploader = client.uploader(
        file_stream=io.BytesIO(data),
        chunk_size=chunk,
        metadata={"dataset": str(sales.pk), "filename": "sales.csv", "filetype": "text/csv"},
    )
    uploader.upload_chunk()
    assert uploader.offset == chunk
    pk = uploader.url.rstrip("/").rsplit("/", 1)[-1]

    # The network goes down in the middle of the second chunk: 300 KiB of it arrived.
    cut_patch(uploader.url, olivia_key, chunk, data[chunk : 2 * chunk], send=300 * 1024)
    row = _wait_unlocked(pk)
    assert row.offset == chunk + 300 * 1024  # what arrived is kept
    assert not Upload.objects.filter(dataset=sales).exists()

    # A new client (another process, say) resumes from the URL: HEAD tells the offset, then the rest.
    resumed = TusClient(_tus_url(live_server), headers={"Authorization": f"Bearer {olivia_key}"}).uploader(
        file_stream=io.BytesIO(data), chunk_size=chunk, url=uploader.url
    )
    assert resumed.offset == chunk + 300 * 1024
    resumed.upload()

    upload = Upload.objects.get(dataset=sales)
    assert upload.size == len(data)
    assert upload.sha256 == hashlib.sha256(data).hexdigest()
    assert upload.original_name == "sales.csv"
    assert upload.uploaded_by.username == "olivia"
    assert Path(upload.file.path).read_bytes() == data
    assert not list((Path(settings.MEDIA_ROOT) / "tus").glob(f"{pk}*"))  # the partial file became the upload
    assert AuditEvent.objects.filter(action="upload-created", object_id=str(upload.pk)).exists()
    # A client that lost the last answer asks again: the upload is complete.
    head = requests.head(uploader.url, headers={"Authorization": f"Bearer {olivia_key}", "Tus-Resumable": "1.0.0"})
    assert head.headers["Upload-Offset"] == str(len(data))
    assert head.headers["Upload-Id"] == str(upload.pk)


def test_it_verifies_chunk_checksums(live_server, sales, olivia_key):
    data = os.urandom(200_000)
    client = TusClient(_tus_url(live_server), headers={"Authorization": f"Bearer {olivia_key}"})
    uploader = client.uploader(
        file_stream=io.BytesIO(data),
        chunk_size=64 * 1024,
        metadata={"dataset": str(sales.pk), "filename": "a.csv"},
        upload_checksum=True,
    )
    uploader.upload()
    assert Upload.objects.get(dataset=sales).sha256 == hashlib.sha256(data).hexdigest()

    create = requests.post(
        _tus_url(live_server),
        headers={
            "Authorization": f"Bearer {olivia_key}",
            "Tus-Resumable": "1.0.0",
            "Upload-Length": "10",
            "Upload-Metadata": metadata(dataset=str(sales.pk), filename="b.csv"),
        },
    )
    assert create.status_code == 201
    bad = requests.patch(
        create.headers["Location"],
        data=b"0123456789",
        headers={
            "Authorization": f"Bearer {olivia_key}",
            "Tus-Resumable": "1.0.0",
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": "0",
            "Upload-Checksum": "sha1 " + base64.b64encode(hashlib.sha1(b"other").digest()).decode(),
        },
    )
    assert bad.status_code == 460
    assert TusUpload.objects.get(pk=create.headers["Location"].rstrip("/").rsplit("/", 1)[-1]).offset == 0


def test_a_head_during_a_write_answers_the_offset_the_write_leaves(live_server, sales, olivia_key, monkeypatch):
    # After a cut the client asks where the upload is while the server still records the dying
    # PATCH: the HEAD waits for it, so the client's next PATCH starts at the right offset.
    import threading
    from datetime import timedelta

    from django.utils import timezone

    from portal.uploads import services

    client = TusClient(_tus_url(live_server), headers={"Authorization": f"Bearer {olivia_key}"})
    uploader = client.uploader(
        file_stream=io.BytesIO(os.urandom(2 * MiB)),
        chunk_size=MiB,
        metadata={"dataset": str(sales.pk), "filename": "a.csv"},
    )
    uploader.upload_chunk()
    pk = uploader.url.rstrip("/").rsplit("/", 1)[-1]
    TusUpload.objects.filter(pk=pk).update(locked_until=timezone.now() + timedelta(seconds=60))

    def the_write_ends() -> None:
        time.sleep(0.5)
        TusUpload.objects.filter(pk=pk).update(offset=MiB + 1000, locked_until=None)

    writer = threading.Thread(target=the_write_ends)
    writer.start()
    headers = {"Authorization": f"Bearer {olivia_key}", "Tus-Resumable": "1.0.0"}
    head = requests.head(uploader.url, headers=headers, timeout=30)
    writer.join()
    assert head.headers["Upload-Offset"] == str(MiB + 1000)

    # A lease left by a dead process: the HEAD waits at most SETTLE_SECONDS, then answers.
    monkeypatch.setattr(services, "SETTLE_SECONDS", 0.3)
    TusUpload.objects.filter(pk=pk).update(locked_until=timezone.now() + timedelta(seconds=60))
    began = time.monotonic()
    head = requests.head(uploader.url, headers=headers, timeout=30)
    assert head.status_code == 200 and head.headers["Upload-Offset"] == str(MiB + 1000)
    assert 0.3 <= time.monotonic() - began < 5
