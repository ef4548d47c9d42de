"""Toucan against other plausible servers (issue 17), and the simulator against toucan-client 1.1.2.

toucan-client is a generic wrapper (CONTRACTS.md section 1): the attribute path becomes the
URL, the last attribute is the HTTP method, and ``stage`` moves into the query string. It
imports on this Python (it needs only ``requests``), so the tests drive the real package.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from pydantic import SecretStr
from toucan_client import ToucanClient

from connectors.base import Done, Failed, NotFound, NotSupported, StepContext, Waiting
from connectors.statuses import MAX_UNKNOWN_STATUSES, UNKNOWN_COUNT
from connectors.toucan import ToucanConnector, ToucanCredentials, ToucanParams, ToucanTarget

from .driver import run_release

LOGIN, PASSWORD = "contributor@demo.example", "toucan-demo-password"
TARGET = ToucanTarget(small_app="demo-app", data_source="sales.csv", stage="staging")
PREPROCESS = ToucanParams(operations=["preprocess_data_sources"], upload=False)


@pytest.fixture
def connector(sim):
    creds = ToucanCredentials(login=LOGIN, password=SecretStr(PASSWORD))
    with ToucanConnector(creds, base_url=sim.url("toucan"), timeout=2.0) as connector:
        yield connector


@pytest.fixture
def app(sim):
    """toucan-client's small app, as its docstring builds it, with Basic auth and the staging stage."""
    return ToucanClient(sim.url("toucan"), auth=(LOGIN, PASSWORD), stage="staging", timeout=10)["demo-app"]


def assert_no_repr(message: str) -> None:
    assert "{" not in message and "'status':" not in message and "statusCode" not in message, message


# Statuses


@pytest.mark.parametrize("word", ["succeeded", "done", "Completed"])
def test_a_finished_operation_reported_with_a_synonym_succeeds(connector, sim, word):
    sim.config("toucan", final_status=word, delay=0.05)
    outcome = run_release(connector, TARGET, PREPROCESS)[-1][1]
    assert isinstance(outcome, Done)


def test_an_unknown_status_is_shown_with_a_warning_then_fails_with_the_platforms_word(connector, sim):
    sim.config("toucan", final_status="archived", delay=0.01)
    step = connector.plan(TARGET, PREPROCESS)[-1]
    ctx = StepContext(target=TARGET, params=PREPROCESS, release_key="k")
    outcome = connector.run_step(step, ctx)
    time.sleep(0.1)
    output = dict(outcome.output)
    for checks in range(1, MAX_UNKNOWN_STATUSES + 1):
        assert isinstance(outcome, Waiting), outcome
        ctx = StepContext(
            target=TARGET,
            params=PREPROCESS,
            release_key="k",
            remote_ref=outcome.remote_ref,
            output=output,
            checks=checks,
        )
        outcome = connector.check_step(step, ctx)
        output = {**output, **outcome.output}
        if checks == 1:
            assert isinstance(outcome, Waiting) and "'archived'" in outcome.warning
    assert isinstance(outcome, Failed) and "'archived'" in outcome.message
    assert outcome.output[UNKNOWN_COUNT] == MAX_UNKNOWN_STATUSES


# Errors


def test_errors_are_the_platforms_sentence_never_a_repr(connector, sim):
    sim.fail("toucan", "operation_failed", message="Preprocess failed: bad column")
    failed = run_release(connector, TARGET, PREPROCESS)[-1][1]
    assert isinstance(failed, Failed) and failed.message == "Preprocess failed: bad column"
    with pytest.raises(NotFound) as refused:
        connector.http.json("GET", "/no-such-app/config/etl")
    # {"statusCode": 404, "message": "..."}: the message, not the dict.
    assert refused.value.message.endswith("answered 404: Small app 'no-such-app' not found")
    for message in (failed.message, refused.value.message):
        assert_no_repr(message)


def test_browse_says_toucan_offers_no_listing(connector):
    # Toucan documents no listing of small apps or data sources: the fields are typed in.
    with pytest.raises(NotSupported, match="nothing to browse"):
        connector.browse("small_app")


# The real client: toucan-client 1.1.2


def test_toucan_client_uploads_a_data_source_as_contracts_md_captured(app, sim):
    # c.data.sources.post(params={'validation': 'false'}, files=..., data={...dz})
    # -> POST /demo-app/data/sources?validation=false&stage=staging, multipart, Basic auth.
    body = b"region,amount\nnorth,10\n"
    response = app.data.sources.post(
        params={"validation": "false"},
        files={"file": ("sales.csv", body, "text/csv")},
        data={
            "data": json.dumps({"filename": "sales.csv"}),
            "dzuuid": str(uuid.uuid4()),
            "dztotalfilesize": str(len(body)),
            "dztotalchunkcount": "1",
            "dzchunkbyteoffset": "0",
            "dzchunkindex": "0",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["filename"] == "sales.csv"
    assert "demo-app/staging/sales.csv" in sim.state("toucan")["sources"]


def test_toucan_client_uploads_without_dropzone_fields_as_the_older_helper_did(app):
    # upload_data_source (GitHub only): just `file` + `data`, Basic auth.
    response = app.data.sources.post(
        files={"file": ("sales.csv", b"region\nnorth\n")}, data={"data": json.dumps({"filename": "sales.csv"})}
    )
    assert response.status_code == 200, response.text


def test_toucan_client_runs_operations_and_follows_them(app, sim):
    sim.config("toucan", delay=0.05)
    body = {"origin": "autofeed", "operations": ["preprocess_data_sources"], "async": True}
    started = app.operations.post(json=body, params={"notify": "false"})
    assert started.ok, started.text  # 202 Accepted: the run is asynchronous
    operation_id = started.json()["operation_id"]
    for _ in range(100):
        state = app.operations[operation_id].get().json()
        if state["status"] not in ("pending", "running"):
            break
        time.sleep(0.05)
    assert state["status"] == "success"


@pytest.mark.parametrize(
    ("path", "params"),
    [(("data", "preprocess"), {}), (("populate",), {}), (("populate",), {"release": "", "notify": "false"})],
)
def test_toucan_client_starts_partial_runs(app, path, params):
    client = app
    for part in path:
        client = client[part]
    response = client.post(json={"input_domains": ["sales"], "async": True}, params=params)
    assert response.ok, response.text
    assert response.json()["operation_id"]


def test_toucan_client_reads_the_etl_config_and_logs_in(app, sim):
    assert app.config.etl.get().status_code == 200
    token = ToucanClient(sim.url("toucan")).login.post(json={"username": LOGIN, "password": PASSWORD})
    assert token.status_code == 200 and token.json()["token"]
    refused = ToucanClient(sim.url("toucan")).login.post(json={"username": LOGIN, "password": "wrong"})
    assert refused.status_code == 401 and refused.text == "Login failed. Invalid username or password"
