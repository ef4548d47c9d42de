from __future__ import annotations

import dataclasses
import hashlib
import resource
import time
import tracemalloc

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from connectors.base import (
    AuthenticationError,
    ConnectorError,
    Done,
    Failed,
    FilePayload,
    InvalidResponse,
    NotFound,
    NotSupported,
    PermanentError,
    RateLimited,
    ServerError,
    StepContext,
    Timeout,
    Waiting,
)
from connectors.http import HttpClient
from connectors.usmart.connector import UsmartConnector
from connectors.usmart.schemas import CreatePipelineParams, UsmartCredentials, UsmartTarget
from simulators.usmart import (
    API_PIPELINE,
    CSV_PIPELINE,
    DEMO_DATASET,
    EMPTY_DATASET,
    ORG_GUID,
    READINGS_FILE,
    SENSORS_FILE,
)

from .driver import file_payload, run_release

KEY_ID, KEY_SECRET = "usmart-demo-key-id", "usmart-demo-key-secret"
UNKNOWN = "00000000-0000-4000-8000-000000000000"
NO_PARAMS = UsmartConnector.Params()


def make_connector(sim, **overrides) -> UsmartConnector:
    fields = {"organisation_guid": ORG_GUID, "api_key_id": KEY_ID, "api_key_secret": SecretStr(KEY_SECRET), **overrides}
    return UsmartConnector(UsmartCredentials(**fields), base_url=sim.url("usmart"), timeout=2.0)


@pytest.fixture
def connector(sim):
    return make_connector(sim)


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "exports" / "readings-2026.csv"
    path.parent.mkdir()
    path.write_text("sensor,at,value\ns1,2026-01-01T00:00:00Z,12.5\n")
    return path


