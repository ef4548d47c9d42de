from __future__ import annotations

import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from portal.models import Release, ReleaseStatus, ReleaseStep, StepStatus, Upload
from portal.services.mappings import params_validate, params_version_save
from portal.services.releases import release_create

pytestmark = pytest.mark.django_db


def upload(client, dataset, name, content, json=True):
    headers = {"Accept": "application/json"} if json else {}
    return client.post(
        reverse("portal:upload-create", args=[dataset.pk]), {"file": SimpleUploadedFile(name, content)}, headers=headers
    )


def test_an_upload_is_stored_under_a_server_name_with_its_hash(client, olivia, toucan_mapping):
    client.force_login(olivia)
    response = upload(client, toucan_mapping.dataset, "../../etc/sales.csv", b"a,b\n1,2\n")
    assert response.status_code == 201
    stored = Upload.objects.get(pk=response.json()["id"])
    assert stored.original_name == "sales.csv"
    assert "sales" not in stored.file.name and stored.file.name.startswith(f"uploads/team-{stored.team_id}/")
    assert stored.size == 8 and stored.sha256 == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    with stored.file.open("rb") as f:
        assert f.read() == b"a,b\n1,2\n"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [("empty.csv", b"", "empty"), ("virus.exe", b"MZ", "not accepted"), ("noext", b"x", "not accepted")],
)
def test_bad_files_get_a_clear_error_and_nothing_is_saved(client, olivia, toucan_mapping, name, content, message):
    client.force_login(olivia)
    response = upload(client, toucan_mapping.dataset, name, content)
    assert response.status_code == 400
    assert message in " ".join(response.json()["errors"]["file"])
    assert not Upload.objects.exists()


def test_a_file_over_the_limit_is_refused(client, olivia, toucan_mapping, settings):
    settings.PORTAL_UPLOAD_MAX_BYTES = 10
    client.force_login(olivia)
    response = upload(client, toucan_mapping.dataset, "big.csv", b"x" * 11)
    assert response.status_code == 400 and "limit" in response.json()["errors"]["file"][0]


def test_the_plain_form_works_without_javascript(client, olivia, toucan_mapping):
    client.force_login(olivia)
    response = upload(client, toucan_mapping.dataset, "sales.csv", b"a\n1\n", json=False)
    assert response.status_code == 302 and response["Location"] == toucan_mapping.dataset.get_absolute_url()


def release_form(mapping, upload, token="tok-1", **params):
    data = {
        "upload": upload.pk if upload else "",
        "submission_token": token,
        "params-mode": "operations",
        "params-partial_kind": "preprocess",
        "params-upload": "on",
    }
    data.update({f"params-{k}": v for k, v in params.items()})
    return data


def test_submitting_the_release_form_twice_creates_one_release(
    client, olivia, toucan_mapping, csv_upload, django_capture_on_commit_callbacks
):
    client.force_login(olivia)
    url = reverse("portal:release-create", args=[toucan_mapping.pk])
    data = release_form(toucan_mapping, csv_upload, operations=["preprocess_data_sources", "release"])
    with django_capture_on_commit_callbacks() as callbacks:
        first = client.post(url, data)
        second = client.post(url, data)
    assert Release.objects.count() == 1
    release = Release.objects.get()
    assert first["Location"] == second["Location"] == release.get_absolute_url()
    assert len(callbacks) == 1, "the engine task is enqueued once, after commit"
    assert list(release.steps.values_list("name", flat=True)) == [
        "upload",
        "operation:preprocess_data_sources",
        "operation:release",
    ]
    assert release.created_by == olivia and release.params["operations"] == ["preprocess_data_sources", "release"]


def test_release_params_are_validated_by_the_connector(client, olivia, toucan_mapping, csv_upload):
    client.force_login(olivia)
    response = client.post(
        reverse("portal:release-create", args=[toucan_mapping.pk]),
        release_form(toucan_mapping, csv_upload, mode="partial", input_domains=""),
    )
    assert response.status_code == 200
    assert "input domain" in str(response.context["params_form"].errors)
    assert not Release.objects.exists()


