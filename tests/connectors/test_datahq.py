from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from pydantic import SecretStr, ValidationError

from connectors.base import (
    AuthenticationError,
    ConnectorError,
    Done,
    Failed,
    NotFound,
    PermanentError,
    RateLimited,
    ServerError,
    StepContext,
    StepSpec,
    Timeout,
    Unreachable,
    Waiting,
)
from connectors.datahq import DatahqConnector, DatahqCredentials, DatahqParams, DatahqTarget, validate_spec

from .driver import run_release

OWNER, USERID = "demo-team", "u-demo"


def make_spec(dataset: str = "sales", *, owner: str = OWNER, ownerid: str = USERID, **extra) -> dict:
    return {
        "meta": {"owner": owner, "ownerid": ownerid, "dataset": dataset, "version": 1, "findability": "published"},
        "inputs": [
            {
                "kind": "datapackage",
                "url": "https://example.org/sales/datapackage.json",
                "parameters": {"resource-mapping": {"sales": "data/sales.csv"}},
            }
        ],
        **extra,
    }


def sim_token(sim, userid: str = USERID, **options) -> str:
    answer = httpx.get(
        f"{sim.url('datahq')}/_sim/token", params={"userid": userid, "owner": OWNER, **options}, timeout=5
    )
    answer.raise_for_status()
    return answer.json()["token"]


def local_token(**claims) -> str:
    """A token the simulator did not sign: enough for the offline checks."""
    return jwt.encode(
        {"userid": USERID, "permissions": {"max_dataset_num": 5}, "service": "source", **claims},
        "a-key-of-some-other-auth-server-32b",
        algorithm="HS256",
    )


def connector_for(sim, token: str, *, ownerid: str = USERID, timeout: float = 2.0) -> DatahqConnector:
    creds = DatahqCredentials(token=SecretStr(token), owner=OWNER, ownerid=ownerid)
    return DatahqConnector(creds, base_url=sim.url("datahq"), timeout=timeout)


@pytest.fixture
def token(sim):
    return sim_token(sim)


@pytest.fixture
def connector(sim, token):
    return connector_for(sim, token)


@pytest.fixture
def target():
    return DatahqTarget(owner=OWNER, dataset="sales")


def params_for(spec: dict, target: DatahqTarget) -> DatahqParams:
    return DatahqParams.model_validate({"spec": spec}, context={"target": target})


def unchecked(spec: dict) -> DatahqParams:
    """Params that skipped validation, to reach the server's own refusals."""
    return DatahqParams.model_construct(spec=spec)


# Connection


def test_it_tests_the_connection_and_says_what_it_proved(connector, sim, token):
    message = connector.test_connection()
    assert "Reached the DataHQ spec store" in message
    assert "u-demo" in message and "plan of 10 datasets" in message
    assert "signature is checked only by the spec store" in message
    assert token not in message
    # The probe is the side-effect-free empty upload, sent without the token.
    probe = sim.state("datahq")["requests"][-1]
    assert probe == {
        "path": "/source/upload",
        "content_type": "text/plain",
        "auth": None,
        "success": False,
        "errors": ["Received empty contents (make sure your content-type is correct)"],
    }


@pytest.mark.parametrize(
    ("token", "ownerid", "expected"),
    [
        (local_token(userid="u-other"), USERID, "belongs to user id 'u-other'"),
        (local_token(exp=int(time.time()) - 60), USERID, "The token expired on"),
        (local_token(service="rawstore"), USERID, "'rawstore' service"),
        ("not-a-jwt", USERID, "not a JWT"),
    ],
)
def test_the_connection_test_refuses_a_token_that_cannot_work_without_sending_it(sim, token, ownerid, expected):
    bad = connector_for(sim, token, ownerid=ownerid)
    with pytest.raises(AuthenticationError, match=expected) as info:
        bad.test_connection()
    assert info.value.permanent
    assert token not in str(info.value)
    assert sim.state("datahq")["requests"] == []


