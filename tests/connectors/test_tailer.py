from __future__ import annotations

import re
import time

import httpx
import jwt as pyjwt
import pytest
from pydantic import SecretStr, ValidationError

from connectors.base import (
    AuthenticationError,
    Done,
    Failed,
    NotFound,
    PermanentError,
    RateLimited,
    ServerError,
    StepContext,
    Timeout,
    Waiting,
)
from connectors.tailer import TailerConnector, TailerCredentials, TailerParams, TailerTarget

from .driver import run_release

API_KEY, REFRESH_TOKEN = "tailer-demo-api-key", "tailer-demo-refresh-token"
RUN_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
S2S_ID = "000099-jarvis-demo-iowa-liquor-storage-to-storage"


@pytest.fixture
def tailer(sim):
    """The simulators with Tailer's remote jobs at 0.1 s per state."""
    sim.config("tailer", delay=0.1)
    return sim


#: A job of the simulator's demo account: the connection test reads its last run.
TEST_JOB = "000099/DEV/table-to-table/000099_iowa_liquor_prepare_pda"


def refresh_credentials(
    sim, *, api_key: str = API_KEY, refresh_token: str = REFRESH_TOKEN, test_job: str = TEST_JOB
) -> TailerCredentials:
    return TailerCredentials(
        auth_mode="refresh_token",
        api_key=SecretStr(api_key),
        refresh_token=SecretStr(refresh_token),
        token_url=f"{sim.url('tailer')}/token",
        test_job=test_job,
    )


def minted_jwt(sim, ttl: float) -> str:
    return httpx.get(f"{sim.url('tailer')}/_sim/jwt", params={"ttl": ttl}, timeout=5).json()["jwt"]


def unsigned_jwt(exp: float) -> str:
    """A JWT whose payload only matters (credential checks never verify the signature)."""
    return pyjwt.encode(
        {"exp": int(exp), "iat": int(time.time())}, "not-the-simulator-key-" + "x" * 16, algorithm="HS256"
    )


@pytest.fixture
def connector(tailer):
    return TailerConnector(refresh_credentials(tailer), base_url=tailer.url("tailer"), timeout=2.0)


@pytest.fixture
def target():
    return TailerTarget(
        account="000099",
        environment="DEV",
        configuration_type="table-to-table",
        configuration_id="000099_iowa_liquor_prepare_pda",
    )


@pytest.fixture
def workflow():
    return TailerTarget(
        account="000099",
        environment="DEV",
        configuration_type="workflow",
        configuration_id="000099-iowa-liquor-load-pda",
    )


def api_requests(sim) -> list[dict]:
    return [r for r in sim.state("tailer")["requests"] if r["path"].startswith("/v1/")]


# Connection and tokens


def test_it_tests_the_connection_with_a_fetched_token(connector, tailer):
    message = connector.test_connection()
    assert "demo@tailer.example" in message
    state = tailer.state("tailer")
    assert state["token_fetches"] == 1
    assert state["requests"][-1]["action"] == "get_last_status"  # the authenticated call was made


def test_a_wrong_base_url_is_not_taken_for_a_working_connection(tailer):
    lost = TailerConnector(refresh_credentials(tailer), base_url=tailer.url("tailer") + "/api", timeout=2.0)
    with pytest.raises(NotFound):
        lost.test_connection()


def test_it_fetches_a_token_once_and_again_after_it_expires(connector, tailer, target):
    tailer.config("tailer", token_ttl=2)
    connector.last_runs(target, limit=1)
    connector.last_runs(target, limit=1)
    assert tailer.state("tailer")["token_fetches"] == 1  # cached in memory while valid
    time.sleep(2.2)
    connector.last_runs(target, limit=1)
    state = tailer.state("tailer")
    assert state["token_fetches"] == 2
    assert state["auth_failures"] == 0  # renewed before sending, not after a refusal


def test_a_cached_token_the_platform_refuses_is_renewed_once(connector, tailer, target):
    connector.last_runs(target, limit=1)
    tailer.fail("tailer", "401", match="/v1/dag/status")
    assert len(connector.last_runs(target, limit=1)) == 1
    assert tailer.state("tailer")["token_fetches"] == 2


