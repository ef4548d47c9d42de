from __future__ import annotations

import pytest
from django.urls import reverse

from portal.models import Release, ReleaseSet

pytestmark = pytest.mark.django_db


def test_the_preview_then_confirm_creates_one_set(
    client, olivia, toucan_mapping, csv_upload, django_capture_on_commit_callbacks
):
    client.force_login(olivia)
    url = reverse("portal:release-set-new", args=[toucan_mapping.dataset_id])
    data = {"mappings": [toucan_mapping.pk], "upload": csv_upload.pk, "token": "tok"}
    preview = client.post(url, data).content.decode()
    assert 'id="set-preview"' in preview and not ReleaseSet.objects.exists()
    with django_capture_on_commit_callbacks():
        first = client.post(url, {**data, "confirm": "1"})
        second = client.post(url, {**data, "confirm": "1"})
    assert first["Location"] == second["Location"] == ReleaseSet.objects.get().get_absolute_url()
    assert Release.objects.count() == 1


def test_a_disabled_mapping_is_refused_by_name(client, olivia, toucan_mapping, csv_upload):
    toucan_mapping.state = "disabled"
    toucan_mapping.save()
    client.force_login(olivia)
    body = client.post(
        reverse("portal:release-set-new", args=[toucan_mapping.dataset_id]),
        {"mappings": [toucan_mapping.pk], "upload": csv_upload.pk, "confirm": "1"},
    ).content.decode()
    assert "Nothing was started" in body and "Sales on Toucan: The mapping Sales on Toucan is disabled" in body
    assert not Release.objects.exists()


def test_viewers_watch_but_cannot_start_or_retry(client, bob, olivia, toucan_mapping, csv_upload):
    from portal.services.release_sets import release_set_create

    release_set = release_set_create(
        dataset=toucan_mapping.dataset, mappings=[toucan_mapping], upload=csv_upload, actor=olivia
    )
    client.force_login(bob)
    assert client.get(reverse("portal:release-set-new", args=[toucan_mapping.dataset_id])).status_code == 403
    assert client.post(reverse("portal:release-set-retry", args=[release_set.pk])).status_code == 403
    matrix = client.get(reverse("portal:release-set-matrix", args=[release_set.pk]), headers={"HX-Request": "true"})
    assert matrix.status_code == 200 and b"Sales on Toucan" in matrix.content
    assert f"Set #{release_set.pk}".encode() in client.get(reverse("portal:release-set-list")).content


def test_the_api_creates_and_reads_sets(client, olivia, toucan_mapping, csv_upload):
    from rest_framework.test import APIClient

    from portal import tokens

    _token, key = tokens.token_create(user=olivia, name="t")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    body = {"dataset": toucan_mapping.dataset_id, "mappings": [toucan_mapping.pk], "upload": csv_upload.pk}
    created = api.post("/api/v1/release-sets/", body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    again = api.post("/api/v1/release-sets/", body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert created.status_code == 201 and again.json()["id"] == created.json()["id"]
    detail = api.get(f"/api/v1/release-sets/{created.json()['id']}/").json()
    assert detail["status"] == "running" and detail["releases"][0]["release_set"] == detail["id"]
    refused = api.post(f"/api/v1/release-sets/{detail['id']}/retry/", {}, format="json")
    assert refused.status_code == 409 and "still running" in refused.json()["detail"]