def test_the_connection_test_notices_a_url_that_is_not_a_spec_store(sim, token):
    other = DatahqConnector(
        DatahqCredentials(token=SecretStr(token), owner=OWNER, ownerid=USERID), base_url=sim.url("toucan"), timeout=2.0
    )
    with pytest.raises(ConnectorError) as info:
        other.test_connection()
    # Toucan has no /source/upload: a permanent 404, which names the URL but not the token.
    assert info.value.permanent and "/toucan/source/upload" in info.value.message
    assert token not in str(info.value)


def test_credential_warnings():
    def warnings(token: str, ownerid: str = USERID) -> list[str]:
        return DatahqConnector.credential_warnings(
            DatahqCredentials(token=SecretStr(token), owner=OWNER, ownerid=ownerid)
        )

    assert warnings(local_token()) == []
    assert warnings(local_token(exp=int(time.time()) + 90 * 86400)) == []
    mismatch = warnings(local_token(userid="u-other"))
    assert len(mismatch) == 1 and "'u-other'" in mismatch[0] and "'u-demo'" in mismatch[0]
    assert "expired" in warnings(local_token(exp=int(time.time()) - 3600))[0]
    assert warnings(local_token(exp=int(time.time()) + 3600))[0].startswith("The token expires on")
    assert "not a JWT" in warnings("abc.def")[0]
    secret = local_token(userid="u-other", exp=1)
    assert all(secret not in w for w in warnings(secret))


# Releases


def test_a_release_runs_every_pipeline_to_succeeded(connector, target, sim):
    spec = make_spec(outputs=[{"kind": "zip"}, {"kind": "report"}])
    outcomes = run_release(connector, target, params_for(spec, target))
    [(name, outcome)] = outcomes
    assert name == "upload" and isinstance(outcome, Done), outcome
    assert outcome.remote_ref == "u-demo/sales/1" and outcome.remote_status == "SUCCEEDED"
    pipelines = {p["title"]: p for p in outcome.output["pipelines"]}
    assert set(pipelines) == {"Creating CSV", "Creating JSON", "Creating ZIP", "Validating data (report)"}
    assert all(p["status"] == "SUCCEEDED" and p["error_log"] == [] for p in pipelines.values())
    assert pipelines["Creating CSV"]["id"] == "u-demo/sales/1:csv"
    stats = outcome.output["stats"]
    assert stats["count_of_rows"] > 0 and stats["bytes"] > 0 and len(stats["hash"]) == 32
    upload = [r for r in sim.state("datahq")["requests"] if r["content_type"] == "application/json"][-1]
    assert upload["auth"] == "header" and upload["success"] is True


def test_waiting_outcomes_carry_the_live_pipelines(connector, target):
    step = connector.plan(target, params_for(make_spec(), target))[0]
    ctx = StepContext(target=target, params=params_for(make_spec(), target), release_key=uuid.uuid4().hex)
    first = connector.run_step(step, ctx)
    assert isinstance(first, Waiting) and first.remote_ref == "u-demo/sales/1"
    assert first.output["pipelines"] == [] and first.output["revision"] == 1
    seen: list = []
    outcome = first
    deadline = time.monotonic() + 10
    while isinstance(outcome, Waiting) and time.monotonic() < deadline:
        time.sleep(0.05)
        outcome = connector.check_step(
            step,
            StepContext(target=target, params=ctx.params, release_key=ctx.release_key, remote_ref=outcome.remote_ref),
        )
        seen.append(outcome)
    assert isinstance(outcome, Done)
    waiting = [o for o in seen if isinstance(o, Waiting)]
    assert waiting and all(
        o.remote_ref == "u-demo/sales/1" and isinstance(o.output["pipelines"], list) for o in waiting
    )
    running = [o for o in waiting if any(p["status"] == "INPROGRESS" for p in o.output["pipelines"])]
    assert running and "running Creating" in running[0].message and running[0].remote_status == "INPROGRESS"