def md5(path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def files_of(sim, dataset=DEMO_DATASET) -> dict[str, dict]:
    return {f["fileGUID"]: f for f in sim.state("usmart")["datasets"][dataset]["files"]}


def signed_put(sim, file_name="data.csv", headers=None) -> dict:
    """A fresh signed URL, asked for directly like the documented snippet does."""
    response = httpx.post(
        f"{sim.url('usmart')}/org/{ORG_GUID}/s3:generatePutRequest",
        json={"fileName": file_name},
        headers=headers or {"api-key-id": KEY_ID, "api-key-secret": KEY_SECRET},
        timeout=5,
    )
    response.raise_for_status()
    return response.json()["result"]


# Connection and browsing


def test_it_tests_the_connection_with_or_without_a_dataset(sim):
    assert ORG_GUID in make_connector(sim).test_connection()
    assert "Air quality sensors" in make_connector(sim, test_dataset_guid=DEMO_DATASET).test_connection()


def test_refused_keys_are_an_authentication_error_without_the_secret(sim):
    bad = make_connector(sim, api_key_secret=SecretStr("not-the-secret-42"))
    with pytest.raises(AuthenticationError) as info:
        bad.test_connection()
    assert info.value.permanent and info.value.status_code == 401
    assert "API key" in info.value.message
    assert "not-the-secret-42" not in str(info.value)
    assert "not-the-secret-42" not in repr(bad.credentials)


def test_a_viewer_key_can_view_but_not_upload(sim):
    viewer = make_connector(
        sim, api_key_id="usmart-viewer-key-id", api_key_secret=SecretStr("usmart-viewer-key-secret")
    )
    assert viewer.view_dataset(DEMO_DATASET)["title"] == "Air quality sensors"
    with pytest.raises(AuthenticationError, match="Provider role"):
        viewer.test_connection()


def test_it_views_a_dataset(connector):
    dataset = connector.view_dataset(DEMO_DATASET)
    assert dataset["title"] == "Air quality sensors"
    assert {(f["guid"], f["name"]) for f in dataset["files"]} == {
        (SENSORS_FILE, "sensors.csv"),
        (READINGS_FILE, "readings-2025.csv"),
    }
    assert all(isinstance(f["size"], int) for f in dataset["files"])
    assert [(p["guid"], p["pipeline_id"], p["status"]) for p in dataset["pipelines"]] == [
        (CSV_PIPELINE, "csv", "processed"),
        (API_PIPELINE, "api", "processed"),
    ]
    empty = connector.view_dataset(EMPTY_DATASET)
    assert empty["files"] == [] and empty["pipelines"] == []


def test_unknown_guids_are_not_found(sim, connector, csv_file):
    with pytest.raises(NotFound, match="not found"):
        connector.view_dataset(UNKNOWN)
    with pytest.raises(PermanentError, match="not a GUID"):
        connector.view_dataset("sensors")
    with pytest.raises(NotFound, match="Organisation"):
        make_connector(sim, organisation_guid=UNKNOWN).view_dataset(DEMO_DATASET)
    # An unknown file is refused before anything is uploaded.
    target = UsmartTarget(dataset_guid=DEMO_DATASET, file_guid=UNKNOWN)
    with pytest.raises(NotFound, match=f"no file {UNKNOWN}"):
        run_release(connector, target, NO_PARAMS, file=file_payload(csv_file))
    target = UsmartTarget(dataset_guid=DEMO_DATASET, file_guid=SENSORS_FILE, pipeline_guids=[UNKNOWN])
    with pytest.raises(NotFound, match="no output pipeline"):
        run_release(connector, target, NO_PARAMS, file=file_payload(csv_file))
    assert sim.state("usmart")["uploads"] == {}


def test_credentials_and_targets_validate_guids_and_file_names():
    with pytest.raises(ValidationError, match="GUID"):
        UsmartCredentials(organisation_guid="my-org", api_key_id="k", api_key_secret=SecretStr("s"))
    with pytest.raises(ValidationError, match="not a path"):
        UsmartTarget(dataset_guid=DEMO_DATASET, file_name="exports/readings.csv")
    target = UsmartTarget(dataset_guid=DEMO_DATASET.upper(), pipeline_guids=[CSV_PIPELINE, CSV_PIPELINE.upper()])
    assert target.dataset_guid == DEMO_DATASET and target.pipeline_guids == [CSV_PIPELINE]


def test_it_creates_a_pipeline(connector, sim):
    pipeline = connector.create_pipeline(EMPTY_DATASET, "geojson")
    assert pipeline["pipeline_id"] == "geojson" and pipeline["status"] == "created"
    assert [p["guid"] for p in connector.view_dataset(EMPTY_DATASET)["pipelines"]] == [pipeline["guid"]]
    with pytest.raises(PermanentError, match="not supported"):
        connector.create_pipeline(EMPTY_DATASET, "realtime-api")
    with pytest.raises(PermanentError, match="already has"):
        connector.create_pipeline(EMPTY_DATASET, "geojson")


# Listing datasets (the private DCAT catalogue) and browsing


def test_it_lists_the_organisations_datasets_from_its_private_dcat(connector, sim):
    datasets = connector.list_datasets()
    assert [(d["guid"], d["title"]) for d in datasets] == [
        (DEMO_DATASET, "Air quality sensors"),
        (EMPTY_DATASET, "Parking occupancy"),  # private: only the private catalogue has it
    ]
    assert datasets[0]["description"] == "Sensor locations and hourly readings"
    assert sim.state("usmart")["requests"][-1] == {"action": "dcat:private", "key_id": KEY_ID, "body": {}}
    # The public catalogue needs no key and holds the public datasets only; the private one needs a key.
    public = httpx.get(f"{sim.url('usmart')}/org/{ORG_GUID}/dcat/public", timeout=5).json()
    assert [d["identifier"] for d in public["dataset"]] == [DEMO_DATASET]
    assert f"/org/{ORG_GUID}/dcat/public" in public["@id"], "the docs read the organisation GUID from @id"
    assert httpx.get(f"{sim.url('usmart')}/org/{ORG_GUID}/dcat/private", timeout=5).status_code == 401


def test_a_viewer_key_may_list_and_an_unknown_organisation_is_explained(sim):
    viewer = make_connector(
        sim, api_key_id="usmart-viewer-key-id", api_key_secret=SecretStr("usmart-viewer-key-secret")
    )
    assert len(viewer.list_datasets()) == 2
    with pytest.raises(NotFound, match="Organisation GUID") as info:
        make_connector(sim, organisation_guid=UNKNOWN).list_datasets()
    assert "answered 404" not in info.value.message, "the platform's words, not the request line"
    with pytest.raises(AuthenticationError, match="API key id or secret") as info:
        make_connector(sim, api_key_secret=SecretStr("wrong-secret-123")).list_datasets()
    assert "wrong-secret-123" not in str(info.value)


def _mocked(connector: UsmartConnector, body) -> UsmartConnector:
    """The connector with its API client answering ``body`` to every request."""
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=body))
    connector.http = HttpClient("http://usmart.test/org/x", timeout=1, transport=transport)
    return connector