def test_a_disabled_mapping_cannot_be_released(client, olivia, toucan_mapping, csv_upload):
    toucan_mapping.state = "disabled"
    toucan_mapping.save()
    client.force_login(olivia)
    response = client.post(
        reverse("portal:release-create", args=[toucan_mapping.pk]), release_form(toucan_mapping, csv_upload)
    )
    assert "is disabled" in response.content.decode()
    assert not Release.objects.exists()


def test_a_file_of_the_wrong_type_for_the_platform_is_refused(client, olivia, toucan_mapping):
    from tests.factories import UploadFactory

    archive = UploadFactory(dataset=toucan_mapping.dataset, original_name="bundle.zip")
    client.force_login(olivia)
    response = client.post(
        reverse("portal:release-create", args=[toucan_mapping.pk]), release_form(toucan_mapping, archive)
    )
    assert "not .zip" in response.content.decode()


def test_the_status_partial_polls_until_terminal(client, bob, toucan_mapping, csv_upload, olivia):

    params = params_validate(mapping=toucan_mapping, data={})
    release = release_create(mapping=toucan_mapping, upload=csv_upload, params=params, actor=olivia)
    client.force_login(bob)
    url = reverse("portal:release-status", args=[release.pk])
    live = client.get(url, headers={"HX-Request": "true"})
    assert live.status_code == 200
    assert 'hx-trigger="every 1s" data-hidden-every="15"' in live.content.decode()  # slower when hidden, no eval
    assert b"<html" not in live.content, "only the partial is rendered"
    Release.objects.filter(pk=release.pk).update(status=ReleaseStatus.SUCCEEDED)
    ReleaseStep.objects.filter(release=release).update(status=StepStatus.SUCCEEDED)
    final = client.get(url, headers={"HX-Request": "true"})
    assert final.status_code == 286
    assert b"hx-get" not in final.content


def test_a_viewer_sees_no_cancel_button(client, bob, olivia, toucan_mapping, csv_upload):

    params = params_validate(mapping=toucan_mapping, data={})
    release = release_create(mapping=toucan_mapping, upload=csv_upload, params=params, actor=olivia)
    client.force_login(bob)
    assert b"release-cancel" not in client.get(release.get_absolute_url()).content
    client.force_login(olivia)
    assert (
        reverse("portal:release-cancel", args=[release.pk]).encode() in client.get(release.get_absolute_url()).content
    )


def test_pages_name_the_platform(client, olivia, toucan_mapping, csv_upload):
    """Templates receive connector classes: they must read them, not call them."""
    client.force_login(olivia)
    assert (
        "Release Sales to Toucan Toco"
        in client.get(reverse("portal:release-create", args=[toucan_mapping.pk])).content.decode()
    )


def test_a_release_whose_plan_sends_a_file_needs_one(client, olivia, toucan_mapping):
    client.force_login(olivia)
    url = reverse("portal:release-create", args=[toucan_mapping.pk])
    refused = client.post(url, release_form(toucan_mapping, None, token="a"))
    assert "Choose a file to release" in refused.content.decode()
    # Without the upload step (operations only), no file is needed.
    data = release_form(toucan_mapping, None, token="b", operations=["release"])
    data.pop("params-upload")
    assert client.post(url, data).status_code == 302


def test_the_edit_form_shows_stored_lists_one_per_line(client, alice, toucan_mapping):

    params_version_save(
        mapping=toucan_mapping,
        params=params_validate(
            mapping=toucan_mapping, data={"mode": "partial", "input_domains": ["sales", "referential"]}
        ),
        actor=alice,
    )
    client.force_login(alice)
    page = client.get(reverse("portal:params-edit", args=[toucan_mapping.pk])).content.decode()
    assert "sales\nreferential</textarea>" in page