def test_revisions_are_numbered_from_one_per_dataset(connector, target):
    params = params_for(make_spec(), target)
    first = run_release(connector, target, params)[0][1]
    second = run_release(connector, target, params)[0][1]
    assert (first.remote_ref, second.remote_ref) == ("u-demo/sales/1", "u-demo/sales/2")
    other = DatahqTarget(owner=OWNER, dataset="costs")
    assert run_release(connector, other, params_for(make_spec("costs"), other))[0][1].remote_ref == "u-demo/costs/1"


def test_a_failed_pipeline_fails_its_dependants_and_the_flow(connector, target, sim):
    sim.fail("datahq", "pipeline_failed", message="Pipeline failed: bad header in sales.csv")
    spec = make_spec(outputs=[{"kind": "report"}])
    [(_, outcome)] = run_release(connector, target, params_for(spec, target))
    assert isinstance(outcome, Failed) and outcome.remote_status == "FAILED"
    assert outcome.message.startswith("Revision 1 failed. Creating CSV: Pipeline failed: bad header in sales.csv")
    assert "not run: Creating JSON, Creating ZIP" in outcome.message
    pipelines = {p["title"]: p for p in outcome.output["pipelines"]}
    assert pipelines["Creating CSV"]["status"] == "FAILED"
    for title in ("Creating JSON", "Creating ZIP"):
        assert pipelines[title]["status"] == "FAILED"
        assert pipelines[title]["error_log"][0].startswith(
            'Dependency unsuccessful. Cannot run until dependency "u-demo/sales/1:csv"'
        )
    # The independent pipeline still ran.
    assert pipelines["Validating data (report)"]["status"] == "SUCCEEDED"


def test_revisions_latest_and_successful(connector, target, sim):
    assert connector.revisions(target) == {"latest": None, "successful": None}
    run_release(connector, target, params_for(make_spec(), target))
    sim.fail("datahq", "pipeline_failed")
    run_release(connector, target, params_for(make_spec(), target))
    found = connector.revisions(target)
    assert (found["latest"]["revision"], found["latest"]["state"]) == (2, "FAILED")
    assert found["latest"]["error_log"] and found["latest"]["pipelines"]
    assert (found["successful"]["revision"], found["successful"]["state"]) == (1, "SUCCEEDED")
    assert found["successful"]["stats"]["count_of_rows"] > 0
    # The seeded demo dataset: one successful revision.
    demo = connector.revisions(DatahqTarget(owner=OWNER, dataset="demo-dataset"))
    assert demo["latest"]["flow_id"] == demo["successful"]["flow_id"] == "u-demo/demo-dataset/1"


def test_an_unknown_revision_becomes_a_readable_error(connector, target, sim):
    raw = httpx.get(f"{sim.url('datahq')}/source/u-demo/demo-dataset/99", timeout=5)
    assert raw.status_code == 404 and raw.headers["content-type"].startswith("text/html")
    step = StepSpec("upload", "Upload")
    demo = DatahqTarget(owner=OWNER, dataset="demo-dataset")
    ctx = StepContext(target=demo, params=None, release_key="k", remote_ref="u-demo/demo-dataset/99")
    with pytest.raises(NotFound) as info:
        connector.check_step(step, ctx)
    assert info.value.message == "revision 99 of demo-team/demo-dataset is unknown to the spec store"
    assert info.value.permanent and "<" not in info.value.message


# Refusals by the spec store (always HTTP 200 with success: false)


def test_a_token_of_another_user_is_refused_before_sending(sim, target):
    # The credentials claim u-demo but hold a token of u-other: its (unverified) claims say so.
    wrong = sim_token(sim, userid="u-other")
    with pytest.raises(AuthenticationError) as info:
        run_release(connector_for(sim, wrong), target, params_for(make_spec(), target))
    assert info.value.message.startswith("The token belongs to user id 'u-other', not to the owner id 'u-demo'")
    assert info.value.message.endswith("Nothing was sent.")
    assert wrong not in str(info.value)
    assert sim.state("datahq")["requests"] == [], "the token never left"