def test_the_catalogue_is_read_in_json_ld_form_too(sim):
    connector = _mocked(
        make_connector(sim),
        {
            "@id": f"https://data.usmart.io/org/{ORG_GUID}/dcat/private",
            "dcat:dataset": [
                {
                    "@id": f"https://data.usmart.io/org/{ORG_GUID}/dataset/{EMPTY_DATASET.upper()}",
                    "dct:title": {"@value": "Parking occupancy"},
                },
                {"dct:identifier": f"urn:usmart:{DEMO_DATASET}", "dct:title": ["Air quality sensors"]},
                {"dct:title": "No identifier: skipped"},
                "not an object",
            ],
        },
    )
    assert [(d["guid"], d["title"]) for d in connector.list_datasets()] == [
        (DEMO_DATASET, "Air quality sensors"),
        (EMPTY_DATASET, "Parking occupancy"),
    ]
    assert _mocked(make_connector(sim), {"dataset": []}).list_datasets() == []
    with pytest.raises(InvalidResponse, match="no dataset list"):
        _mocked(make_connector(sim), {"@type": "dcat:Catalog"}).list_datasets()


def test_browsing_datasets_fills_the_title_and_clears_the_previous_file(connector):
    choices = connector.browse("dataset_guid")
    assert [(c.value, c.label) for c in choices] == [
        (DEMO_DATASET, "Air quality sensors"),
        (EMPTY_DATASET, "Parking occupancy"),
    ]
    assert choices[1].fill == {
        "dataset_title": "Parking occupancy",
        "file_guid": "",
        "file_name": "",
        "pipeline_names": "",
    }
    assert DEMO_DATASET in choices[0].detail
    # Text filters by name; a whole GUID (the field's current value) lists everything.
    assert [c.label for c in connector.browse("dataset_guid", query="PARK")] == ["Parking occupancy"]
    current = connector.browse("dataset_guid", query=DEMO_DATASET, values={"dataset_guid": DEMO_DATASET})
    assert len(current) == 2
    assert current[0].fill == {"dataset_title": "Air quality sensors"}, "the same dataset keeps its file"


def test_browsing_files_lists_the_datasets_files_and_a_new_file(connector):
    with pytest.raises(PermanentError, match="Choose the dataset first"):
        connector.browse("file_guid", values={"dataset_guid": ""})
    choices = connector.browse("file_guid", values={"dataset_guid": DEMO_DATASET})
    assert [(c.value, c.label, dict(c.fill)) for c in choices] == [
        (SENSORS_FILE, "sensors.csv", {"file_name": "sensors.csv"}),
        (READINGS_FILE, "readings-2025.csv", {"file_name": "readings-2025.csv"}),
        ("", "A new file at each release", {"file_name": ""}),
    ]
    assert "1,048,576 bytes" in choices[1].detail and "revision 1" in choices[1].detail
    empty = connector.browse("file_guid", values={"dataset_guid": EMPTY_DATASET})
    assert [c.value for c in empty] == [""], "a dataset without files can still get a new one"
    with pytest.raises(NotFound, match="choose the dataset again with Browse"):
        connector.browse("file_guid", values={"dataset_guid": UNKNOWN})