def test_a_refused_refresh_token_is_an_authentication_error_without_secrets(tailer):
    bad = TailerConnector(
        refresh_credentials(tailer, refresh_token="stolen-refresh-token-123"),
        base_url=tailer.url("tailer"),
        timeout=2.0,
    )
    with pytest.raises(AuthenticationError) as info:
        bad.test_connection()
    assert "INVALID_REFRESH_TOKEN" in info.value.message
    for secret in ("stolen-refresh-token-123", API_KEY):
        assert secret not in str(info.value)
    assert api_requests(tailer) == []


def test_a_refused_api_key_is_an_authentication_error_without_the_key(tailer):
    bad = TailerConnector(
        refresh_credentials(tailer, api_key="leaky-api-key-456"), base_url=tailer.url("tailer"), timeout=2.0
    )
    with pytest.raises(AuthenticationError) as info:
        bad.test_connection()
    assert "API key not valid" in info.value.message
    assert "leaky-api-key-456" not in str(info.value)


def test_a_pasted_jwt_works_until_it_expires(tailer, target):
    token = minted_jwt(tailer, 3600)
    connector = TailerConnector(
        TailerCredentials(auth_mode="jwt", jwt=SecretStr(token)), base_url=tailer.url("tailer"), timeout=2.0
    )
    assert "demo@tailer.example" in connector.test_connection()
    assert connector.last_runs(target, limit=1)[0]["status"] == "SUCCESS"
    assert tailer.state("tailer")["token_fetches"] == 0


def test_an_expired_pasted_jwt_fails_before_any_call(tailer, target):
    token = minted_jwt(tailer, -60)
    connector = TailerConnector(
        TailerCredentials(auth_mode="jwt", jwt=SecretStr(token)), base_url=tailer.url("tailer"), timeout=2.0
    )
    with pytest.raises(AuthenticationError, match="expired on") as info:
        connector.last_runs(target)
    assert token not in str(info.value)
    state = tailer.state("tailer")
    assert state["requests"] == [] and state["auth_failures"] == 0


def test_a_tampered_pasted_jwt_is_refused_by_the_platform(tailer, target):
    header, payload, signature = minted_jwt(tailer, 3600).split(".")
    forged = pyjwt.encode(
        {
            **pyjwt.decode(f"{header}.{payload}.{signature}", options={"verify_signature": False}),
            "email": "boss@tailer.example",
        },
        "a-guessed-signing-key-" + "y" * 16,
        algorithm="HS256",
    )
    connector = TailerConnector(
        TailerCredentials(auth_mode="jwt", jwt=SecretStr(forged)), base_url=tailer.url("tailer"), timeout=2.0
    )
    with pytest.raises(AuthenticationError, match="Invalid token") as info:
        connector.last_runs(target)
    assert forged not in str(info.value)
    assert tailer.state("tailer")["auth_failures"] == 1


def test_credential_warnings_for_a_pasted_jwt():
    def warnings(exp: float) -> list[str]:
        return TailerConnector.credential_warnings(TailerCredentials(auth_mode="jwt", jwt=SecretStr(unsigned_jwt(exp))))

    now = time.time()
    soon = warnings(now + 3 * 3600 + 120)
    assert len(soon) == 1 and "expires in 3 h" in soon[0] and "UTC" in soon[0]
    assert "expired on" in warnings(now - 60)[0]
    assert warnings(now + 3 * 24 * 3600) == []
    assert (
        TailerConnector.credential_warnings(
            TailerCredentials(api_key=SecretStr(API_KEY), refresh_token=SecretStr(REFRESH_TOKEN))
        )
        == []
    )