def test_a_token_the_server_does_not_trust_is_refused_by_the_server(sim, target):
    # Well-formed and of u-demo, but signed by another auth server: only the spec store can tell.
    forged = local_token()
    with pytest.raises(AuthenticationError) as info:
        run_release(connector_for(sim, forged), target, params_for(make_spec(), target))
    assert info.value.message == "The spec store refused the spec: No token or token not authorised for owner"
    assert forged not in str(info.value)
    assert sim.state("datahq")["requests"][-1]["errors"] == ["No token or token not authorised for owner"]


def test_an_expired_token_is_refused_by_the_server(sim, target):
    expired = sim_token(sim, expires_in=-10)
    with pytest.raises(AuthenticationError, match="not authorised for owner") as info:
        run_release(connector_for(sim, expired), target, params_for(make_spec(), target))
    # The server's clock decides; the offline reading of the token then says why.
    assert "The token expired on" in info.value.message
    assert expired not in str(info.value)


def test_a_spec_the_planner_rejects_is_refused_with_the_platform_error(connector, target, sim):
    with pytest.raises(PermanentError, match="Validation failed for contents") as info:
        run_release(connector, target, params_for(make_spec(outputs=[{"kind": "parquet"}]), target))
    assert not isinstance(info.value, AuthenticationError)
    assert connector.revisions(target)["latest"] is None  # no revision was made


def test_a_schedule_under_a_minute_is_refused_by_the_server(connector, target):
    spec = make_spec(schedule="every 30s")
    with pytest.raises(ValidationError, match="under one minute"):
        params_for(spec, target)
    with pytest.raises(PermanentError, match="Can't schedule tasks for less than one minute"):
        run_release(connector, target, unchecked(spec))


def test_the_plan_limit_counts_new_datasets_only(sim, target):
    limited = connector_for(sim, sim_token(sim, max_dataset_num=1))  # the seeded demo dataset uses it up
    with pytest.raises(PermanentError, match=r"Max datasets for user exceeded plan limit \(1\)"):
        run_release(limited, target, params_for(make_spec(), target))
    demo = DatahqTarget(owner=OWNER, dataset="demo-dataset")
    [(_, outcome)] = run_release(limited, demo, params_for(make_spec("demo-dataset"), demo))
    assert isinstance(outcome, Done) and outcome.remote_ref == "u-demo/demo-dataset/2"


def test_the_server_wants_a_json_content_type(sim, token):
    answer = httpx.post(
        f"{sim.url('datahq')}/source/upload",
        content=b'{"meta": {}}',
        headers={"Content-Type": "text/plain", "Auth-Token": token},
        timeout=5,
    )
    assert answer.status_code == 200
    assert answer.json()["errors"] == ["Received empty contents (make sure your content-type is correct)"]
    missing = httpx.post(
        f"{sim.url('datahq')}/source/upload", params={"jwt": token}, json={"meta": {"owner": OWNER}}, timeout=5
    )
    assert missing.json() == {
        "success": False,
        "dataset_id": None,
        "flow_id": None,
        "errors": ["Missing owner in spec"],
    }


def test_a_spec_for_another_owner_id_is_stopped_before_sending(connector, target, sim):
    with pytest.raises(PermanentError, match="meta.ownerid is 'u-other'"):
        run_release(connector, target, unchecked(make_spec(ownerid="u-other")))
    assert sim.state("datahq")["requests"] == []


# Transport errors


@pytest.mark.parametrize(
    ("mode", "error", "options"),
    [("500", ServerError, {}), ("429", RateLimited, {"retry_after": 7}), ("hang", Timeout, {"hang_seconds": 3})],
)
def test_transient_failures_are_typed(connector, target, sim, token, mode, error, options):
    sim.fail("datahq", mode, match="/source/upload", **options)
    with pytest.raises(error) as info:
        run_release(connector, target, params_for(make_spec(), target))
    assert not info.value.permanent
    assert token not in str(info.value)
    if mode == "429":
        assert info.value.retry_after == 7