def test_browsing_pipelines_records_the_names_of_the_chosen_ones(connector):
    first = connector.browse("pipeline_guids", values={"dataset_guid": DEMO_DATASET})
    assert [(c.value, c.label) for c in first] == [(CSV_PIPELINE, "CSV download"), (API_PIPELINE, "Data API")]
    assert first[0].fill == {"pipeline_names": f"{CSV_PIPELINE}: CSV download"}
    assert "processed" in first[0].detail
    # With the CSV pipeline already chosen, choosing the API one records both names, in order.
    second = connector.browse(
        "pipeline_guids", values={"dataset_guid": DEMO_DATASET, "pipeline_guids": f"{CSV_PIPELINE}\n"}
    )
    assert second[1].fill == {"pipeline_names": f"{CSV_PIPELINE}: CSV download\n{API_PIPELINE}: Data API"}
    assert connector.browse("pipeline_guids", values={"dataset_guid": EMPTY_DATASET}) == []
    with pytest.raises(NotSupported):
        connector.browse("file_name", values={"dataset_guid": DEMO_DATASET})


def test_the_target_keeps_guids_and_shows_names():
    target = UsmartTarget(
        dataset_guid=DEMO_DATASET,
        dataset_title="Air quality sensors",
        file_guid=READINGS_FILE,
        file_name="readings-2025.csv",
        pipeline_guids=[API_PIPELINE, CSV_PIPELINE],
        pipeline_names=f"{CSV_PIPELINE.upper()} : CSV download\n{API_PIPELINE}: Data API\n{SENSORS_FILE}: not chosen",
    )
    # Names of the chosen pipelines only, in their order, GUIDs canonical.
    assert target.pipeline_names == f"{API_PIPELINE}: Data API\n{CSV_PIPELINE}: CSV download"
    assert UsmartConnector.describe_target(target) == (
        "Air quality sensors: new revision of readings-2025.csv, then Data API, CSV download"
    )
    assert [s.label for s in UsmartConnector.plan(target, NO_PARAMS)[2:]] == [
        "Process output pipeline Data API",
        "Process output pipeline CSV download",
    ]
    bare = UsmartTarget(dataset_guid=EMPTY_DATASET, pipeline_guids=[CSV_PIPELINE])
    assert UsmartConnector.describe_target(bare) == f"Dataset {EMPTY_DATASET}: a new file, then {CSV_PIPELINE}"
    with pytest.raises(ValidationError, match="<pipeline GUID>: <name>"):
        UsmartTarget(dataset_guid=DEMO_DATASET, pipeline_names="CSV download")


def test_pipeline_guids_may_come_several_to_a_line():
    # Commas, spaces, or a pasted list (the edit form shows a stored list that way).
    target = UsmartTarget(dataset_guid=DEMO_DATASET, pipeline_guids=[f"['{CSV_PIPELINE}', '{API_PIPELINE}']"])
    assert target.pipeline_guids == [CSV_PIPELINE, API_PIPELINE]
    with pytest.raises(ValidationError, match="GUID"):
        UsmartTarget(dataset_guid=DEMO_DATASET, pipeline_guids=[f"{CSV_PIPELINE}, csv"])


# Platform actions and step tables


def test_the_dataset_action_shows_files_and_pipelines_with_the_mappings_own(connector):
    target = UsmartTarget(dataset_guid=DEMO_DATASET, file_guid=READINGS_FILE, pipeline_guids=[API_PIPELINE])
    action = UsmartConnector.action("dataset")
    assert action.auto and not action.mutating and action.scope == "mapping"
    result = connector.run_action(action, target=target, params=None)
    assert result.message.startswith("Air quality sensors: 2 file(s), 2 output pipeline(s)")
    files, pipelines = result.tables
    assert [row[:2] for row in files.rows] == [["sensors.csv", SENSORS_FILE], ["readings-2025.csv", READINGS_FILE]]
    assert [row[-1] for row in files.rows] == ["", "replaced by each release"]
    status = pipelines.columns.index(pipelines.status_column)
    assert [(row[0], row[status], row[-1]) for row in pipelines.rows] == [
        ("CSV download", "processed", ""),
        ("Data API", "processed", "processed after each release (#1)"),
    ]
    stale = UsmartTarget(dataset_guid=DEMO_DATASET, file_guid=UNKNOWN)
    warning = connector.run_action(action, target=stale, params=None).message
    assert f"Warning: the mapped file {UNKNOWN} is no longer in the dataset" in warning