def test_credentials_need_the_chosen_modes_fields_and_keep_secrets_out_of_errors():
    with pytest.raises(ValidationError, match="refresh token"):
        TailerCredentials(auth_mode="refresh_token", api_key=SecretStr(API_KEY))
    with pytest.raises(ValidationError, match="needs the JWT"):
        TailerCredentials(auth_mode="jwt")
    with pytest.raises(ValidationError, match="not a JWT") as info:
        TailerCredentials(auth_mode="jwt", jwt="secret-looking-garbage")
    assert "secret-looking-garbage" not in str(info.value)
    with pytest.raises(ValidationError, match="no query string"):
        TailerCredentials(api_key=API_KEY, refresh_token=REFRESH_TOKEN, token_url="https://x.example/token?key=abc")
    # Only the chosen mode's secrets are kept, and none shows in a repr.
    creds = TailerCredentials(
        auth_mode="refresh_token", api_key=API_KEY, refresh_token=REFRESH_TOKEN, jwt=unsigned_jwt(0)
    )
    assert creds.jwt is None
    assert API_KEY not in repr(creds) and REFRESH_TOKEN not in repr(creds)
    assert set(TailerConnector.secret_fields()) == {"api_key", "refresh_token", "jwt"}


# Targets and params


def test_table_to_table_ids_get_the_environment_suffix(target):
    assert target.api_configuration_id == "000099_iowa_liquor_prepare_pda_DEV"
    assert target.status_job_id == "gbq-to-gbq|000099_iowa_liquor_prepare_pda_DEV"
    other = TailerTarget(
        account="000099", environment="DEV", configuration_type="storage-to-storage", configuration_id=S2S_ID
    )
    assert other.api_configuration_id == S2S_ID and other.status_job_id is None


def test_a_table_to_table_id_with_its_suffix_is_rejected():
    with pytest.raises(ValidationError, match="without its '_DEV' suffix"):
        TailerTarget(
            account="000099",
            environment="DEV",
            configuration_type="table-to-table",
            configuration_id="000099_iowa_liquor_prepare_pda_DEV",
        )


@pytest.mark.parametrize(
    ("environment", "message"),
    [("", "environment is required"), ("dev", "write 'DEV'"), ("DEV-1", "not a Tailer environment")],
)
def test_a_bad_environment_is_rejected(environment, message):
    with pytest.raises(ValidationError, match=message):
        TailerTarget(account="000099", environment=environment, configuration_type="workflow", configuration_id="x")


@pytest.mark.parametrize(("value", "message"), [("09/12/2020", "YYYY-MM-DD"), ("2020-02-30", "real calendar date")])
def test_a_bad_execution_date_is_rejected(value, message):
    with pytest.raises(ValidationError, match=message):
        TailerParams(execution_date=value)
    assert TailerParams(execution_date="2020-12-09").execution_date == "2020-12-09"


# Releases


def test_it_launches_and_follows_the_run_to_success(connector, tailer, target):
    outcomes = run_release(connector, target, TailerParams(execution_date="2020-12-09"))
    assert [name for name, _ in outcomes] == ["launch"]
    done = outcomes[0][1]
    assert isinstance(done, Done), done
    assert RUN_ID.match(done.remote_ref)
    assert done.remote_status == "SUCCESS"
    assert done.output["start"] and done.output["duration"].startswith("0:00:")
    launch = next(r for r in api_requests(tailer) if r["action"] == "launch_job")
    assert launch["configuration_id"] == "000099_iowa_liquor_prepare_pda_DEV"
    assert launch["execution_date"] == "2020-12-09"
    checks = [r for r in api_requests(tailer) if r["action"] == "check_run_status"]
    assert checks and all(r["run_id"] == done.remote_ref for r in checks)
    assert checks[0]["job_id"] == "gbq-to-gbq|000099_iowa_liquor_prepare_pda_DEV"


def test_the_launch_returns_the_run_id_at_once_and_reports_running(connector, target):
    ctx = StepContext(target=target, params=TailerParams(), release_key="k")
    step = connector.plan(target, TailerParams())[0]
    assert not step.idempotent
    waiting = connector.run_step(step, ctx)
    assert isinstance(waiting, Waiting) and RUN_ID.match(waiting.remote_ref)
    check = connector.check_step(
        step,
        StepContext(target=target, params=TailerParams(), release_key="k", remote_ref=waiting.remote_ref, checks=1),
    )
    assert isinstance(check, Waiting) and check.remote_status == "RUNNING"