def test_an_unreachable_spec_store_is_transient(token, target):
    creds = DatahqCredentials(token=SecretStr(token), owner=OWNER, ownerid=USERID)
    with pytest.raises(Unreachable) as info:
        DatahqConnector(creds, base_url="http://127.0.0.1:9", timeout=1.0).revisions(target)
    assert not info.value.permanent


def test_the_token_never_shows(connector, token):
    assert token not in repr(connector.credentials)
    assert token not in str(connector.credentials.model_dump())
    assert token not in connector.test_connection()


# Spec validation


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"meta": {"ownerid": USERID, "dataset": "sales"}}, "meta.owner is required"),
        ({"meta": {"owner": OWNER, "dataset": "sales"}}, "meta.ownerid is required"),
        ({"meta": {"owner": OWNER, "ownerid": USERID}}, "meta.dataset is required"),
        ({"inputs": []}, "needs a 'meta' object"),
        ([], "must be a JSON object"),
        (make_spec("sales/2024"), "may only hold letters"),
        (make_spec(schedule="daily"), "must look like 'every 30m'"),
        (make_spec(schedule="every 5y"), "must look like 'every 30m'"),
        (make_spec(schedule="every m"), "must look like 'every 30m'"),
        (make_spec(schedule=60), "must be a string"),
        (make_spec(schedule="every 59s"), "under one minute"),
        (make_spec(schedule="every 0m"), "under one minute"),
        (make_spec(outputs={"kind": "zip"}), "outputs must be a list"),
    ],
)
def test_validate_spec_reports_problems(spec, expected):
    errors = validate_spec(spec)
    assert any(expected in e for e in errors), errors


@pytest.mark.parametrize("schedule", [None, "every 60s", "every 1m", " every 2h ", "every 1d", "every 1w"])
def test_validate_spec_accepts_good_schedules(schedule):
    spec = make_spec(**({"schedule": schedule} if schedule else {}))
    assert validate_spec(spec, owner=OWNER, ownerid=USERID, dataset="sales") == []


def test_validate_spec_checks_the_mapping_and_the_credentials():
    errors = validate_spec(make_spec(), owner="other-team", ownerid="u-other", dataset="costs")
    assert errors == [
        "meta.owner is 'demo-team' but the mapping's owner is 'other-team'",
        "meta.ownerid is 'u-demo' but the credentials' owner id is 'u-other'",
        "meta.dataset is 'sales' but the mapping's dataset is 'costs'",
    ]
    assert DatahqConnector.validate_spec is validate_spec


def test_params_validate_the_spec_against_the_target(target):
    with pytest.raises(ValidationError, match="the mapping's dataset is 'sales'"):
        params_for(make_spec("costs"), target)
    # Without a target only the spec itself is checked.
    assert DatahqParams.model_validate({"spec": make_spec("costs")}).spec["meta"]["dataset"] == "costs"
    # A textarea hands in JSON text.
    assert params_for(json.dumps(make_spec()), target).spec["meta"]["owner"] == OWNER
    with pytest.raises(ValidationError, match="not valid JSON"):
        params_for("{not json", target)


def test_a_target_is_slug_like():
    with pytest.raises(ValidationError):
        DatahqTarget(owner=OWNER, dataset="../sales")
    assert DatahqConnector.needs_file is False


def test_the_demo_connection_works_against_the_simulator(sim):
    from simulators.datahq import DatahqSimulator

    demo = DatahqSimulator.demo(sim.url("datahq"))
    creds = DatahqCredentials.model_validate(demo["credentials"])
    assert DatahqConnector.credential_warnings(creds) == []
    [mapping] = demo["mappings"]
    target = DatahqTarget.model_validate(mapping["target"])
    params = DatahqParams.model_validate(mapping["default_params"], context={"target": target})
    assert [s.name for s in DatahqConnector.plan(target, params)] == ["upload"]  # pure: no instance needed
    assert DatahqConnector.describe_target(target) == "demo-team/demo-dataset"
    connector = DatahqConnector(creds, base_url=sim.url("datahq"), timeout=2.0)
    [(_, outcome)] = run_release(connector, target, params)
    assert isinstance(outcome, Done) and outcome.remote_ref == "u-demo/demo-dataset/2"  # revision 1 is seeded