def test_the_create_pipeline_action_adds_one_and_explains_a_refusal(connector, sim):
    action = UsmartConnector.action("create_pipeline")
    assert action.mutating and action.role == "manage" and action.params is CreatePipelineParams
    with pytest.raises(ValidationError):
        CreatePipelineParams(pipeline_id="realtime-api")  # not offered: the API cannot add it
    target = UsmartTarget(dataset_guid=EMPTY_DATASET, dataset_title="Parking occupancy")
    result = connector.run_action(action, target=target, params=CreatePipelineParams(pipeline_id="json"))
    created = sim.state("usmart")["datasets"][EMPTY_DATASET]["resourceContainers"]
    assert [p["pipelineId"] for p in created] == ["json"]
    assert result.message.startswith(f"Added output pipeline JSON download ({created[0]['resourceContainerGUID']})")
    assert result.tables[0].rows == [["JSON download", "json", "created", "", ""]]
    with pytest.raises(PermanentError) as info:
        connector.run_action(action, target=target, params=CreatePipelineParams(pipeline_id="json"))
    assert info.value.message == (
        f"uSmart did not add a json output pipeline to dataset {EMPTY_DATASET}:"
        " The dataset already has a 'json' output pipeline"
    )


def test_steps_show_the_upload_the_revision_and_the_pipelines(connector, csv_file):
    target = UsmartTarget(dataset_guid=DEMO_DATASET, file_guid=READINGS_FILE, pipeline_guids=[CSV_PIPELINE])
    outcomes = dict(run_release(connector, target, NO_PARAMS, file=file_payload(csv_file)))
    size = csv_file.stat().st_size
    (upload,) = UsmartConnector.step_tables("put_request", outcomes["put_request"].output)
    assert upload.rows == [["readings-2026.csv", f"{size:,} bytes", "text/csv", md5(csv_file), "no"]]
    (revision,) = UsmartConnector.step_tables("revision", outcomes["revision"].output)
    assert revision.rows == [["readings-2026.csv", READINGS_FILE, 2, f"{size:,} bytes", "new revision"]]
    step = f"pipeline:{CSV_PIPELINE}"
    (pipeline,) = UsmartConnector.step_tables(step, outcomes[step].output)
    assert pipeline.status_column == "Status"
    assert pipeline.rows[0][:3] == ["CSV download", "csv", "processed"] and pipeline.rows[0][3]
    # Nothing yet for a step that has not run; nothing for a step this connector never plans.
    assert UsmartConnector.step_tables(step, {}) == [] and UsmartConnector.step_tables("other", {"status": "x"}) == []
    assert "signature" not in str(outcomes) and KEY_SECRET not in str(outcomes)


def test_a_waiting_pipeline_step_shows_its_live_status(connector, sim):
    sim.config("usmart", delay=30)
    target = UsmartTarget(dataset_guid=DEMO_DATASET, pipeline_guids=[API_PIPELINE])
    step = connector.plan(target, NO_PARAMS)[-1]
    waiting = connector.run_step(step, StepContext(target=target, params=NO_PARAMS, release_key="k"))
    (table,) = UsmartConnector.step_tables(f"pipeline:{API_PIPELINE}", waiting.output)
    assert table.rows[0][:3] == ["Data API", "api", "queued"]


# Releases


