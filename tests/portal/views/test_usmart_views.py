"""uSmart through the portal's generic pages: browsing the mapping's GUIDs by name, the
dataset panel, adding an output pipeline through a recorded ActionRun, and releases
driven with the engine whose steps show the upload, the revision and the pipelines.
A release that fails keeps its upload, so the same file can be released again."""

from __future__ import annotations

import hashlib
import html
import json
import re

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from portal import jobs
from portal.crypto import encrypt_json
from portal.models import ActionRun, Mapping, Release, ReleaseStatus, StepStatus, Upload
from portal.services.actions import action_perform, action_request
from portal.services.mappings import params_validate
from portal.services.releases import release_create
from simulators.usmart import (
    API_PIPELINE,
    CSV_PIPELINE,
    DEMO_DATASET,
    EMPTY_DATASET,
    READINGS_FILE,
    SENSORS_FILE,
    UsmartSimulator,
)
from tests.factories import ConnectionFactory, DatasetFactory, MappingFactory, UploadFactory
from tests.helpers import drive_release as drive

pytestmark = pytest.mark.django_db

UNKNOWN = "00000000-0000-4000-8000-000000000000"
CSV = b"sensor,at,value\ns1,2026-01-01T00:00:00Z,12.5\n"
TARGET = {
    "dataset_guid": DEMO_DATASET,
    "dataset_title": "Air quality sensors",
    "file_guid": READINGS_FILE,
    "file_name": "readings-2025.csv",
    "pipeline_guids": [CSV_PIPELINE, API_PIPELINE],
    "pipeline_names": f"{CSV_PIPELINE}: CSV download\n{API_PIPELINE}: Data API",
}


@pytest.fixture
def dispatched(monkeypatch):
    """The engine's task queue, recorded: these tests advance releases themselves."""
    calls: list[tuple[int, float]] = []
    monkeypatch.setattr(jobs, "release_advance", lambda release_id, countdown=0: calls.append((release_id, countdown)))
    return calls


@pytest.fixture
def usmart(team, sim):
    base = sim.url("usmart")
    credentials = UsmartSimulator.demo(base)["credentials"]
    return ConnectionFactory(
        team=team, platform="usmart", name="uSmart sim", base_url=base, credentials_encrypted=encrypt_json(credentials)
    )


@pytest.fixture
def readings(usmart, team):
    dataset = DatasetFactory(team=team, name="Air quality")
    return MappingFactory(dataset=dataset, connection=usmart, name="Readings on uSmart", target=dict(TARGET))


@pytest.fixture
def upload(readings, alice):
    return UploadFactory(
        dataset=readings.dataset,
        uploaded_by=alice,
        original_name="readings-2026.csv",
        file=ContentFile(CSV, name="upload"),
        size=len(CSV),
        sha256=hashlib.sha256(CSV).hexdigest(),
    )


def release(mapping: Mapping, upload: Upload | None, user) -> Release:  # type: ignore[no-untyped-def]
    params = params_validate(mapping=mapping, data={})
    return release_create(mapping=mapping, upload=upload, params=params, actor=user)


def page(client, url: str, **params) -> str:  # type: ignore[no-untyped-def]
    response = client.get(url, params)
    assert response.status_code == 200, response.status_code
    return html.unescape(response.content.decode())


def fills(body: str) -> list[dict]:
    """The ``data-fill`` of every choice in a rendered browse list."""
    return [json.loads(html.unescape(m)) for m in re.findall(r"data-fill='([^']*)'", body)]


# Browse and the mapping form