def test_a_run_that_ends_failed_fails_the_step(connector, tailer, target):
    tailer.fail("tailer", "run_failed")
    [(_, outcome)] = run_release(connector, target, TailerParams())
    assert isinstance(outcome, Failed)
    assert outcome.remote_status == "FAILED"
    assert "ended FAILED" in outcome.message and RUN_ID.match(outcome.remote_ref)


def test_an_unknown_status_is_shown_then_given_up_on(connector, tailer, target, monkeypatch):
    monkeypatch.setattr(TailerConnector, "max_unknown_checks", 3)
    tailer.fail("tailer", "unknown_status", message="NO MATCH")
    [(_, outcome)] = run_release(connector, target, TailerParams())
    assert isinstance(outcome, Failed)
    assert outcome.remote_status == "NO MATCH"
    assert "status 'NO MATCH' after 4 checks" in outcome.message
    assert outcome.output["unknown_checks"] == 4


def test_an_unknown_status_keeps_the_step_waiting_below_the_limit(connector, tailer, target):
    tailer.fail("tailer", "unknown_status")
    step = connector.plan(target, TailerParams())[0]
    run_id = connector.run_step(step, StepContext(target=target, params=TailerParams(), release_key="k")).remote_ref
    time.sleep(0.3)  # past the RUNNING phase
    outcome = connector.check_step(
        step, StepContext(target=target, params=TailerParams(), release_key="k", remote_ref=run_id, checks=1)
    )
    assert isinstance(outcome, Waiting)
    assert outcome.remote_status == "CHECKED" and "CHECKED" in outcome.message


def test_launching_a_disabled_configuration_is_refused(connector, tailer, target):
    connector.set_target_state(target, "disabled")
    with pytest.raises(PermanentError, match="is disabled"):
        run_release(connector, target, TailerParams())
    assert not any(r["action"] == "check_run_status" for r in api_requests(tailer))
    connector.set_target_state(target, "enabled")
    assert isinstance(run_release(connector, target, TailerParams())[0][1], Done)


def test_an_unknown_configuration_is_not_found(connector):
    ghost = TailerTarget(
        account="000099", environment="DEV", configuration_type="table-to-table", configuration_id="nope"
    )
    with pytest.raises(NotFound, match="'nope_DEV' not found"):
        run_release(connector, ghost, TailerParams())


# Portal actions


def test_last_runs_with_the_documented_filters(connector):
    s2s = TailerTarget(
        account="000099", environment="DEV", configuration_type="storage-to-storage", configuration_id=S2S_ID
    )
    assert len(connector.last_runs(s2s)) == 3
    rows = connector.last_runs(s2s, execution_date="2020-12-09", status="success", limit=2)
    assert [r["run_id"] for r in rows] == [
        "20201209-cf026ae9-c79c-4cf9-8ffb-0bb63ad39469",
        "20201209-7b7b7a66-1cc0-4f09-a893-ce4a35adf09b",
    ]
    assert connector.last_runs(s2s, execution_date="2020-12-10") == []
    with pytest.raises(PermanentError, match="YYYY-MM-DD"):
        connector.last_runs(s2s, execution_date="9 Dec 2020")
    with pytest.raises(PermanentError, match="positive"):
        connector.last_runs(s2s, limit=0)


def test_last_runs_lists_a_new_run_first(connector, tailer, target):
    tailer.fail("tailer", "run_failed")
    [(_, outcome)] = run_release(connector, target, TailerParams())
    rows = connector.last_runs(target)
    assert rows[0]["run_id"] == outcome.remote_ref and rows[0]["status"] == "FAILED"
    assert len(rows) == 4  # three documented runs before it
    assert [r["run_id"] for r in connector.last_runs(target, status="FAILED")] == [outcome.remote_ref]


def test_it_resets_a_workflow(connector, tailer, workflow):
    assert connector.reset_workflow(workflow) == "ok"
    config = tailer.state("tailer")["configurations"]["000099/DEV/workflow/000099-iowa-liquor-load-pda"]
    assert config["resets"] == 1 and config["triggered_jobs"] == []