def test_it_updates_a_revision_and_processes_the_pipelines(connector, csv_file, sim):
    target = UsmartTarget(
        dataset_guid=DEMO_DATASET,
        file_guid=READINGS_FILE,
        file_name="readings.csv",
        pipeline_guids=[CSV_PIPELINE, API_PIPELINE],
    )
    assert [s.name for s in connector.plan(target, NO_PARAMS)] == [
        "put_request",
        "revision",
        f"pipeline:{CSV_PIPELINE}",
        f"pipeline:{API_PIPELINE}",
    ]
    assert connector.plan(target, NO_PARAMS)[0].idempotent

    outcomes = run_release(connector, target, NO_PARAMS, file=file_payload(csv_file))
    assert all(isinstance(o, Done) for _, o in outcomes), outcomes
    upload = outcomes[0][1]
    assert "signature" not in str(upload.output) and upload.output["etag"] == md5(csv_file)
    assert outcomes[1][1].output["revision"] == 2

    stored = files_of(sim)[READINGS_FILE]
    assert stored["revision"] == 2
    assert stored["fileName"] == "readings.csv"  # the base name, never the local path
    assert stored["fileSize"] == csv_file.stat().st_size and stored["md5"] == md5(csv_file)
    pipelines = {
        p["resourceContainerGUID"]: p for p in sim.state("usmart")["datasets"][DEMO_DATASET]["resourceContainers"]
    }
    assert all(p["status"] == "processed" and p["runs"] == 1 for p in pipelines.values())

    requests = sim.state("usmart")["requests"]
    revision = next(r["body"] for r in requests if r["action"] == "file:updateRevision")
    assert revision == {
        **revision,
        "fileGUID": READINGS_FILE,
        "fileSize": csv_file.stat().st_size,
        "action": "file:updateRevision",
    }
    assert not any(u["api_key_headers"] for u in sim.state("usmart")["uploads"].values())


def test_the_file_name_defaults_to_the_base_name_of_the_upload(connector, csv_file, sim):
    target = UsmartTarget(dataset_guid=DEMO_DATASET, file_guid=SENSORS_FILE)
    payload = dataclasses.replace(file_payload(csv_file), name="C:\\exports\\sensors-2026.csv")
    run_release(connector, target, NO_PARAMS, file=payload)
    assert files_of(sim)[SENSORS_FILE]["fileName"] == "sensors-2026.csv"


def test_it_creates_a_file_when_the_target_has_none(connector, csv_file, sim):
    target = UsmartTarget(dataset_guid=EMPTY_DATASET, file_name="occupancy.csv")
    assert connector.plan(target, NO_PARAMS)[1].label == "Add the file to the dataset"
    outcomes = run_release(connector, target, NO_PARAMS, file=file_payload(csv_file))
    created = outcomes[1][1]
    assert isinstance(created, Done) and created.output["created"]
    files = files_of(sim, EMPTY_DATASET)
    assert list(files) == [created.output["file_guid"]]
    assert files[created.remote_ref]["fileName"] == "occupancy.csv"
    body = next(r["body"] for r in sim.state("usmart")["requests"] if r["action"] == "file:create")
    assert body["datasetGUID"] == EMPTY_DATASET and "fileGUID" not in body


def test_an_expired_signed_url_is_replaced_by_a_fresh_one(connector, csv_file, sim):
    sim.fail("usmart", "url_expired", times=2)
    target = UsmartTarget(dataset_guid=DEMO_DATASET, file_guid=SENSORS_FILE)
    outcomes = run_release(connector, target, NO_PARAMS, file=file_payload(csv_file))
    assert outcomes[0][1].output["attempts"] == 3 and "renewed 2×" in outcomes[0][1].message
    assert files_of(sim)[SENSORS_FILE]["revision"] == 2


def test_urls_that_keep_expiring_end_the_step_with_a_transient_error(connector, csv_file, sim):
    sim.config("usmart", url_ttl=-5)  # every new URL is born expired
    target = UsmartTarget(dataset_guid=DEMO_DATASET, file_guid=SENSORS_FILE)
    with pytest.raises(ConnectorError, match="expired each of 3 times") as info:
        run_release(connector, target, NO_PARAMS, file=file_payload(csv_file))
    assert not info.value.permanent
    assert "signature" not in str(info.value)


def test_the_signed_url_expires_after_its_ttl(sim):
    sim.config("usmart", url_ttl=1)
    put = signed_put(sim)
    time.sleep(1.6)
    response = httpx.put(put["signedRequest"], content=b"a,b\n", headers={"Content-Type": put["contentType"]})
    assert response.status_code == 403 and "Request has expired" in response.text


