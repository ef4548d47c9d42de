"""The REST API per resource and role, with personal tokens."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from portal import tokens
from portal.engine.core import release_cancel_now
from portal.models import ApiToken, Connection, Mapping, Release, Upload
from portal.services.mappings import params_validate
from portal.services.releases import release_create

pytestmark = pytest.mark.django_db

CANARY = "CANARY-api-secret-0c1d"


# Tokens


def test_a_token_is_stored_hashed_and_shown_once(alice, client):
    token, key = tokens.token_create(user=alice, name="airflow")
    assert key.startswith("drp_") and key not in token.key_hash and token.key_hash != key
    client.force_login(alice)
    page = client.get("/account/").content.decode()
    assert key not in page and token.prefix in page
    created = client.post("/account/", {"name": "cron"}, follow=True).content.decode()
    new = ApiToken.objects.get(name="cron")
    assert new.prefix in created and "shown only once" in created
    assert "Copy this token" not in client.get("/account/").content.decode(), "the clear token is not shown again"


def test_a_revoked_token_is_refused(api, alice, team):
    api.as_user(alice)
    assert api.get("/api/v1/datasets/").status_code == 200
    token = ApiToken.objects.get(user=alice)
    tokens.token_revoke(token=token)
    response = api.get("/api/v1/datasets/")
    assert response.status_code == 401 and response.json()["detail"] == "This API token was revoked."


def test_unknown_and_missing_tokens_are_401(api, db):
    assert api.get("/api/v1/releases/").status_code in (401, 403)
    api.credentials(HTTP_AUTHORIZATION="Bearer drp_nope")
    response = api.get("/api/v1/releases/")
    assert response.status_code == 401 and "Unknown" in response.json()["detail"]


def test_another_users_token_cannot_be_revoked_from_the_page(client, alice, bob):
    token, _ = tokens.token_create(user=alice, name="mine")
    client.force_login(bob)
    assert client.post("/account/", {"revoke": token.pk}).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


# Connections: secrets are write-only


def test_connections_take_secrets_and_never_return_them(api, alice, team, sim):
    api.as_user(alice)
    response = api.post(
        "/api/v1/connections/",
        {
            "platform": "toucan",
            "name": "Toucan API",
            "base_url": sim.url("toucan"),
            "credentials": {"login": "contributor@demo.example", "password": CANARY},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["credentials"] == {"login": "contributor@demo.example"} and body["secrets_set"] == ["password"]
    for url in ("/api/v1/connections/", f"/api/v1/connections/{body['id']}/"):
        assert CANARY not in api.get(url).content.decode()
    patched = api.patch(f"/api/v1/connections/{body['id']}/", {"name": "Renamed"}, format="json")
    assert patched.status_code == 200
    assert Connection.objects.get(pk=body["id"]).credentials().password.get_secret_value() == CANARY


def test_bad_input_gets_readable_4xx_and_saves_nothing(api, alice, team, sim):
    api.as_user(alice)
    unknown = api.post(
        "/api/v1/connections/",
        {"platform": "toucan", "name": "x", "base_url": sim.url("toucan"), "credentials": {}, "colour": "red"},
        format="json",
    )
    assert unknown.status_code == 400 and unknown.json()["errors"]["colour"] == ["Unknown field."]
    wrong_type = api.post("/api/v1/datasets/", {"name": ["not", "a", "string"]}, format="json")
    assert wrong_type.status_code == 400 and "name" in wrong_type.json()["errors"]
    malformed = api.generic("POST", "/api/v1/datasets/", "{not json", content_type="application/json")
    assert malformed.status_code == 400 and "JSON" in malformed.json()["detail"]
    bad_creds = api.post(
        "/api/v1/connections/",
        {"platform": "toucan", "name": "x", "base_url": sim.url("toucan"), "credentials": {"login": "a"}},
        format="json",
    )
    assert bad_creds.status_code == 400 and "password" in bad_creds.json()["errors"]
    assert not Connection.objects.exists()


# Roles and teams


def test_roles_are_enforced_as_in_the_ui(api, bob, olivia, toucan_mapping, csv_upload):
    api.as_user(bob)
    assert api.get(f"/api/v1/mappings/{toucan_mapping.pk}/").status_code == 200
    assert (
        api.post(
            "/api/v1/releases/", {"mapping": toucan_mapping.pk, "upload": csv_upload.pk}, format="json"
        ).status_code
        == 403
    )
    assert (
        api.post(f"/api/v1/mappings/{toucan_mapping.pk}/state/", {"state": "disabled"}, format="json").status_code
        == 403
    )
    api.as_user(olivia)
    assert (
        api.post(f"/api/v1/mappings/{toucan_mapping.pk}/state/", {"state": "disabled"}, format="json").status_code
        == 403
    )
    assert (
        api.post(
            "/api/v1/releases/", {"mapping": toucan_mapping.pk, "upload": csv_upload.pk}, format="json"
        ).status_code
        == 201
    )


def test_another_teams_objects_are_404(api, charlie, toucan_mapping, csv_upload):
    api.as_user(charlie)
    assert api.get(f"/api/v1/mappings/{toucan_mapping.pk}/").status_code == 404
    response = api.post("/api/v1/releases/", {"mapping": toucan_mapping.pk, "upload": csv_upload.pk}, format="json")
    assert response.status_code == 404
    assert api.get("/api/v1/releases/").json()["results"] == []
    assert not Release.objects.exists()


def test_an_archived_mapping_cannot_be_released(api, olivia, toucan_mapping, csv_upload):
    Mapping.objects.filter(pk=toucan_mapping.pk).update(state="archived")
    api.as_user(olivia)
    response = api.post("/api/v1/releases/", {"mapping": toucan_mapping.pk, "upload": csv_upload.pk}, format="json")
    assert response.status_code == 409 and "archived" in response.json()["detail"]
    assert not Release.objects.exists()


# Releases


def test_triggering_is_idempotent_with_a_key(api, olivia, toucan_mapping, csv_upload):
    api.as_user(olivia)
    body = {"mapping": toucan_mapping.pk, "upload": csv_upload.pk, "params": {"operations": ["release"]}}
    first = api.post("/api/v1/releases/", body, format="json", HTTP_IDEMPOTENCY_KEY="nightly-2026-11-22")
    second = api.post("/api/v1/releases/", body, format="json", HTTP_IDEMPOTENCY_KEY="nightly-2026-11-22")
    third = api.post("/api/v1/releases/", body, format="json", HTTP_IDEMPOTENCY_KEY="nightly-2026-11-23")
    assert (first.status_code, second.status_code, third.status_code) == (201, 200, 201)
    assert first.json()["id"] == second.json()["id"] != third.json()["id"]
    assert Release.objects.count() == 2
    assert [s["name"] for s in first.json()["steps"]] == ["upload", "operation:release"]


def test_release_params_are_validated_by_the_connector(api, olivia, toucan_mapping, csv_upload):
    api.as_user(olivia)
    response = api.post(
        "/api/v1/releases/",
        {"mapping": toucan_mapping.pk, "upload": csv_upload.pk, "params": {"operations": ["explode"]}},
        format="json",
    )
    assert response.status_code == 400 and "operations.0" in response.json()["errors"]


def test_history_is_cursor_paginated_and_filtered(api, bob, toucan_mapping, csv_upload, olivia):

    for _ in range(5):
        release_create(
            mapping=toucan_mapping,
            upload=csv_upload,
            params=params_validate(mapping=toucan_mapping, data={}),
            actor=olivia,
        )
    Release.objects.filter(pk=Release.objects.order_by("pk").first().pk).update(status="failed")
    api.as_user(bob)
    page = api.get("/api/v1/releases/", {"page_size": 2}).json()
    assert len(page["results"]) == 2 and page["next"]
    seen = [r["id"] for r in page["results"]]
    while page["next"]:
        page = api.get(page["next"]).json()
        seen += [r["id"] for r in page["results"]]
    assert seen == sorted(seen, reverse=True) and len(seen) == 5
    failed = api.get("/api/v1/releases/", {"status": "failed"}).json()["results"]
    assert len(failed) == 1
    assert api.get("/api/v1/releases/", {"status": "exploded"}).status_code == 400


def test_cancel_and_retry(api, olivia, toucan_mapping, csv_upload):
    api.as_user(olivia)
    release = api.post(
        "/api/v1/releases/", {"mapping": toucan_mapping.pk, "upload": csv_upload.pk}, format="json"
    ).json()
    assert api.post(f"/api/v1/releases/{release['id']}/retry/", {}, format="json").status_code == 409, "still running"
    cancelled = api.post(f"/api/v1/releases/{release['id']}/cancel/")
    assert cancelled.status_code == 202

    release_cancel_now(Release.objects.get(pk=release["id"]))
    retry = api.post(f"/api/v1/releases/{release['id']}/retry/", {"params": {"operations": ["release"]}}, format="json")
    assert retry.status_code == 201 and retry.json()["retry_of"] == release["id"]
    assert [s["name"] for s in retry.json()["steps"]] == ["upload", "operation:release"]


# Uploads, including chunked and resumed


def test_a_simple_upload(api, olivia, toucan_mapping):
    api.as_user(olivia)
    response = api.post(
        "/api/v1/uploads/",
        {"dataset": toucan_mapping.dataset_id, "file": SimpleUploadedFile("s.csv", b"a,b\n")},
        format="multipart",
    )
    assert response.status_code == 201 and response.json()["size"] == 4


def test_a_chunked_upload_resumes_after_a_cut(api, olivia, toucan_mapping):
    import hashlib

    content = b"".join(f"row-{i:06d},value\n".encode() for i in range(20000))  # ~340 KB
    api.as_user(olivia)
    start = api.post(
        "/api/v1/uploads/chunked/",
        {"dataset": toucan_mapping.dataset_id, "filename": "big.csv", "size": len(content)},
        format="json",
    ).json()
    url = f"/api/v1/uploads/chunked/{start['id']}/"
    piece = 100_000

    def send(offset):
        return api.put(
            url,
            content[offset : offset + piece],
            content_type="application/octet-stream",
            HTTP_UPLOAD_OFFSET=str(offset),
            HTTP_CONTENT_DISPOSITION="attachment; filename=piece",
        )

    assert send(0).json()["offset"] == piece
    # The connection drops; the client asks what the server has and sends the rest.
    assert send(0).status_code == 409, "a piece at the wrong offset is refused"
    offset = api.get(url).json()["offset"]
    assert offset == piece
    while offset < len(content):
        offset = send(offset).json()["offset"]
    early = api.get(url).json()
    assert early["offset"] == len(content) and early["upload"] is None
    done = api.post(url + "complete/")
    assert done.status_code == 201
    upload = Upload.objects.get(pk=done.json()["id"])
    assert upload.size == len(content) and upload.sha256 == hashlib.sha256(content).hexdigest()
    with upload.file.open("rb") as f:
        assert f.read() == content


def test_an_incomplete_chunked_upload_cannot_complete(api, olivia, toucan_mapping):
    api.as_user(olivia)
    start = api.post(
        "/api/v1/uploads/chunked/",
        {"dataset": toucan_mapping.dataset_id, "filename": "big.csv", "size": 10},
        format="json",
    ).json()
    response = api.post(f"/api/v1/uploads/chunked/{start['id']}/complete/")
    assert response.status_code == 409 and "Only 0 of 10 bytes" in response.json()["detail"]
    assert not Upload.objects.exists()


# Platform actions


def test_platform_actions_and_connection_test(api, olivia, bob, toucan_mapping, django_capture_on_commit_callbacks):
    api.as_user(bob)
    assert api.post(f"/api/v1/connections/{toucan_mapping.connection_id}/test/").status_code == 403
    assert api.get(f"/api/v1/mappings/{toucan_mapping.pk}/actions/nothing/").status_code == 404
    api.as_user(olivia)
    with django_capture_on_commit_callbacks() as callbacks:
        response = api.post(f"/api/v1/connections/{toucan_mapping.connection_id}/test/")
    assert response.status_code == 202 and response.json()["test_pending"] is True and len(callbacks) == 1


def test_an_idempotency_key_reused_with_another_body_is_refused_with_422(api, olivia, toucan_mapping, csv_upload):
    api.as_user(olivia)
    body = {"mapping": toucan_mapping.pk, "upload": csv_upload.pk, "params": {"operations": ["release"]}}
    first = api.post("/api/v1/releases/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    reordered = {"params": {"operations": ["release"]}, "upload": csv_upload.pk, "mapping": toucan_mapping.pk}
    same = api.post("/api/v1/releases/", reordered, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    other = {**body, "params": {"operations": ["preprocess_data_sources"]}}
    refused = api.post("/api/v1/releases/", other, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert (first.status_code, same.status_code, refused.status_code) == (201, 200, 422)
    assert same.json()["id"] == first.json()["id"]
    assert "different request body" in refused.json()["detail"]
    assert Release.objects.count() == 1


def test_a_release_set_idempotency_key_is_bound_to_its_body(api, olivia, toucan_mapping, csv_upload):
    from portal.models import ReleaseSet

    api.as_user(olivia)
    body = {"dataset": toucan_mapping.dataset_id, "mappings": [toucan_mapping.pk], "upload": csv_upload.pk}
    first = api.post("/api/v1/release-sets/", body, format="json", HTTP_IDEMPOTENCY_KEY="set-1")
    again = api.post("/api/v1/release-sets/", body, format="json", HTTP_IDEMPOTENCY_KEY="set-1")
    other = api.post("/api/v1/release-sets/", {**body, "upload": None}, format="json", HTTP_IDEMPOTENCY_KEY="set-1")
    assert (first.status_code, again.status_code, other.status_code) == (201, 201, 422)
    assert first.json()["id"] == again.json()["id"]
    assert ReleaseSet.objects.count() == 1
