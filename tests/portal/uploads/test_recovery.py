"""A web process that dies between storing the last chunk and composing the file: the next
HEAD finishes the upload, once, under the upload's lease."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from portal.models import TusUpload, Upload
from portal.uploads.hashstate import ResumableSha256

from .test_limits_and_expiry import _create

pytestmark = pytest.mark.django_db


def _stored_but_not_composed(client, sales, olivia_key, data: bytes) -> str:  # type: ignore[no-untyped-def]
    location = _create(client, olivia_key, len(data), dataset=str(sales.pk), filename="a.csv")["Location"]
    row = TusUpload.objects.get()
    (Path(settings.MEDIA_ROOT) / "tus" / f"{row.pk}.part").write_bytes(data)
    hasher = ResumableSha256()
    hasher.update(data)
    TusUpload.objects.filter(pk=row.pk).update(offset=len(data), hash_state=hasher.state())
    return location


def test_a_head_finishes_an_upload_whose_last_request_died(client, sales, olivia_key):
    data = b"region,amount\nnorth,10\n"
    location = _stored_but_not_composed(client, sales, olivia_key, data)
    head = client.head(location, headers={"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {olivia_key}"})
    assert head.status_code == 200
    upload = Upload.objects.get()
    assert head["Upload-Offset"] == str(len(data)) and head["Upload-Id"] == str(upload.pk)
    assert upload.sha256 == hashlib.sha256(data).hexdigest()
    assert Path(upload.file.path).read_bytes() == data
    client.head(location, headers={"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {olivia_key}"})
    assert Upload.objects.count() == 1


def test_a_head_leaves_an_upload_alone_while_a_request_holds_it(client, sales, olivia_key):
    location = _stored_but_not_composed(client, sales, olivia_key, b"abc")
    TusUpload.objects.update(locked_until=timezone.now() + timedelta(minutes=1))
    head = client.head(location, headers={"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {olivia_key}"})
    assert head.status_code == 200 and "Upload-Id" not in head
    assert not Upload.objects.exists()