def test_params_errors_are_on_the_spec_field(target):
    with pytest.raises(ValidationError) as info:
        params_for(make_spec(owner="other-team", schedule="every 30s"), target)
    [error] = info.value.errors()
    assert error["loc"] == ("spec",), "the spec editor shows it under the spec"
    assert "meta.owner is 'other-team' but the mapping's owner is 'demo-team'" in error["msg"]
    assert "under one minute" in error["msg"]
    with pytest.raises(ValidationError) as info:
        params_for('{"meta": {"owner": "demo-team",}}', target)
    assert info.value.errors()[0]["loc"] == ("spec",)
    assert "The spec is not valid JSON: Illegal trailing comma before end of object (line 1, column 31)" in str(
        info.value
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[1, 2]", "must be a JSON object"),
        ('"a string"', "must be a JSON object"),
        ('{"meta": {"owner": NaN}}', "NaN is not a JSON number"),
        ("{'meta': {}}", "not valid JSON: Expecting property name enclosed in double quotes"),
        ('{"meta": {"owner": "demo-team"},}', "not valid JSON: Illegal trailing comma"),
        ("x" * 200_001, "at most 200,000 are accepted"),
    ],
)
def test_params_refuse_text_that_is_no_json_object(target, text, expected):
    with pytest.raises(ValidationError, match=expected):
        params_for(text, target)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"meta": {1: "x"}}, "spec.meta has a key that is not a string: 1"),
        ({"meta": {"version": float("nan")}}, "spec.meta.version is nan, which is not a JSON number"),
        ({"meta": {"owner": {1, 2}}}, "spec.meta.owner holds {1, 2}, which JSON cannot carry"),
    ],
)
def test_params_refuse_a_dict_json_cannot_carry(target, spec, expected):
    # The portal's form parses the JSON itself (Python's json accepts NaN): checked here too.
    with pytest.raises(ValidationError, match=re.escape(expected)):
        params_for(spec, target)


def test_params_store_the_spec_as_json(target):
    spec = make_spec(outputs=[{"kind": "zip"}], schedule="every 1d")
    spec["meta"]["certified"], spec["meta"]["note"] = True, None
    params = params_for(spec, target)
    assert params.model_dump(mode="json") == {"spec": spec}, "stored as a JSON object: versions diff key by key"
    assert DatahqParams.model_fields["spec"].annotation == dict[str, Any], "the portal renders it as a JSON textarea"


def test_the_mapping_owner_must_be_the_credentials_owner(connector, sim):
    other = DatahqTarget(owner="other-team", dataset="sales")
    spec = make_spec(owner="other-team")
    with pytest.raises(
        PermanentError,
        match="The mapping is for owner 'other-team' but the connection's token is for owner 'demo-team'",
    ):
        run_release(connector, other, params_for(spec, other))
    with pytest.raises(PermanentError, match="use a connection of 'other-team'"):
        connector.revisions(other)
    assert sim.state("datahq")["requests"] == []


# What the portal shows: the revisions action and the step's tables


def test_the_revisions_action_tables_the_latest_and_successful_revisions(connector, target, sim):
    [action] = DatahqConnector.actions_for("mapping", target)
    assert (action.name, action.auto, action.mutating, action.role) == ("revisions", True, False, "view")
    empty = connector.run_action(action, target=target, params=None)
    assert empty.tables == () and "no revision of demo-team/sales yet" in empty.message
    run_release(connector, target, params_for(make_spec(outputs=[{"kind": "report"}]), target))
    sim.fail("datahq", "pipeline_failed", message="Pipeline failed: bad header")
    run_release(connector, target, params_for(make_spec(), target))
    [table] = connector.run_action(action, target=target, params=None).tables
    assert table.title == "Revisions of demo-team/sales" and table.status_column == "State"
    assert list(table.columns) == ["Which", "Revision", "Flow id", "State", "Modified", "Pipelines", "Error"]
    latest, successful = (dict(zip(table.columns, row, strict=True)) for row in table.rows)
    assert (latest["Which"], latest["Revision"], latest["Flow id"], latest["State"]) == (
        "Latest",
        2,
        "u-demo/sales/2",
        "FAILED",
    )
    assert latest["Pipelines"] == "3 pipelines: 3 failed (Creating CSV, Creating JSON, Creating ZIP)"
    assert latest["Error"] == "Pipeline failed: bad header"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", latest["Modified"])
    assert (successful["Which"], successful["Revision"], successful["State"]) == ("Latest successful", 1, "SUCCEEDED")
    assert successful["Pipelines"] == "4 pipelines: 4 succeeded" and successful["Error"] is None


