"""Files on S3-compatible object storage (django-storages against a real moto_server process)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient
from storages.backends.s3 import S3Storage

from config.storage import S3_BACKEND, s3_storage
from portal.models import ChunkedUpload, Release, ReleaseStatus, Upload
from portal.services.mappings import params_validate
from portal.services.releases import release_create
from portal.services.uploads import upload_create
from tests.helpers import wait_for

from ..simulator import ROOT

pytestmark = pytest.mark.django_db


def test_it_builds_the_s3_storage_from_the_environment_only():
    assert s3_storage({}) is None, "no bucket: the filesystem stays"
    entry = s3_storage(
        {
            "PORTAL_S3_BUCKET": "files",
            "PORTAL_S3_ENDPOINT_URL": "http://minio:9000",
            "PORTAL_S3_REGION": "eu-west-3",
            "PORTAL_S3_ACCESS_KEY_ID": "AK",
            "PORTAL_S3_SECRET_ACCESS_KEY": "SK",
            "PORTAL_S3_ADDRESSING_STYLE": "path",
            "PORTAL_S3_LOCATION": "/portal/prod/",
        }
    )
    assert entry is not None and entry["BACKEND"] == S3_BACKEND
    options = entry["OPTIONS"]
    assert options["bucket_name"] == "files" and options["endpoint_url"] == "http://minio:9000"
    assert options["region_name"] == "eu-west-3" and options["addressing_style"] == "path"
    assert options["location"] == "portal/prod" and options["file_overwrite"] is False
    assert (options["access_key"], options["secret_key"]) == ("AK", "SK")
    aws = s3_storage({"PORTAL_S3_BUCKET": "files"})
    assert aws is not None and "access_key" not in aws["OPTIONS"], "AWS: boto3's own credential chain (roles)"
    assert aws["OPTIONS"]["endpoint_url"] is None and aws["OPTIONS"]["addressing_style"] == "auto"


@pytest.mark.parametrize(
    "environ",
    [
        {"PORTAL_S3_BUCKET": "b", "PORTAL_S3_ADDRESSING_STYLE": "sideways"},
        {"PORTAL_S3_BUCKET": "b", "PORTAL_S3_ACCESS_KEY_ID": "only-half"},
    ],
)
def test_it_refuses_a_half_or_wrong_s3_configuration(environ):
    with pytest.raises(ImproperlyConfigured):
        s3_storage(environ)


def test_a_simple_upload_is_stored_in_the_bucket(s3_storage, olivia, toucan_mapping):
    api = APIClient()
    api.force_authenticate(olivia)
    response = api.post(
        "/api/v1/uploads/",
        {"dataset": toucan_mapping.dataset_id, "file": SimpleUploadedFile("s.csv", b"a,b\n1,2\n")},
        format="multipart",
    )
    assert response.status_code == 201
    upload = Upload.objects.get(pk=response.json()["id"])
    assert isinstance(upload.file.storage._wrapped, S3Storage)
    assert upload.file.name in s3_storage.keys("")
    with upload.file.open("rb") as f:
        assert f.read() == b"a,b\n1,2\n"


def test_two_uploads_with_one_name_do_not_replace_each_other(s3_storage, toucan_mapping, alice):
    first = upload_create(dataset=toucan_mapping.dataset, file=SimpleUploadedFile("x.csv", b"1"), actor=alice)
    second = upload_create(dataset=toucan_mapping.dataset, file=SimpleUploadedFile("x.csv", b"2"), actor=alice)
    assert first.file.name != second.file.name
    assert first.file.open("rb").read() == b"1" and second.file.open("rb").read() == b"2"


def test_a_chunked_upload_is_assembled_on_s3_and_its_pieces_removed(
    s3_storage, olivia, toucan_mapping, django_capture_on_commit_callbacks
):
    content = bytes(range(256)) * 40_000  # ~10 MB: s3transfer sends it in several multipart parts
    piece = 3_000_000
    api = APIClient()
    api.force_authenticate(olivia)
    start = api.post(
        "/api/v1/uploads/chunked/",
        {"dataset": toucan_mapping.dataset_id, "filename": "big.bin.gz", "size": len(content)},
        format="json",
    ).json()
    url = f"/api/v1/uploads/chunked/{start['id']}/"
    for offset in range(0, len(content), piece):
        response = api.put(
            url,
            content[offset : offset + piece],
            content_type="application/octet-stream",
            HTTP_UPLOAD_OFFSET=str(offset),
            HTTP_CONTENT_DISPOSITION="attachment; filename=piece",
        )
        assert response.status_code == 200, response.content
    parts = ChunkedUpload.objects.get(pk=start["id"]).parts
    assert len(parts) == 4 and all(p in s3_storage.keys("chunked/") for p in parts)
    with django_capture_on_commit_callbacks(execute=True):
        done = api.post(url + "complete/")
    assert done.status_code == 201
    upload = Upload.objects.get(pk=done.json()["id"])
    assert upload.sha256 == hashlib.sha256(content).hexdigest()
    with upload.file.open("rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == upload.sha256
    assert not set(parts) & set(s3_storage.keys("chunked/")), "the pieces are deleted once assembled"


def test_a_prefix_keeps_every_object_under_it(s3_server, settings, toucan_mapping, alice):
    settings.STORAGES = {**settings.STORAGES, "default": s3_storage(s3_server.env(location="tenant-a/"))}
    upload = upload_create(dataset=toucan_mapping.dataset, file=SimpleUploadedFile("p.csv", b"p"), actor=alice)
    assert f"tenant-a/{upload.file.name}" in s3_server.keys("tenant-a/")
    assert default_storage.open(upload.file.name).read() == b"p"


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_worker_with_no_shared_disk_sends_the_file_it_reads_from_s3(
    celery_worker_process, toucan_mapping, alice, sim
):
    content = b"region,amount\n" + b"north,1\n" * 5000
    upload = upload_create(dataset=toucan_mapping.dataset, file=SimpleUploadedFile("sales.csv", content), actor=alice)
    assert isinstance(upload.file.storage._wrapped, S3Storage), "the autouse fixture switched this test to S3"
    release = release_create(
        mapping=toucan_mapping,
        upload=upload,
        params=params_validate(mapping=toucan_mapping, data={"operations": ["release"]}),
        actor=alice,
    )
    done = wait_for(
        lambda: (r := Release.objects.get(pk=release.pk)).is_terminal and r, timeout=30, message="the release"
    )
    assert done.status == ReleaseStatus.SUCCEEDED, done.error
    assert sim.state("toucan")["sources"]["demo-app/staging/sales.csv"]["sha256"] == hashlib.sha256(content).hexdigest()


# Web and worker code reach files only through the storage API (open, save, delete), never a path.
PATH_USES = re.compile(r"\.path\(|\bfile\.path\b|temporary_file_path|MEDIA_ROOT|\bopen\(\s*(upload|.*\.file)")
# The tus sink for FileSystemStorage appends chunks in place: it is chosen only when the default
# storage *is* a filesystem (portal/uploads/sinks.py: sink_for), so its paths are that storage's own.
FILESYSTEM_ONLY = {"portal/uploads/sinks.py"}


def test_no_code_reads_an_upload_through_a_filesystem_path():
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for package in ("portal", "connectors")
        for path in sorted((ROOT / package).rglob("*.py"))
        if str(path.relative_to(ROOT)) not in FILESYSTEM_ONLY
        for number, line in enumerate(Path(path).read_text().splitlines(), 1)
        if PATH_USES.search(line)
    ]
    assert offenders == []