def test_only_workflows_can_be_reset(connector, tailer, target):
    with pytest.raises(PermanentError, match="Only workflow"):
        connector.reset_workflow(target)
    assert api_requests(tailer) == []


def test_a_refused_workflow_reset_raises_the_platforms_message(connector, tailer, workflow):
    tailer.fail("tailer", "refuse_status_change", match="/v1/workflow/status", message="KO: workflow busy")
    with pytest.raises(PermanentError, match="KO: workflow busy"):
        connector.reset_workflow(workflow)
    assert tailer.state("tailer")["configurations"]["000099/DEV/workflow/000099-iowa-liquor-load-pda"]["resets"] == 0


@pytest.mark.parametrize(
    ("state", "flags"), [("disabled", (False, False)), ("archived", (False, True)), ("enabled", (True, False))]
)
def test_it_toggles_the_configuration_remotely(connector, tailer, target, state, flags):
    assert TailerConnector.remote_toggles
    assert connector.set_target_state(target, state) == "ok"
    config = tailer.state("tailer")["configurations"]["000099/DEV/table-to-table/000099_iowa_liquor_prepare_pda_DEV"]
    assert (config["activated"], config["archived"]) == flags
    assert connector.remote_state(target) is None  # the API cannot read it back


def test_a_refused_toggle_raises_and_changes_nothing(connector, tailer, target):
    tailer.fail("tailer", "refuse_status_change", message="KO: locked by a deployment")
    with pytest.raises(PermanentError, match="KO: locked by a deployment"):
        connector.set_target_state(target, "disabled")
    config = tailer.state("tailer")["configurations"]["000099/DEV/table-to-table/000099_iowa_liquor_prepare_pda_DEV"]
    assert (config["activated"], config["archived"]) == (True, False)


def test_an_archived_configuration_cannot_be_launched(connector, target):
    connector.set_target_state(target, "archived")
    with pytest.raises(PermanentError, match="archived"):
        run_release(connector, target, TailerParams())


# Transport failures


@pytest.mark.parametrize(
    ("mode", "error", "options"),
    [("500", ServerError, {}), ("429", RateLimited, {"retry_after": 7}), ("hang", Timeout, {"hang_seconds": 4})],
)
def test_it_maps_transient_failures(connector, tailer, target, mode, error, options):
    tailer.fail("tailer", mode, match="/v1/dag/launch", **options)
    with pytest.raises(error) as info:
        run_release(connector, target, TailerParams())
    assert not info.value.permanent
    if mode == "429":
        assert info.value.retry_after == 7
    for secret in (API_KEY, REFRESH_TOKEN):
        assert secret not in str(info.value)


def test_a_failing_token_endpoint_is_transient_and_keeps_the_key_out(connector, tailer, target):
    tailer.fail("tailer", "503", match="/token")
    with pytest.raises(ServerError) as info:
        connector.last_runs(target)
    assert "/tailer/token" in str(info.value)
    assert API_KEY not in str(info.value) and "key=" not in str(info.value)
    assert len(connector.last_runs(target, limit=1)) == 1  # the next attempt gets its token


def test_check_target_accepts_a_known_data_operation_and_names_an_unknown_one(connector, target, workflow, tailer):
    assert connector.check_target(target) == [] and connector.check_target(workflow) == []
    unknown = target.model_copy(update={"configuration_id": "000099_no_such_operation"})
    [problem] = connector.check_target(unknown)
    assert problem.startswith("Tailer does not know 000099 / DEV / table-to-table / 000099_no_such_operation_DEV")
    assert "not found in account 000099" in problem, "the platform's own words"
    wrong_job = target.model_copy(update={"job_id": "gbq-to-gbq|not-this-job"})
    [problem] = connector.check_target(wrong_job)
    assert "Job 'gbq-to-gbq|not-this-job' not found" in problem
    # Only reads: no run was launched.
    actions = {r["action"] for r in tailer.state("tailer")["requests"]}
    assert actions == {"get_last_status"}, actions
