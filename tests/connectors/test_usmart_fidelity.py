"""uSmart against plausible servers other than our simulator's defaults (issue 17).

The docs name no final pipeline status and publish no error body or listing endpoint: the
simulator's ``/_sim/config`` plays the variants (``final_status``, ``error_style``, ``dcat``).
"""

from __future__ import annotations

import time

import pytest
from pydantic import SecretStr

from connectors.base import AuthenticationError, Done, Failed, NotFound, NotSupported, StepContext, Waiting
from connectors.statuses import MAX_UNKNOWN_STATUSES, UNKNOWN_COUNT
from connectors.usmart.connector import UsmartConnector
from connectors.usmart.schemas import UsmartCredentials, UsmartTarget
from simulators.usmart import API_PIPELINE, CSV_PIPELINE, DEMO_DATASET, ORG_GUID, SENSORS_FILE

from .driver import file_payload, run_release

NO_PARAMS = UsmartConnector.Params()
OTHER_ORG = "11111111-2222-4333-8444-555555555555"


def make_connector(sim, **overrides) -> UsmartConnector:
    fields = {
        "organisation_guid": ORG_GUID,
        "api_key_id": "usmart-demo-key-id",
        "api_key_secret": SecretStr("usmart-demo-key-secret"),
        **overrides,
    }
    return UsmartConnector(UsmartCredentials(**fields), base_url=sim.url("usmart"), timeout=2.0)


@pytest.fixture
def connector(sim):
    with make_connector(sim) as connector:
        yield connector


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "readings.csv"
    path.write_text("sensor,at,value\ns1,2026-01-01T00:00:00Z,12.5\n")
    return path


def assert_no_repr(message: str) -> None:
    assert "{" not in message and "'status':" not in message and '"status":' not in message, message


@pytest.mark.parametrize("word", ["complete", "completed", "success", "succeeded", "done", "Processed"])
def test_a_finished_pipeline_reported_with_a_synonym_succeeds(connector, sim, word):
    sim.config("usmart", final_status=word, delay=0.05)
    target = UsmartTarget(dataset_guid=DEMO_DATASET, pipeline_guids=[CSV_PIPELINE])
    step = connector.plan(target, NO_PARAMS)[-1]
    outcome = run_release_step(connector, step, target)
    assert isinstance(outcome, Done) and outcome.remote_status == word.lower()


def run_release_step(connector, step, target):
    """run_step, then check_step until it stops waiting (the engine's loop, without sleeping long)."""
    outcome = connector.run_step(step, StepContext(target=target, params=NO_PARAMS, release_key="k"))
    output: dict = dict(outcome.output)
    for checks in range(1, 200):
        if not isinstance(outcome, Waiting):
            return outcome
        ctx = StepContext(
            target=target,
            params=NO_PARAMS,
            release_key="k",
            remote_ref=outcome.remote_ref,
            output=output,
            checks=checks,
        )
        outcome = connector.check_step(step, ctx)
        output = {**output, **outcome.output}
        sim_pause()
    raise AssertionError(f"still waiting: {outcome}")


def sim_pause() -> None:
    time.sleep(0.05)


def test_an_unknown_status_is_shown_with_a_warning_then_fails_with_the_platforms_word(connector, sim):
    sim.config("usmart", final_status="Published to portal", delay=0.01)
    target = UsmartTarget(dataset_guid=DEMO_DATASET, pipeline_guids=[CSV_PIPELINE])
    step = connector.plan(target, NO_PARAMS)[-1]
    first = connector.run_step(step, StepContext(target=target, params=NO_PARAMS, release_key="k"))
    sim_pause()
    seen = connector.check_step(
        step, StepContext(target=target, params=NO_PARAMS, release_key="k", remote_ref=first.remote_ref, checks=1)
    )
    # Shown as it came, with a warning, and counted.
    assert isinstance(seen, Waiting) and seen.remote_status == "Published to portal"
    assert "Published to portal" in seen.warning and seen.output[UNKNOWN_COUNT] == 1
    final = run_release_step(connector, step, target)
    assert isinstance(final, Failed) and "'Published to portal'" in final.message
    assert final.output[UNKNOWN_COUNT] == MAX_UNKNOWN_STATUSES


def test_a_known_status_in_between_starts_the_count_again(connector, sim):
    sim.config("usmart", delay=30)
    target = UsmartTarget(dataset_guid=DEMO_DATASET, pipeline_guids=[CSV_PIPELINE])
    step = connector.plan(target, NO_PARAMS)[-1]
    first = connector.run_step(step, StepContext(target=target, params=NO_PARAMS, release_key="k"))
    again = connector.check_step(
        step,
        StepContext(
            target=target,
            params=NO_PARAMS,
            release_key="k",
            remote_ref=first.remote_ref,
            output={UNKNOWN_COUNT: 3},
            checks=1,
        ),
    )
    assert isinstance(again, Waiting) and again.remote_status == "queued" and again.output[UNKNOWN_COUNT] == 0


def test_errors_are_the_platforms_sentence_never_a_repr(sim):
    sim.config("usmart", error_style="nested")
    viewer = make_connector(
        sim, api_key_id="usmart-viewer-key-id", api_key_secret=SecretStr("usmart-viewer-key-secret")
    )
    with pytest.raises(AuthenticationError) as refused:
        viewer.test_connection()
    assert "needs the Provider role or higher" in refused.value.message
    assert_no_repr(refused.value.message)
    with make_connector(sim) as connector, pytest.raises(NotFound) as missing:
        connector.view_dataset("00000000-0000-4000-8000-000000000000")
    assert "Dataset 00000000-0000-4000-8000-000000000000 not found" in missing.value.message
    assert_no_repr(missing.value.message)


def test_a_failed_pipeline_says_what_its_error_log_says(connector, csv_file, sim):
    sim.config("usmart", error_style="nested")
    sim.fail("usmart", "pipeline_failed", match="resourceContainer:process", message="Row 2: bad timestamp")
    target = UsmartTarget(dataset_guid=DEMO_DATASET, file_guid=SENSORS_FILE, pipeline_guids=[API_PIPELINE])
    name, failed = run_release(connector, target, NO_PARAMS, file=file_payload(csv_file))[-1]
    assert isinstance(failed, Failed) and failed.message == "Row 2: bad timestamp"
    assert_no_repr(failed.message)


@pytest.mark.parametrize("answer", ["404", "405"])
def test_browse_on_a_server_without_a_listing_says_so_and_lets_the_user_type_the_guid(connector, sim, answer):
    sim.config("usmart", dcat=answer)
    with pytest.raises(NotSupported) as info:
        connector.browse("dataset_guid")
    assert "does not offer a dataset listing" in info.value.message and "type the dataset GUID" in info.value.message
    assert "Organisation GUID" not in info.value.message
    # The other fields still browse: they read the dataset itself.
    assert connector.browse("file_guid", values={"dataset_guid": DEMO_DATASET})


def test_browse_blames_the_organisation_guid_only_when_the_platform_does(sim):
    with make_connector(sim, organisation_guid=OTHER_ORG) as connector, pytest.raises(NotFound) as info:
        connector.browse("dataset_guid")
    assert "check the connection's Organisation GUID" in info.value.message