def test_browse_offers_datasets_files_and_pipelines_by_name(client, alice, usmart):
    client.force_login(alice)
    url = lambda field: reverse("portal:browse", args=[usmart.pk, field])  # noqa: E731

    datasets = page(client, url("dataset_guid"), q="")
    assert "Air quality sensors" in datasets and "Parking occupancy" in datasets
    assert fills(datasets)[0] == {
        "dataset_guid": DEMO_DATASET,
        "dataset_title": "Air quality sensors",
        "file_guid": "",
        "file_name": "",
        "pipeline_names": "",
    }

    files = page(client, url("file_guid"), **{"target-dataset_guid": DEMO_DATASET})
    assert "readings-2025.csv" in files and "A new file at each release" in files
    assert {"file_guid": READINGS_FILE, "file_name": "readings-2025.csv"} in fills(files)
    assert {"file_guid": "", "file_name": ""} in fills(files)

    pipelines = page(
        client, url("pipeline_guids"), **{"target-dataset_guid": DEMO_DATASET, "target-pipeline_guids": CSV_PIPELINE}
    )
    assert fills(pipelines)[1] == {
        "pipeline_guids": API_PIPELINE,
        "pipeline_names": f"{CSV_PIPELINE}: CSV download\n{API_PIPELINE}: Data API",
    }

    early = page(client, url("file_guid"), **{"target-dataset_guid": ""})
    assert 'class="error"' in early and "Choose the dataset first" in early
    unknown = page(client, url("file_guid"), **{"target-dataset_guid": UNKNOWN})
    assert f"uSmart does not know dataset {UNKNOWN}" in unknown
    assert client.get(url("file_name")).status_code == 404, "only GUID fields are browsed"


def test_browse_needs_the_admin_role(client, bob, charlie, usmart):
    url = reverse("portal:browse", args=[usmart.pk, "dataset_guid"])
    client.force_login(bob)
    assert client.get(url).status_code == 403
    client.force_login(charlie)
    assert client.get(url).status_code == 404


def test_the_mapping_form_keeps_guids_and_the_page_shows_names(client, alice, usmart, team):
    dataset = DatasetFactory(team=team, name="Air quality")
    client.force_login(alice)
    url = reverse("portal:mapping-add", args=[dataset.pk]) + f"?connection={usmart.pk}"
    form = page(client, url)
    for field in ("dataset_guid", "file_guid", "pipeline_guids"):
        assert f'data-browse="{reverse("portal:browse", args=[usmart.pk, field])}"' in form
    assert 'data-browse="' not in form.split('name="target-file_name"')[1].split(">")[0]

    data = {"connection": usmart.pk, "name": "Readings", **{f"target-{k}": v for k, v in TARGET.items()}}
    data["target-pipeline_guids"] = "\n".join(TARGET["pipeline_guids"])
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    mapping = Mapping.objects.get(name="Readings")
    assert mapping.target == TARGET, "GUIDs for the platform, names for people"
    detail = page(client, mapping.get_absolute_url())
    assert "Air quality sensors: new revision of readings-2025.csv, then CSV download, Data API" in detail

    # The edit form renders the stored list; saving it unchanged keeps the same target.
    edit_url = reverse("portal:mapping-edit", args=[mapping.pk])
    edit = page(client, edit_url)
    textareas = re.finditer(r'<textarea name="target-(\w+)"[^>]*>\n?(.*?)</textarea>', edit, re.S)
    shown = {m.group(1): m.group(2) for m in textareas}
    assert CSV_PIPELINE in shown["pipeline_guids"] and API_PIPELINE in shown["pipeline_guids"], shown
    posted = {"name": "Readings", **{f"target-{k}": v for k, v in TARGET.items() if isinstance(v, str)}}
    posted.update({f"target-{k}": v for k, v in shown.items()})
    assert client.post(edit_url, posted).status_code == 302
    mapping.refresh_from_db()
    assert mapping.target == TARGET


def test_the_mapping_form_refuses_a_file_the_dataset_does_not_hold(client, alice, usmart, team):
    dataset = DatasetFactory(team=team, name="Air quality")
    client.force_login(alice)
    url = reverse("portal:mapping-add", args=[dataset.pk]) + f"?connection={usmart.pk}"
    unknown = "00000000-0000-4000-8000-000000000099"
    data = {"connection": usmart.pk, "name": "Readings", **{f"target-{k}": v for k, v in TARGET.items()}}
    data["target-pipeline_guids"] = "\n".join(TARGET["pipeline_guids"])
    data["target-file_guid"] = unknown
    response = client.post(url, data)
    assert response.status_code == 200, "the form comes back"
    body = response.content.decode()
    assert f"Dataset Air quality sensors has no file {unknown}; its files: readings-2025.csv, sensors.csv" in body
    assert not Mapping.objects.filter(name="Readings").exists()


# Platform actions


