"""Tailer's connection test reads a documented call; errors read as sentences (issue 17)."""

from __future__ import annotations

import json

import pytest
import requests
from pydantic import SecretStr, ValidationError

from connectors.base import NotSupported, PermanentError
from connectors.tailer import TailerConnector, TailerCredentials

from .test_tailer import API_KEY, REFRESH_TOKEN, TEST_JOB, api_requests, refresh_credentials


@pytest.fixture
def tailer(sim):
    sim.config("tailer", delay=0.1)
    return sim


def test_the_connection_test_reads_the_test_jobs_last_run(tailer):
    with TailerConnector(refresh_credentials(tailer), base_url=tailer.url("tailer"), timeout=2.0) as connector:
        message = connector.test_connection()
    assert f"it reads job {TEST_JOB}" in message
    [call] = api_requests(tailer)
    # The documented get_last_status with the job's full identity, not a deliberately incomplete body.
    assert call["action"] == "get_last_status" and call["account"] == "000099" and call["environment"] == "DEV"
    assert call["configuration_id"].startswith("000099_iowa_liquor_prepare_pda")


def test_without_a_test_job_it_checks_the_token_and_says_the_api_was_not_asked(tailer):
    creds = refresh_credentials(tailer, test_job="")
    with TailerConnector(creds, base_url=tailer.url("tailer"), timeout=2.0) as connector:
        message = connector.test_connection()
    assert "issued a token for demo@tailer.example" in message and "was not asked" in message
    assert api_requests(tailer) == []


def test_a_test_job_the_platform_does_not_know_fails_the_test(tailer):
    creds = refresh_credentials(tailer, test_job="000099/DEV/table-to-table/no_such_job")
    with (
        TailerConnector(creds, base_url=tailer.url("tailer"), timeout=2.0) as connector,
        pytest.raises(PermanentError) as info,
    ):
        connector.test_connection()
    assert "{" not in info.value.message and "'status':" not in info.value.message


def test_a_test_job_must_name_a_whole_identity():
    with pytest.raises(ValidationError, match="account/ENVIRONMENT"):
        TailerCredentials(api_key=SecretStr(API_KEY), refresh_token=SecretStr(REFRESH_TOKEN), test_job="000099/DEV")


def test_browse_says_tailer_offers_no_listing(tailer):
    connector = TailerConnector(refresh_credentials(tailer), base_url=tailer.url("tailer"), timeout=2.0)
    with connector, pytest.raises(NotSupported, match="nothing to browse"):
        connector.browse("configuration_id")


def test_the_simulator_serves_tailer_auth_get_token_and_the_documented_curl(tailer):
    """No Tailer package calls /v1/dag/*; the one real client is ``tailer auth get-token``
    (tailer-sdk 1.3.19, tailer_auth.py with firebase 3.0.1's refresh), reproduced here as
    CONTRACTS.md section 2 records it, then the docs' curl of get_last_status with its JWT."""
    answer = requests.post(
        f"{tailer.url('tailer')}/token?key={API_KEY}",
        data=json.dumps({"grantType": "refresh_token", "refreshToken": REFRESH_TOKEN}),
        headers={"content-type": "application/json; charset=UTF-8"},
        timeout=10,
    )
    assert answer.status_code == 200
    user = answer.json()
    assert user["user_id"] and user["refresh_token"] == REFRESH_TOKEN  # what get-token reads and prints
    account, environment, configuration_type, configuration_id = TEST_JOB.split("/")
    runs = requests.post(
        f"{tailer.url('tailer')}/v1/dag/status",
        headers={"Authorization": f"Bearer {user['id_token']}", "content-type": "application/json"},
        data=json.dumps(
            {
                "action": "get_last_status",
                "account": account,
                "environment": environment,
                "configuration_type": configuration_type,
                "configuration_id": f"{configuration_id}_{environment}",
                "limit": 1,
            }
        ),
        timeout=10,
    )
    assert runs.status_code == 200, runs.text
    assert isinstance(runs.json()["results"], list)
