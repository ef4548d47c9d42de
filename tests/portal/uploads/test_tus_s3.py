"""The tus server on S3 storage (django-storages' S3Storage against moto in server mode):
each chunk becomes a part of a multipart upload, completion is S3's compose, and an
abandoned upload's multipart upload is aborted."""

from __future__ import annotations

import hashlib
import io
import os
import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from tusclient.client import TusClient

from config.storage import s3_storage as s3_entry
from portal.models import AuditEvent, TusUpload, Upload
from portal.uploads.sinks import MIN_PART

from .conftest import cut_patch

pytestmark = pytest.mark.django_db(transaction=True)

MiB = 1024 * 1024


@pytest.fixture
def bucket(s3_server, settings):
    name = f"portal-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name)
    settings.STORAGES = {**settings.STORAGES, "default": s3_entry({**s3_server.env(), "PORTAL_S3_BUCKET": name})}
    return name


def _multipart_uploads(s3_server, bucket):
    return s3_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def test_a_tuspy_upload_to_s3_resumes_after_a_cut(live_server, s3_server, bucket, sales, olivia_key):
    data = os.urandom(12 * MiB + 4321)
    chunk = 2 * MiB  # smaller than S3's 5 MiB part: the server gathers them in a tail object
    url = live_server.url + "/api/v1/uploads/tus/"
    uploader = TusClient(url, headers={"Authorization": f"Bearer {olivia_key}"}).uploader(
        file_stream=io.BytesIO(data), chunk_size=chunk, metadata={"dataset": str(sales.pk), "filename": "big.csv"}
    )
    for _ in range(3):
        uploader.upload_chunk()
    row = TusUpload.objects.get()  # 2 + 2 MiB waited in the tail object; with the third they made a 6 MiB part
    assert row.sink == "s3" and len(row.sink_state["parts"]) == 1 and row.sink_state["tail"] == 0

    cut_patch(uploader.url, olivia_key, 3 * chunk, data[3 * chunk : 4 * chunk], send=700 * 1024)
    deadline = time.monotonic() + 10
    while TusUpload.objects.get().offset == 3 * chunk and time.monotonic() < deadline:
        time.sleep(0.05)
    row = TusUpload.objects.get()
    assert row.offset == 3 * chunk + 700 * 1024  # what arrived was kept, in the tail object
    assert row.sink_state["tail"] == 700 * 1024

    resumed = TusClient(url, headers={"Authorization": f"Bearer {olivia_key}"}).uploader(
        file_stream=io.BytesIO(data), chunk_size=chunk, url=uploader.url
    )
    assert resumed.offset == row.offset
    resumed.upload()

    upload = Upload.objects.get(dataset=sales)
    assert upload.sha256 == hashlib.sha256(data).hexdigest()
    body = s3_server.client().get_object(Bucket=bucket, Key=upload.file.name)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == upload.sha256
    assert upload.file.name.startswith(f"uploads/team-{sales.team_id}/")
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == [upload.file.name]  # no tail object, no copy
    assert _multipart_uploads(s3_server, bucket) == []
    parts = s3_server.client().head_object(Bucket=bucket, Key=upload.file.name, PartNumber=1)
    assert int(parts["PartsCount"]) > 1 and parts["ContentLength"] >= MIN_PART  # composed from parts


def test_expiry_aborts_the_multipart_upload(live_server, s3_server, bucket, sales, olivia_key):
    data = os.urandom(7 * MiB)
    url = live_server.url + "/api/v1/uploads/tus/"
    uploader = TusClient(url, headers={"Authorization": f"Bearer {olivia_key}"}).uploader(
        file_stream=io.BytesIO(data), chunk_size=6 * MiB, metadata={"dataset": str(sales.pk), "filename": "x.csv"}
    )
    uploader.upload_chunk()
    assert len(_multipart_uploads(s3_server, bucket)) == 1
    TusUpload.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    from portal.tasks import upload_expire_task

    assert upload_expire_task.apply().get() == 1
    assert _multipart_uploads(s3_server, bucket) == []
    assert not TusUpload.objects.exists()
    assert AuditEvent.objects.filter(action="upload-expired").count() == 1


def test_a_whole_file_in_one_patch_goes_to_s3_in_parts(live_server, s3_server, bucket, sales, olivia_key, settings):
    settings.PORTAL_UPLOAD_CHUNK_BYTES = 5 * MiB
    data = os.urandom(11 * MiB + 3)
    uploader = TusClient(
        live_server.url + "/api/v1/uploads/tus/", headers={"Authorization": f"Bearer {olivia_key}"}
    ).uploader(file_stream=io.BytesIO(data), metadata={"dataset": str(sales.pk), "filename": "all.csv"})
    uploader.upload()  # tuspy's default: the whole file in one PATCH
    upload = Upload.objects.get(dataset=sales)
    assert upload.sha256 == hashlib.sha256(data).hexdigest()
    head = s3_server.client().head_object(Bucket=bucket, Key=upload.file.name, PartNumber=1)
    assert int(head["PartsCount"]) == 3  # 5 + 5 + 1 MiB: the web host spooled one part at a time


def test_the_sinks_threads_share_one_boto3_client(bucket):
    # django-storages makes one boto3 resource (and session, and S3 model) per thread; the sink
    # shares one thread-safe client, the same for every thread, until the storage is replaced.
    import threading

    from django.core.files.storage import storages

    from portal.uploads.sinks import S3Sink

    storage = storages["default"]
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(S3Sink(storage)._client)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 4 and all(client is seen[0] for client in seen)
    per_thread = []
    threads = [threading.Thread(target=lambda: per_thread.append(storage.connection)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert per_thread[0] is not per_thread[1], "django-storages' own resources are per thread (why the sink shares)"
    seen[0].head_bucket(Bucket=bucket)  # and it works