def test_the_revisions_action_says_when_none_succeeded_yet(connector, target, sim):
    sim.fail("datahq", "pipeline_failed")
    run_release(connector, target, params_for(make_spec(), target))
    [table] = connector.run_action(DatahqConnector.action("revisions"), target=target, params=None).tables
    assert [row[:4] for row in table.rows] == [
        ["Latest", 1, "u-demo/sales/1", "FAILED"],
        ["Latest successful", None, None, "none yet"],
    ]


def test_step_tables_show_the_live_pipelines_then_the_stats(connector, target):
    params = params_for(make_spec(outputs=[{"kind": "excel"}]), target)
    step = connector.plan(target, params)[0]
    ctx = StepContext(target=target, params=params, release_key=uuid.uuid4().hex)
    outcome = connector.run_step(step, ctx)
    [queued] = DatahqConnector.step_tables("upload", outcome.output)
    assert (queued.title, queued.rows, queued.status_column) == ("Pipelines of revision 1", [], "Status")
    statuses: set[str] = set()
    deadline = time.monotonic() + 10
    while isinstance(outcome, Waiting) and time.monotonic() < deadline:
        time.sleep(0.05)
        outcome = connector.check_step(
            step, StepContext(target=target, params=params, release_key="k", remote_ref=outcome.remote_ref)
        )
        tables = DatahqConnector.step_tables("upload", outcome.output)
        statuses |= {row[1] for row in tables[0].rows}
        if isinstance(outcome, Waiting):
            assert len(tables) == 1, "no stats while the revision runs"
    assert isinstance(outcome, Done) and {"INPROGRESS", "SUCCEEDED"} <= statuses
    pipelines, stats = DatahqConnector.step_tables("upload", outcome.output)
    assert list(pipelines.columns) == ["Pipeline", "Status", "Error log"]
    assert [r[0] for r in pipelines.rows] == ["Creating CSV", "Creating JSON", "Creating Excel", "Creating ZIP"]
    assert all(r[1:] == ["SUCCEEDED", None] for r in pipelines.rows)
    assert list(stats.columns) == ["Bytes", "Rows", "Hash"] and stats.status_column is None
    raw = outcome.output["stats"]
    assert stats.rows == [[f"{raw['bytes']:,}", f"{raw['count_of_rows']:,}", raw["hash"]]]


def test_step_tables_of_a_failed_revision_show_each_error_log(connector, target, sim):
    sim.fail("datahq", "pipeline_failed", message="Pipeline failed: bad header")
    [(_, outcome)] = run_release(connector, target, params_for(make_spec(), target))
    tables = DatahqConnector.step_tables("upload", outcome.output)
    assert len(tables) == 1, "no stats: nothing succeeded"
    rows = {r[0]: r for r in tables[0].rows}
    assert rows["Creating CSV"][1:] == ["FAILED", "Pipeline failed: bad header"]
    assert rows["Creating ZIP"][2].startswith("Dependency unsuccessful")


def test_step_tables_ignore_other_steps_and_empty_outputs():
    assert DatahqConnector.step_tables("upload", {}) == []
    assert DatahqConnector.step_tables("other", {"pipelines": []}) == []
    assert (
        DatahqConnector.step_tables(
            "upload", {"pipelines": [], "stats": {"bytes": None, "count_of_rows": None, "hash": None}}
        )[0].rows
        == []
    )