def test_the_dataset_panel_shows_files_and_pipelines_with_their_status(client, bob, readings):
    client.force_login(bob)
    detail = page(client, readings.get_absolute_url())
    assert "Dataset on uSmart" in detail and 'id="action-dataset-out"' in detail
    assert "Add an output pipeline" in detail and "Your role does not allow this." in detail
    body = page(client, reverse("portal:mapping-action", args=[readings.pk, "dataset"]))
    assert "Air quality sensors: 2 file(s), 2 output pipeline(s)." in body
    assert "readings-2025.csv" in body and "replaced by each release" in body
    assert body.count('class="badge status-processed"') == 2
    assert "processed after each release (#2)" in body, "the mapping's order of pipelines"


def test_the_dataset_panel_says_when_the_platform_does_not_know_the_dataset(client, bob, readings):
    Mapping.objects.filter(pk=readings.pk).update(target={**TARGET, "dataset_guid": UNKNOWN})
    client.force_login(bob)
    body = page(client, reverse("portal:mapping-action", args=[readings.pk, "dataset"]))
    assert 'class="error"' in body and f"uSmart does not know dataset {UNKNOWN}" in body


def test_adding_a_pipeline_needs_manage_and_runs_as_a_recorded_action(
    client, olivia, alice, readings, sim, django_capture_on_commit_callbacks
):
    url = reverse("portal:mapping-action", args=[readings.pk, "create_pipeline"])
    client.force_login(olivia)
    assert client.post(url, {"a-create_pipeline-pipeline_id": "geojson"}).status_code == 403
    assert not ActionRun.objects.exists()

    client.force_login(alice)
    form = page(client, readings.get_absolute_url())
    assert '<option value="geojson">GeoJSON download</option>' in form and "realtime" not in form
    refused = client.post(url, {"a-create_pipeline-pipeline_id": "realtime-api"}, headers={"HX-Request": "true"})
    assert 'class="error"' in refused.content.decode() and not ActionRun.objects.exists()
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(url, {"a-create_pipeline-pipeline_id": "geojson"}, headers={"HX-Request": "true"})
    run = ActionRun.objects.get()
    assert response.status_code == 200 and run.status == ActionRun.Status.QUEUED and len(callbacks) == 1
    assert run.params == {"pipeline_id": "geojson"} and run.requested_by == alice

    action_perform(run=run)  # what the worker task does
    run.refresh_from_db()
    pipelines = sim.state("usmart")["datasets"][DEMO_DATASET]["resourceContainers"]
    created = [p for p in pipelines if p["pipelineId"] == "geojson"]
    assert run.status == ActionRun.Status.SUCCEEDED and len(created) == 1
    assert run.message.startswith(f"Added output pipeline GeoJSON download ({created[0]['resourceContainerGUID']})")
    status = client.get(reverse("portal:action-run", args=[run.pk]), headers={"HX-Request": "true"})
    assert status.status_code == 286 and "GeoJSON download" in status.content.decode()

    # A second one of the same kind: the platform's reason, recorded on the run.
    action = readings.connection.connector_class.action("create_pipeline")
    again = action_request(
        connection=readings.connection,
        mapping=readings,
        action=action,
        params=action.params(pipeline_id="geojson"),
        actor=alice,
    )
    action_perform(run=again)
    assert again.status == ActionRun.Status.FAILED
    assert again.message.endswith("The dataset already has a 'geojson' output pipeline")


# Releases


def test_a_release_shows_the_upload_the_revision_and_each_pipeline(
    client, bob, readings, upload, alice, dispatched, sim
):
    done = drive(release(readings, upload, alice))
    assert done.status == ReleaseStatus.SUCCEEDED, done.error
    steps = list(done.steps.all())
    assert [s.label for s in steps] == [
        "Upload the file to uSmart's storage",
        "Replace readings-2025.csv with a new revision",
        "Process output pipeline CSV download",
        "Process output pipeline Data API",
    ]
    stored = {f["fileGUID"]: f for f in sim.state("usmart")["datasets"][DEMO_DATASET]["files"]}[READINGS_FILE]
    assert stored["revision"] == 2 and stored["fileSize"] == len(CSV)

    client.force_login(bob)
    detail = page(client, done.get_absolute_url())
    assert "Air quality sensors: new revision of readings-2025.csv, then CSV download, Data API" in detail
    assert "Upload to uSmart's storage" in detail and f"{len(CSV):,} bytes" in detail
    assert "File on uSmart" in detail and "new revision" in detail
    assert detail.count("<h4>Output pipeline</h4>") == 2
    assert detail.count('class="badge status-processed"') == 2
    assert "signature=" not in detail and "usmart-demo-key-secret" not in detail