def test_the_storage_rejects_a_wrong_signature_or_content_type(sim):
    put = signed_put(sim)
    tampered = put["signedRequest"].replace("signature=", "signature=0")
    response = httpx.put(tampered, content=b"a,b\n", headers={"Content-Type": put["contentType"]})
    assert response.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in response.text
    response = httpx.put(put["signedRequest"], content=b"a,b\n", headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 403 and "Content-Type must be text/csv" in response.text
    # S3 wants a length, so a chunked upload is refused too.
    response = httpx.put(put["signedRequest"], content=iter([b"a,b\n"]), headers={"Content-Type": put["contentType"]})
    assert response.status_code == 411
    assert sim.state("usmart")["uploads"][put["reference"]]["stored"] is False
    response = httpx.put(put["signedRequest"], content=b"a,b\n", headers={"Content-Type": put["contentType"]})
    assert response.status_code == 200


def test_a_refused_put_is_permanent_and_does_not_leak_the_signature(connector, csv_file, sim):
    put = connector._put_request("data.csv")
    signature = put["signedRequest"].split("signature=")[1]
    forged = {**put, "signedRequest": put["signedRequest"].replace(signature, "f" * len(signature))}
    with pytest.raises(PermanentError, match="SignatureDoesNotMatch") as info:
        connector._put(forged, file_payload(csv_file))
    assert not isinstance(info.value, AuthenticationError)
    assert "f" * 16 not in str(info.value) and "?" not in str(info.value)


def test_a_size_mismatch_is_refused_permanently(connector, csv_file, sim):
    target = UsmartTarget(dataset_guid=DEMO_DATASET, file_guid=SENSORS_FILE)
    payload = file_payload(csv_file)
    steps = connector.plan(target, NO_PARAMS)
    upload = connector.run_step(steps[0], StepContext(target=target, params=NO_PARAMS, release_key="k", file=payload))
    # The portal's recorded size disagrees with the bytes that reached the platform.
    wrong = dataclasses.replace(payload, size=payload.size + 7)
    ctx = StepContext(
        target=target, params=NO_PARAMS, release_key="k", file=wrong, results={"put_request": dict(upload.output)}
    )
    with pytest.raises(PermanentError, match="declared size") as info:
        connector.run_step(steps[1], ctx)
    assert str(payload.size) in info.value.message and info.value.status_code == 400
    assert files_of(sim)[SENSORS_FILE]["revision"] == 1


def test_a_file_shorter_than_recorded_is_not_sent(connector, csv_file, sim):
    target = UsmartTarget(dataset_guid=DEMO_DATASET, file_guid=SENSORS_FILE)
    payload = dataclasses.replace(file_payload(csv_file), size=csv_file.stat().st_size + 100)
    with pytest.raises(PermanentError, match="not the .* recorded"):
        connector.run_step(
            connector.plan(target, NO_PARAMS)[0],
            StepContext(target=target, params=NO_PARAMS, release_key="k", file=payload),
        )


def test_a_failed_pipeline_fails_its_step_with_the_platform_reason(connector, csv_file, sim):
    sim.fail(
        "usmart",
        "pipeline_failed",
        match="resourceContainer:process",
        message="Pipeline failed: bad timestamp in row 2",
    )
    target = UsmartTarget(
        dataset_guid=DEMO_DATASET, file_guid=SENSORS_FILE, pipeline_guids=[API_PIPELINE, CSV_PIPELINE]
    )
    outcomes = run_release(connector, target, NO_PARAMS, file=file_payload(csv_file))
    name, failed = outcomes[-1]
    assert name == f"pipeline:{API_PIPELINE}" and isinstance(failed, Failed)
    assert failed.message == "Pipeline failed: bad timestamp in row 2" and failed.remote_status == "failed"


def test_a_pipeline_step_waits_on_the_run(connector, csv_file, sim):
    sim.config("usmart", delay=30)
    target = UsmartTarget(dataset_guid=DEMO_DATASET, pipeline_guids=[CSV_PIPELINE])
    step = connector.plan(target, NO_PARAMS)[-1]
    first = connector.run_step(step, StepContext(target=target, params=NO_PARAMS, release_key="k"))
    assert isinstance(first, Waiting) and first.remote_status == "queued" and first.remote_ref != CSV_PIPELINE
    again = connector.check_step(
        step, StepContext(target=target, params=NO_PARAMS, release_key="k", remote_ref=first.remote_ref)
    )
    assert isinstance(again, Waiting) and again.remote_ref == first.remote_ref


@pytest.mark.parametrize(
    ("mode", "error", "options"),
    [
        ("500", ServerError, {}),
        ("503", ServerError, {"match": "/s3/put/"}),
        ("429", RateLimited, {"retry_after": 7}),
        ("hang", Timeout, {"hang_seconds": 4}),
    ],
)
def test_transient_failures_are_typed(connector, csv_file, sim, mode, error, options):
    sim.fail("usmart", mode, **{"match": "s3:generatePutRequest", **options})
    target = UsmartTarget(dataset_guid=DEMO_DATASET, file_guid=SENSORS_FILE)
    with pytest.raises(error) as info:
        connector.run_step(
            connector.plan(target, NO_PARAMS)[0],
            StepContext(target=target, params=NO_PARAMS, release_key="k", file=file_payload(csv_file)),
        )
    assert not info.value.permanent
    assert "signature" not in str(info.value) and KEY_SECRET not in str(info.value)
    if mode == "429":
        assert info.value.retry_after == 7


def test_a_large_upload_streams_from_disk_with_bounded_memory(connector, tmp_path, sim):
    size = 300 * 1024 * 1024
    path = tmp_path / "big.csv"
    with open(path, "wb") as f:
        f.truncate(size)  # sparse: 300 MB of zeros that take no disk space and no time to write
    payload = FilePayload(name=path.name, size=size, sha256="", open=lambda: open(path, "rb"))  # noqa: SIM115 - the connector closes the stream
    target = UsmartTarget(dataset_guid=DEMO_DATASET, file_guid=READINGS_FILE)
    step = connector.plan(target, NO_PARAMS)[0]

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    tracemalloc.start()
    try:
        outcome = connector.run_step(step, StepContext(target=target, params=NO_PARAMS, release_key="k", file=payload))
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) * 1024

    assert isinstance(outcome, Done)
    assert peak < 20 * 1024 * 1024, f"Python allocations peaked at {peak / 2**20:.1f} MiB"
    assert rss_growth < 100 * 1024 * 1024, f"peak RSS grew by {rss_growth / 2**20:.1f} MiB"
    stored = sim.state("usmart")["uploads"][outcome.output["reference"]]
    assert stored["size"] == size and stored["stored"]


