"""Limits are checked on the declared length before any byte is stored; abandoned uploads expire."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from portal.models import AuditEvent, TusUpload, Upload
from portal.tasks import upload_expire_task
from tests.factories import DatasetFactory, UploadFactory

from .conftest import metadata

pytestmark = pytest.mark.django_db

TUS = "/api/v1/uploads/tus/"


def _create(client: Client, key: str | None, length: int, **meta: str):  # type: ignore[no-untyped-def]
    headers = {"Tus-Resumable": "1.0.0", "Upload-Length": str(length), "Upload-Metadata": metadata(**meta)}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return client.post(TUS, headers=headers)


def _patch(client: Client, key: str, location: str, offset: int, body: bytes):  # type: ignore[no-untyped-def]
    return client.generic(
        "PATCH",
        location,
        body,
        content_type="application/offset+octet-stream",
        headers={"Tus-Resumable": "1.0.0", "Upload-Offset": str(offset), "Authorization": f"Bearer {key}"},
    )


def _parts() -> list[Path]:
    return list((Path(settings.MEDIA_ROOT) / "tus").glob("*.part"))


def test_it_refuses_an_oversize_upload_on_its_declared_length(client, sales, olivia_key, settings):
    settings.PORTAL_UPLOAD_MAX_BYTES = 1000
    response = _create(client, olivia_key, 1001, dataset=str(sales.pk), filename="big.csv")
    assert response.status_code == 413
    assert "limit is 1,000 bytes" in response.content.decode()
    assert not TusUpload.objects.exists()


def test_it_refuses_a_type_not_accepted_and_a_missing_dataset(client, sales, olivia_key):
    assert _create(client, olivia_key, 10, dataset=str(sales.pk), filename="tool.exe").status_code == 415
    assert _create(client, olivia_key, 10, filename="a.csv").status_code == 400
    assert _create(client, olivia_key, 10, dataset="999999", filename="a.csv").status_code == 404
    assert not TusUpload.objects.exists()


def test_it_counts_finished_and_in_flight_uploads_against_the_team_quota(client, sales, olivia_key, settings):
    settings.PORTAL_UPLOAD_TEAM_QUOTA_BYTES = 1000
    UploadFactory(dataset=sales, size=600)
    assert _create(client, olivia_key, 300, dataset=str(sales.pk), filename="a.csv").status_code == 201
    refused = _create(client, olivia_key, 101, dataset=str(sales.pk), filename="b.csv")
    assert refused.status_code == 413
    assert "quota of 1,000 bytes" in refused.content.decode()
    assert TusUpload.objects.count() == 1


def test_it_refuses_a_chunk_beyond_the_declared_length(client, sales, olivia_key):
    location = _create(client, olivia_key, 10, dataset=str(sales.pk), filename="a.csv")["Location"]
    response = _patch(client, olivia_key, location, 0, b"0123456789X")
    assert response.status_code == 413
    assert TusUpload.objects.get().offset == 0
    assert _parts()[0].stat().st_size == 0
    assert _patch(client, olivia_key, location, 0, b"01234").status_code == 204
    wrong = _patch(client, olivia_key, location, 0, b"01234")
    assert wrong.status_code == 409
    assert wrong["Upload-Offset"] == "5"


def test_it_requires_operator_on_the_datasets_team(client, sales, bob, charlie):
    from portal import tokens

    _t, viewer_key = tokens.token_create(user=bob, name="t")
    _t, outsider_key = tokens.token_create(user=charlie, name="t")
    assert _create(client, viewer_key, 10, dataset=str(sales.pk), filename="a.csv").status_code == 403
    assert _create(client, outsider_key, 10, dataset=str(sales.pk), filename="a.csv").status_code == 404
    assert _create(client, None, 10, dataset=str(sales.pk), filename="a.csv").status_code == 401
    assert _create(client, "drp_nope", 10, dataset=str(sales.pk), filename="a.csv").status_code == 401


def test_another_teams_operator_cannot_see_or_write_an_upload(client, sales, olivia_key, charlie):
    from portal import tokens

    location = _create(client, olivia_key, 10, dataset=str(sales.pk), filename="a.csv")["Location"]
    _t, outsider_key = tokens.token_create(user=charlie, name="t")
    head = client.head(location, headers={"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {outsider_key}"})
    assert head.status_code == 404
    assert _patch(client, outsider_key, location, 0, b"0123").status_code == 404


def test_a_session_needs_the_csrf_token(sales, olivia):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(olivia)
    headers = {"Tus-Resumable": "1.0.0", "Upload-Length": "10"}
    meta = metadata(dataset=str(sales.pk), filename="a.csv")
    assert browser.post(TUS, headers={**headers, "Upload-Metadata": meta}).status_code == 403
    browser.get(f"/datasets/{sales.pk}/upload/")
    token = browser.cookies[settings.CSRF_COOKIE_NAME].value
    created = browser.post(TUS, headers={**headers, "Upload-Metadata": meta, "X-CSRFToken": token})
    assert created.status_code == 201


def test_termination_deletes_the_stored_bytes(client, sales, olivia_key, olivia):
    location = _create(client, olivia_key, 10, dataset=str(sales.pk), filename="a.csv")["Location"]
    _patch(client, olivia_key, location, 0, b"01234")
    assert len(_parts()) == 1
    response = client.delete(location, headers={"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {olivia_key}"})
    assert response.status_code == 204
    assert not _parts() and not TusUpload.objects.exists()
    assert AuditEvent.objects.filter(action="upload-terminated", actor=olivia).exists()


def test_the_beat_task_expires_unfinished_uploads_only(client, sales, olivia_key):
    stale = _create(client, olivia_key, 10, dataset=str(sales.pk), filename="stale.csv")["Location"]
    _patch(client, olivia_key, stale, 0, b"01234")
    fresh = _create(client, olivia_key, 10, dataset=str(sales.pk), filename="fresh.csv")["Location"]
    done = _create(client, olivia_key, 3, dataset=str(sales.pk), filename="done.csv")["Location"]
    assert _patch(client, olivia_key, done, 0, b"abc").status_code == 204
    upload = Upload.objects.get(original_name="done.csv")
    past = timezone.now() - timedelta(seconds=1)
    TusUpload.objects.exclude(filename="fresh.csv").update(expires_at=past)

    assert upload_expire_task.apply().get() == 1

    assert list(TusUpload.objects.values_list("filename", flat=True)) == ["fresh.csv"]
    assert [p.name for p in _parts()] == [f"{fresh.rstrip('/').rsplit('/', 1)[-1]}.part"]
    assert Path(upload.file.path).read_bytes() == b"abc"  # a finished upload's file stays
    line = AuditEvent.objects.get(action="upload-expired")
    assert line.changes == {"name": "stale.csv", "offset": 5, "length": 10}
    assert stale


def test_the_expiry_is_a_setting(client, sales, olivia_key, settings):
    settings.PORTAL_UPLOAD_EXPIRE_SECONDS = 60
    response = _create(client, olivia_key, 10, dataset=str(sales.pk), filename="a.csv")
    row = TusUpload.objects.get()
    assert timedelta(seconds=55) < row.expires_at - timezone.now() <= timedelta(seconds=60)
    assert "Upload-Expires" in response


def test_a_plain_post_is_refused_on_its_content_length_before_the_body_is_read(client, sales, olivia, settings):
    settings.PORTAL_UPLOAD_MAX_BYTES = 1000
    client.force_login(olivia)
    # The declared length is far past the limit; the body is never read (it is not even there).
    response = client.post(
        f"/datasets/{sales.pk}/upload/",
        data=b"x",
        content_type="multipart/form-data; boundary=zzz",
        CONTENT_LENGTH=str(30 * 1024 * 1024),
    )
    assert response.status_code == 413
    api = client.post(
        "/api/v1/uploads/",
        data=b"x",
        content_type="multipart/form-data; boundary=zzz",
        CONTENT_LENGTH=str(30 * 1024 * 1024),
        HTTP_ACCEPT="application/json",
    )
    assert api.status_code == 413
    assert "limit is 1,000 bytes" in api.json()["detail"]


def test_a_plain_post_past_the_quota_is_refused_before_the_body_is_read(client, sales, olivia, settings):
    settings.PORTAL_UPLOAD_TEAM_QUOTA_BYTES = 200_000
    UploadFactory(dataset=sales, size=150_000)
    client.force_login(olivia)
    response = client.post(
        f"/datasets/{sales.pk}/upload/",
        data=b"x",
        content_type="multipart/form-data; boundary=zzz",
        CONTENT_LENGTH=str(200 * 1024),
    )
    assert response.status_code == 413
    assert "quota" in response.content.decode()
    other = DatasetFactory(team=sales.team, name="Other")
    assert other.team_id == sales.team_id