def test_an_expired_signed_url_is_renewed_and_the_release_goes_on(
    client, bob, readings, upload, alice, dispatched, sim
):
    sim.fail("usmart", "url_expired", times=2)
    done = drive(release(readings, upload, alice))
    assert done.status == ReleaseStatus.SUCCEEDED, done.error
    put = done.steps.get(name="put_request")
    assert "signed URL renewed 2×" in put.message
    client.force_login(bob)
    assert "2×" in page(client, done.get_absolute_url())


def test_a_release_to_an_unknown_file_fails_clearly_and_keeps_the_upload(readings, upload, alice, dispatched, sim):
    Mapping.objects.filter(pk=readings.pk).update(target={**TARGET, "file_guid": UNKNOWN})
    readings.refresh_from_db()
    failed = drive(release(readings, upload, alice))
    assert failed.status == ReleaseStatus.FAILED
    assert f"has no file {UNKNOWN} (readings-2025.csv); nothing was uploaded" in failed.error
    assert "edit the mapping" in failed.error
    assert sim.state("usmart")["uploads"] == {}, "nothing was sent"
    assert [s.status for s in failed.steps.all()][1:] == [StepStatus.SKIPPED] * 3

    # The upload and its file are still there: fix the mapping and release the same file.
    upload.refresh_from_db()
    assert upload.file.storage.exists(upload.file.name)
    Mapping.objects.filter(pk=readings.pk).update(target={**TARGET, "file_guid": SENSORS_FILE})
    readings.refresh_from_db()
    retried = drive(release(readings, upload, alice))
    assert retried.status == ReleaseStatus.SUCCEEDED and retried.upload_id == upload.pk


def test_a_size_mismatch_fails_clearly_and_keeps_the_upload(readings, upload, alice, dispatched, sim):
    # The portal recorded more bytes than its stored copy holds.
    Upload.objects.filter(pk=upload.pk).update(size=len(CSV) + 9)
    failed = drive(release(readings, Upload.objects.get(pk=upload.pk), alice))
    assert failed.status == ReleaseStatus.FAILED
    assert f"The stored file holds {len(CSV)} bytes, not the {len(CSV) + 9} recorded" in failed.error
    assert Upload.objects.filter(pk=upload.pk).exists() and upload.file.storage.exists(upload.file.name)
    files = {f["fileGUID"]: f for f in sim.state("usmart")["datasets"][DEMO_DATASET]["files"]}
    assert files[READINGS_FILE]["revision"] == 1, "no revision from a bad upload"


def test_a_failed_pipeline_shows_the_platforms_reason(client, bob, readings, upload, alice, dispatched, sim):
    reason = "Pipeline failed: bad timestamp in row 2"
    sim.fail("usmart", "pipeline_failed", match="resourceContainer:process", message=reason)
    failed = drive(release(readings, upload, alice))
    assert failed.status == ReleaseStatus.FAILED
    assert failed.error == f"Process output pipeline CSV download: {reason}"
    client.force_login(bob)
    detail = page(client, failed.get_absolute_url())
    assert 'class="badge status-failed"' in detail and "bad timestamp in row 2" in detail
    assert Upload.objects.filter(pk=upload.pk).exists()


def test_a_release_to_a_new_file_adds_it_to_the_dataset(readings, upload, alice, dispatched, sim):
    Mapping.objects.filter(pk=readings.pk).update(
        target={"dataset_guid": EMPTY_DATASET, "dataset_title": "Parking occupancy"}
    )
    readings.refresh_from_db()
    done = drive(release(readings, upload, alice))
    assert done.status == ReleaseStatus.SUCCEEDED, done.error
    revision = done.steps.get(name="revision")
    assert revision.label == "Add the file to the dataset" and revision.output["created"] is True
    files = sim.state("usmart")["datasets"][EMPTY_DATASET]["files"]
    assert [f["fileName"] for f in files] == ["readings-2026.csv"]