def test_check_target_accepts_what_the_dataset_holds(connector):
    target = UsmartTarget(
        dataset_guid=DEMO_DATASET, file_guid=READINGS_FILE, pipeline_guids=[CSV_PIPELINE, API_PIPELINE]
    )
    assert connector.check_target(target) == []
    assert connector.check_target(UsmartTarget(dataset_guid=EMPTY_DATASET)) == []  # a new file each release


def test_check_target_names_what_is_missing(connector, sim):
    unknown = "00000000-0000-4000-8000-000000000099"
    [problem] = connector.check_target(UsmartTarget(dataset_guid=unknown))
    assert f"uSmart does not know dataset {unknown}" in problem
    problems = connector.check_target(
        UsmartTarget(dataset_guid=DEMO_DATASET, file_guid=unknown, pipeline_guids=[CSV_PIPELINE, unknown])
    )
    assert len(problems) == 2
    assert f"has no file {unknown}; its files: " in problems[0] and "sensors.csv" in problems[0]
    assert f"has no output pipeline {unknown}; its pipelines: " in problems[1]
    assert CSV_PIPELINE not in problems[1].split(";")[0], "the pipeline it has is not reported missing"
    # Only reads: nothing was changed on the platform.
    assert {r["action"] for r in sim.state("usmart")["requests"]} <= {"dataset:view"}


def test_check_target_lets_a_refused_key_through_as_an_error(sim):
    with pytest.raises(ConnectorError):
        make_connector(sim, api_key_secret=SecretStr("wrong")).check_target(UsmartTarget(dataset_guid=DEMO_DATASET))
