"""TONalytica connector against its simulator, and the simulator against redash-toolbelt 0.1.9.

The toolbelt is the real client that passed against a running Redash (CONTRACTS.md section 7):
driving the simulator with it checks that the simulator plays Redash, not just our connector.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from connectors.base import (
    AuthenticationError,
    Done,
    Failed,
    NotFound,
    NotSupported,
    PermanentError,
    StepContext,
    StepSpec,
    Waiting,
)
from connectors.tonalytica import connector as tonalytica_connector
from connectors.tonalytica.connector import PREVIEW_ROWS, TonalyticaConnector
from connectors.tonalytica.presentation import PREVIEW_CELL_CHARS, parameter_summary, result_filename
from connectors.tonalytica.schemas import DashboardFilter, TonalyticaCredentials, TonalyticaParams, TonalyticaTarget
from tests.tonalytica_support import stream_result_csv, target_for_query

from .driver import run_release

KEY = "tonalytica-demo-user-key"
SLUG = "tonalytica"
REFRESH = StepSpec("refresh", "Run query")


@pytest.fixture
def connector(sim):
    return TonalyticaConnector(TonalyticaCredentials(api_key=SecretStr(KEY)), base_url=sim.url(SLUG), timeout=3.0)


@pytest.fixture
def wallets(connector):
    """Query 2, "Top wallets by balance": one number parameter `limit`, default 10."""
    return TonalyticaTarget.model_validate(target_for_query(connector, 2))


def params(target: TonalyticaTarget, **data) -> TonalyticaParams:
    """Params validated as the portal does: with the target in the context."""
    return TonalyticaParams.model_validate(data, context={"target": target})


def jobs(sim) -> dict:
    return sim.state(SLUG)["jobs"]


# Connection


def test_it_tests_the_connection_with_the_session(connector, sim):
    assert connector.test_connection() == "Connected to TONalytica as Demo Analyst (analyst@tonalytica.example)"
    # The key travels in the Authorization header, never in a URL.
    assert {r["auth"] for r in sim.state(SLUG)["requests"]} == {"header"}


def test_a_refused_key_is_an_authentication_error_not_a_not_found(sim):
    bad = TonalyticaConnector(
        TonalyticaCredentials(api_key=SecretStr("wrong-key-123")), base_url=sim.url(SLUG), timeout=3.0
    )
    with pytest.raises(AuthenticationError) as info:
        bad.test_connection()
    assert info.value.permanent and info.value.status_code == 404
    assert "refused the API key" in str(info.value)
    assert "wrong-key-123" not in str(info.value)
    # Redash's 404 "Couldn't find resource. Please login..." is a refused key on any endpoint.
    with pytest.raises(AuthenticationError, match="refused the API key"):
        bad.list_queries()
    assert "wrong-key-123" not in repr(bad.credentials)


def test_the_simulator_refuses_a_missing_key_with_redashs_404(sim):
    answer = httpx.get(sim.url(SLUG) + "/api/session", timeout=3)
    assert answer.status_code == 404
    assert answer.json() == {"message": "Couldn't find resource. Please login and try again."}
    assert httpx.get(sim.url(SLUG) + "/api/session", params={"api_key": KEY}, timeout=3).status_code == 200


# Browse


def test_it_pages_and_searches_queries(connector):
    first = connector.list_queries(page_size=3)
    assert (first["count"], first["page"], first["page_size"], len(first["results"])) == (7, 1, 3, 3)
    last = connector.list_queries(page=3, page_size=3)
    assert len(last["results"]) == 1
    ids = {q["id"] for page in (1, 2, 3) for q in connector.list_queries(page=page, page_size=3)["results"]}
    assert ids == set(range(1, 8))
    found = connector.list_queries(search="wallet")
    assert sorted(q["name"] for q in found["results"]) == ["Top wallets by balance", "Wallet transactions"]
    assert found["results"][0]["parameters"][0]["name"] in ("limit", "address")
    with pytest.raises(PermanentError, match="between 1 and 250"):
        connector.list_queries(page_size=251)


def test_the_simulator_limits_page_size_like_redash(sim):
    answer = httpx.get(
        sim.url(SLUG) + "/api/queries", params={"page_size": 251}, headers={"Authorization": f"Key {KEY}"}, timeout=3
    )
    assert answer.status_code == 400
    assert answer.json() == {"message": "Page size is out of range (1-250)."}


def test_it_reads_a_query_and_builds_a_target_from_its_declarations(connector):
    query = connector.get_query(5)
    assert query["name"] == "Blocks on a day"
    assert [(p["name"], p["type"]) for p in query["parameters"]] == [("day", "date"), ("workchain", "enum")]
    assert "api_key" not in query  # a query's own API key is a secret: not passed on
    target = TonalyticaTarget.model_validate(target_for_query(connector, 6))
    # min_amount has no saved default: required at release time.
    assert target.parameter_types == {"min_amount": "number", "window": "datetime-range"}
    assert target.parameter_defaults == {"window": {"start": "2024-01-01 00:00", "end": "2024-01-02 00:00"}}
    assert connector.describe_target(target) == "Query #6 Large transfers, parameters min_amount, window"


def test_an_unknown_query_is_not_found(connector):
    with pytest.raises(NotFound):
        connector.get_query(999)
    with pytest.raises(NotFound):
        run_release(connector, TonalyticaTarget(query_id=999), TonalyticaParams())


def test_it_lists_and_reads_dashboards(connector):
    page = connector.list_dashboards(page_size=1)
    assert (page["count"], len(page["results"])) == (2, 1)
    assert connector.get_dashboard(1) | {"updated_at": None} == {
        "id": 1,
        "slug": "network-overview",
        "name": "Network overview",
        "tags": [],
        "is_archived": False,
        "is_draft": False,
        "updated_at": None,
        "query_ids": [1, 4, 5],
    }


def test_it_archives_a_query(connector, sim):
    assert connector.archive_query(3) == "Query #3 archived on TONalytica"
    assert connector.get_query(3)["is_archived"] is True
    assert 3 not in {q["id"] for q in connector.list_queries()["results"]}
    answer = httpx.delete(f"{sim.url(SLUG)}/api/queries/4", headers={"Authorization": f"Key {KEY}"}, timeout=3)
    assert (answer.status_code, answer.content) == (200, b"null")  # as verified on Redash


# Releases


def test_it_runs_a_query_job_to_its_end_and_fetches_a_preview(connector, wallets, sim):
    outcomes = run_release(connector, wallets, params(wallets, parameters={"limit": "60"}, force_refresh=True))
    assert [name for name, _ in outcomes] == ["refresh", "fetch"]
    refresh, fetch = outcomes[0][1], outcomes[1][1]
    assert isinstance(refresh, Done) and refresh.remote_status == "finished"
    result_id = refresh.output["query_result_id"]
    assert refresh.remote_ref == str(result_id) and refresh.output["job_id"] in jobs(sim)
    assert isinstance(fetch, Done)
    assert fetch.output["row_count"] == 60
    assert fetch.output["columns"] == ["rank", "address", "balance_ton"]
    assert len(fetch.output["preview"]) == PREVIEW_ROWS and fetch.output["preview"][0]["rank"] == 1
    # The number was sent as a number, with every other declared value.
    assert jobs(sim)[refresh.output["job_id"]]["parameters"] == {"limit": 60}
    assert connector.fetch_result(result_id)["rows"][:PREVIEW_ROWS] == fetch.output["preview"]


def test_a_recent_cached_result_completes_the_step_without_a_job(connector, wallets, sim):
    first = run_release(connector, wallets, params(wallets))[0][1]
    assert first.output["cached"] is False
    ctx = StepContext(target=wallets, params=params(wallets, max_age=600), release_key="k")
    outcome = connector.run_step(REFRESH, ctx)
    assert isinstance(outcome, Done) and outcome.remote_status == "cached"
    assert outcome.output["query_result_id"] == first.output["query_result_id"]
    assert len(jobs(sim)) == 1


def test_force_refresh_runs_again_despite_the_cache(connector, wallets, sim):
    first = run_release(connector, wallets, params(wallets))[0][1]
    outcome = connector.run_step(
        REFRESH, StepContext(target=wallets, params=params(wallets, force_refresh=True), release_key="k")
    )
    assert isinstance(outcome, Waiting) and outcome.remote_status == "queued"
    assert len(jobs(sim)) == 2
    again = run_release(connector, wallets, params(wallets, force_refresh=True))[0][1]
    assert again.output["query_result_id"] != first.output["query_result_id"]


def test_a_failed_query_shows_the_database_error(connector):
    legacy = TonalyticaTarget(query_id=7, max_age=0)
    outcomes = run_release(connector, legacy, TonalyticaParams())
    failed = outcomes[-1][1]
    assert [n for n, _ in outcomes] == ["refresh"] and isinstance(failed, Failed)
    assert failed.message.startswith('relation "sales" does not exist')
    assert failed.remote_status == "failed"


def test_an_injected_query_failure_ends_the_job_in_status_4(connector, wallets, sim):
    sim.fail(SLUG, "query_failed", message="canceling statement due to statement timeout")
    failed = run_release(connector, wallets, params(wallets, force_refresh=True))[-1][1]
    assert isinstance(failed, Failed) and failed.message == "canceling statement due to statement timeout"


def test_it_cancels_a_running_job(connector, wallets, sim):
    sim.config(SLUG, delay=2.0)
    ctx = StepContext(target=wallets, params=params(wallets, force_refresh=True), release_key="k")
    waiting = connector.run_step(REFRESH, ctx)
    assert isinstance(waiting, Waiting)
    cancelled = connector.cancel_step(REFRESH, replace(ctx, remote_ref=waiting.remote_ref))
    assert "requested" in cancelled.message and cancelled.output["job_status"] == "cancelled"
    check = replace(ctx, remote_ref=waiting.remote_ref, output=waiting.output, checks=1)
    outcome = connector.check_step(REFRESH, check)
    assert isinstance(outcome, Failed)
    assert (outcome.message, outcome.remote_status) == ("Query cancelled by user.", "cancelled")


def test_an_expired_job_fails_clearly_after_a_few_500s(connector, wallets, sim):
    sim.fail(SLUG, "expire_jobs")
    with pytest.raises(PermanentError, match=r"expired \(jobs are kept 12 h\)") as info:
        run_release(connector, wallets, params(wallets, force_refresh=True))
    assert info.value.status_code == 500


def test_a_single_500_on_the_job_endpoint_is_waited_out(connector, wallets, sim):
    sim.fail(SLUG, "500", match="/api/jobs/")
    outcomes = run_release(connector, wallets, params(wallets, force_refresh=True))
    assert all(isinstance(o, Done) for _, o in outcomes)


def test_a_job_older_than_12_hours_is_called_expired_at_once(connector, wallets, sim):
    sim.fail(SLUG, "expire_jobs")
    waiting = connector.run_step(
        REFRESH, StepContext(target=wallets, params=params(wallets, force_refresh=True), release_key="k")
    )
    stale = {**waiting.output, "job_started_at": waiting.output["job_started_at"] - 13 * 3600}
    ctx = StepContext(
        target=wallets, params=params(wallets), release_key="k", remote_ref=waiting.remote_ref, output=stale, checks=1
    )
    with pytest.raises(PermanentError, match="expired on TONalytica"):
        connector.check_step(REFRESH, ctx)


def test_a_missing_parameter_is_refused_by_the_server_with_its_text(connector):
    # A mapping made without the declarations: nothing stops the run before the server does.
    undeclared = TonalyticaTarget(query_id=2, max_age=0)
    with pytest.raises(PermanentError, match="Missing parameter value for: limit") as info:
        run_release(connector, undeclared, TonalyticaParams())
    assert info.value.status_code == 400


def test_a_missing_required_parameter_is_reported_before_sending(connector):
    target = TonalyticaTarget.model_validate(target_for_query(connector, 6))
    with pytest.raises(ValidationError, match="no value for the required parameter min_amount"):
        params(target)
    assert params(target, parameters={"min_amount": "1000.5"}).parameters == {"min_amount": 1000.5}


@pytest.mark.parametrize(
    ("query_id", "values", "error"),
    [
        (2, {"limit": "ten"}, "parameter 'limit' must be a number, got 'ten'"),
        (5, {"day": "01/03/2024"}, "parameter 'day' must be a date written YYYY-MM-DD"),
        (5, {"workchain": "sidechain"}, "parameter 'workchain' must be one of masterchain, basechain"),
        (
            4,
            {"period": {"start": "2024-02-10", "end": "2024-02-01"}},
            r"parameter 'period' ends \(2024-02-01\) before it starts",
        ),
        (4, {"period": "2024-02-01"}, "parameter 'period' must be a range with a start and an end"),
        (2, {"limt": 5}, r"unknown parameter 'limt' \(query #2 declares: limit\)"),
    ],
)
def test_params_are_checked_against_the_declared_types(connector, query_id, values, error):
    target = TonalyticaTarget.model_validate(target_for_query(connector, query_id))
    with pytest.raises(ValidationError, match=error):
        params(target, parameters=values)


def test_params_without_a_target_are_only_checked_for_shape():
    assert TonalyticaParams.model_validate({"parameters": {"anything": "x"}}).parameters == {"anything": "x"}
    with pytest.raises(ValidationError):
        TonalyticaParams(max_age=-2)


def test_target_defaults_are_typed_as_declared():
    target = TonalyticaTarget(query_id=2, parameter_types={"limit": "number"}, parameter_defaults={"limit": "25"})
    assert target.parameter_defaults == {"limit": 25}
    with pytest.raises(ValidationError, match="must be a number"):
        TonalyticaTarget(query_id=2, parameter_types={"limit": "number"}, parameter_defaults={"limit": "many"})
    with pytest.raises(ValidationError):
        TonalyticaTarget(query_id=0)


def test_it_streams_a_result_as_csv(connector, sim):
    target = TonalyticaTarget.model_validate(target_for_query(connector, 4))
    chosen = params(target, parameters={"period": {"start": "2024-02-27", "end": "2024-03-01"}}, force_refresh=True)
    result_id = run_release(connector, target, chosen)[0][1].output["query_result_id"]
    csv = b"".join(stream_result_csv(connector, result_id, chunk_size=16)).decode()
    lines = csv.splitlines()
    assert lines[0] == "day,tx_count"
    assert [line.split(",")[0] for line in lines[1:]] == ["27/02/24", "28/02/24", "29/02/24", "01/03/24"]
    with pytest.raises(NotFound):
        stream_result_csv(connector, 9999)
    headers = httpx.get(
        f"{sim.url(SLUG)}/api/queries/1/results.csv", headers={"Authorization": f"Key {KEY}"}, timeout=3
    ).headers
    assert headers["content-type"] == "text/csv; charset=UTF-8"
    assert headers["content-disposition"].startswith("attachment; filename=Network_summary_")


def test_a_parameterized_query_has_no_latest_result(sim, connector, wallets):
    run_release(connector, wallets, params(wallets, force_refresh=True))
    answer = httpx.get(f"{sim.url(SLUG)}/api/queries/2/results", headers={"Authorization": f"Key {KEY}"}, timeout=3)
    assert answer.status_code == 404
    assert answer.json() == {"message": "No cached result found for this query."}


# Browse: the mapping form's Browse… buttons


def test_browse_lists_the_saved_queries_and_fills_the_target_from_one(connector):
    choices = connector.browse("query_id")
    # Newest first, like TONalytica's own list; archived queries are not offered.
    assert [c.label for c in choices][:2] == ["#7 Legacy sales report", "#6 Large transfers"]
    assert len(choices) == 7
    wallets = next(c for c in choices if c.value == "2")
    assert wallets.label == "#2 Top wallets by balance"
    assert wallets.detail == "parameters: limit (number, default 10)"
    expected = target_for_query(connector, 2)
    del expected["max_age"]  # the user's choice in the form, never overwritten by a choice
    assert dict(wallets.fill) == expected
    # What the form receives is a valid target as is.
    assert TonalyticaTarget.model_validate(wallets.fill).parameter_types == {"limit": "number"}


def test_browse_details_say_which_parameters_are_required_and_which_are_dropdowns(connector):
    details = {c.value: c.detail for c in connector.browse("query_id")}
    assert details["1"] == "no parameters"
    assert details["5"] == (
        "parameters: day (date, default 2024-03-01); workchain (dropdown of masterchain, basechain, default basechain)"
    )
    assert details["6"] == (
        "parameters: min_amount (number, required); "
        "window (datetime-range, default 2024-01-01 00:00 → 2024-01-02 00:00)"
    )
    # A saved default only the Redash UI understands (a dynamic date) is said unusable.
    declared = [{"name": "day", "type": "date", "value": "d_last_7_days", "enum_options": []}]
    assert parameter_summary(declared, {}) == (
        "parameters: day (date, required: its saved default 'd_last_7_days' cannot be used)"
    )


def test_browse_searches_by_name_and_looks_up_an_id(connector):
    found = connector.browse("query_name", query="wallet")
    # In the name field a choice's value is the name; the fill carries the id.
    assert sorted((c.value, c.fill["query_id"]) for c in found) == [
        ("Top wallets by balance", 2),
        ("Wallet transactions", 3),
    ]
    by_id = connector.browse("query_id", query="5")
    options = {"workchain": ["masterchain", "basechain"]}
    assert [(c.value, c.fill["parameter_options"]) for c in by_id] == [("5", options)]
    assert [c.value for c in connector.browse("query_name", query="#4")] == ["Daily transactions"]
    assert connector.browse("query_name", query="no such thing") == []


def test_browse_says_when_more_queries_matched_than_it_shows(connector, monkeypatch):
    monkeypatch.setattr(tonalytica_connector, "BROWSE_LIMIT", 3)
    choices = connector.browse("query_id")
    assert len(choices) == 3
    assert choices[-1].detail.endswith("3 of 7 queries shown: type part of a name to narrow the list")
    assert "shown" not in choices[0].detail
    assert len(connector.browse("query_name", query="wallet")) == 2, "a search that fits says nothing more"


def test_browse_an_unknown_query_id_says_so_plainly(connector):
    with pytest.raises(NotFound) as info:
        connector.browse("query_id", query="999")
    assert info.value.message == "TONalytica has no query #999 (it was deleted, or this API key cannot see it)"
    with pytest.raises(NotSupported):
        connector.browse("max_age")


def test_browse_offers_an_archived_query_looked_up_by_id_with_a_warning(connector):
    connector.archive_query(3)
    assert "3" not in {c.value for c in connector.browse("query_id")}
    (archived,) = connector.browse("query_id", query="3")
    assert archived.detail.endswith("· archived on TONalytica")


# Actions


def test_the_dashboards_action_renders_a_page_of_dashboards(connector):
    action = TonalyticaConnector.action("dashboards")
    assert (action.scope, action.mutating, action.auto) == ("connection", False, True)
    (table,) = connector.run_action(action, target=None, params=DashboardFilter()).tables
    assert table.title == "Dashboards 1–2 of 2"
    assert table.columns == ["Id", "Name", "Slug", "Tags", "Updated"]
    assert [row[1:3] for row in table.rows] == [
        ["Network overview", "network-overview"],
        ["Whale watch", "whale-watch"],
    ]
    (found,) = connector.run_action(action, target=None, params=DashboardFilter(search="whale")).tables
    assert [row[1] for row in found.rows] == ["Whale watch"]
    with pytest.raises(PermanentError, match="Page is out of range"):
        connector.run_action(action, target=None, params=DashboardFilter(page=5))


def test_the_query_info_action_shows_declared_parameters_and_what_changed(connector):
    action = TonalyticaConnector.action("query_info")
    target = TonalyticaTarget.model_validate(target_for_query(connector, 5))
    result = connector.run_action(action, target=target, params=None)
    assert result.message.startswith("Query #5 “Blocks on a day”: 2 parameters. Updated ")
    assert "differ" not in result.message
    (table,) = result.tables
    assert table.rows == [
        ["day", "Day", "date", "2024-03-01", "2024-03-01", None],
        ["workchain", "Workchain", "enum", "basechain", "basechain", "masterchain, basechain"],
    ]
    stale = TonalyticaTarget(query_id=5, parameter_types={"day": "date"})
    message = connector.run_action(action, target=stale, params=None).message
    assert "Its declared parameters differ from this mapping's" in message
    with pytest.raises(NotFound, match="no query #42"):
        connector.run_action(action, target=TonalyticaTarget(query_id=42), params=None)


def test_the_archive_action_needs_manage_confirms_and_archives(connector, sim):
    action = TonalyticaConnector.action("archive_query")
    assert (action.scope, action.role, action.mutating) == ("mapping", "manage", True)
    assert "cannot undo" in action.confirm
    result = connector.run_action(action, target=TonalyticaTarget(query_id=4), params=None)
    assert result.message == "Query #4 archived on TONalytica"
    assert sim.state(SLUG)["queries"]["4"]["is_archived"] is True


# What the release page shows: step tables and downloads


def test_step_tables_show_the_job_and_a_preview_of_the_first_rows(connector, wallets):
    outcomes = dict(run_release(connector, wallets, params(wallets, parameters={"limit": 60}, force_refresh=True)))
    (job,) = TonalyticaConnector.step_tables("refresh", outcomes["refresh"].output)
    assert (job.title, job.status_column) == ("Query job", "Status")
    assert job.columns == ["Job", "Status", "Started", "Query result"]
    job_id, status, started, result_id = job.rows[0]
    refresh = outcomes["refresh"].output
    assert (job_id, status, result_id) == (refresh["job_id"], "finished", refresh["query_result_id"])
    assert started.endswith(" UTC")
    (preview,) = TonalyticaConnector.step_tables("fetch", outcomes["fetch"].output)
    assert preview.title == f"Preview: the first {PREVIEW_ROWS} of 60 rows"
    assert preview.columns == ["rank", "address", "balance_ton"]
    assert len(preview.rows) == PREVIEW_ROWS and preview.rows[0][0] == 1 and preview.rows[0][1].startswith("EQ")


def test_step_tables_follow_a_waiting_job_and_show_a_cache_hit(connector, wallets):
    ctx = StepContext(target=wallets, params=params(wallets, force_refresh=True), release_key="k")
    waiting = connector.run_step(REFRESH, ctx)
    (job,) = TonalyticaConnector.step_tables("refresh", waiting.output)
    assert job.rows[0][1] == "queued" and job.rows[0][3] is None
    run_release(connector, wallets, params(wallets))  # follows that same job to its result
    cached = run_release(connector, wallets, params(wallets))[0][1]
    assert cached.output["cached"] is True
    (table,) = TonalyticaConnector.step_tables("refresh", cached.output)
    assert table.title == "Cached result" and table.rows[0][0] == cached.output["query_result_id"]
    assert TonalyticaConnector.step_tables("other", {}) == []


def test_a_failed_job_shows_its_status_and_small_results_show_every_row(connector):
    failed = run_release(connector, TonalyticaTarget(query_id=7, max_age=0), TonalyticaParams())[-1][1]
    (job,) = TonalyticaConnector.step_tables("refresh", failed.output)
    assert job.rows[0][1] == "failed"
    fetch = run_release(connector, TonalyticaTarget(query_id=1), TonalyticaParams())[-1][1]
    (table,) = TonalyticaConnector.step_tables("fetch", fetch.output)
    assert table.title == "Result: all 4 rows" and table.rows[0] == ["blocks_24h", 95120]
    # Long or nested cells are shortened for the page (the download has them whole).
    nested = {"columns": ["doc"], "row_count": 1, "preview": [{"doc": {"k": "x" * 500}}]}
    (cut,) = TonalyticaConnector.step_tables("fetch", nested)
    assert cut.rows[0][0].startswith('{"k": "xxx') and len(cut.rows[0][0]) == PREVIEW_CELL_CHARS
    (empty,) = TonalyticaConnector.step_tables("fetch", {"columns": ["a"], "row_count": 0, "preview": []})
    assert (empty.title, empty.rows) == ("The query returned no rows", [])


def test_the_fetched_result_downloads_as_csv_and_json(connector, wallets, sim):
    fetch = run_release(connector, wallets, params(wallets, parameters={"limit": 60}, force_refresh=True))[-1][1]
    output = fetch.output
    assert TonalyticaConnector.downloads("fetch", output) == [("csv", "CSV"), ("json", "JSON")]
    assert TonalyticaConnector.downloads("refresh", output) == []
    result_id = output["query_result_id"]

    csv = connector.download("fetch", output, "csv")
    assert (csv.filename, csv.content_type) == (f"Top_wallets_by_balance_{result_id}.csv", "text/csv; charset=utf-8")
    lines = b"".join(csv.chunks).decode().splitlines()
    assert lines[0] == "rank,address,balance_ton" and len(lines) == 61, "every row, not just the preview"

    as_json = connector.download("fetch", output, "json")
    assert (as_json.filename, as_json.content_type) == (f"Top_wallets_by_balance_{result_id}.json", "application/json")
    body = json.loads(b"".join(as_json.chunks))
    assert body["query_result"]["id"] == result_id and len(body["query_result"]["data"]["rows"]) == 60
    assert KEY.encode() not in json.dumps(body).encode()
    # Sent with the key in the header, never in a URL.
    downloads = [r for r in sim.state(SLUG)["requests"] if f"/api/query_results/{result_id}." in r["path"]]
    assert len(downloads) == 2 and {r["auth"] for r in downloads} == {"header"}


def test_a_download_that_cannot_be_served_fails_before_any_byte(connector):
    output = {"query_result_id": 9999, "query_name": "Gone", "query_id": 2}
    with pytest.raises(NotFound, match="no longer has query result 9999: run the release again"):
        connector.download("fetch", output, "csv")
    with pytest.raises(NotSupported):
        connector.download("fetch", output, "xlsx")
    with pytest.raises(NotSupported):
        connector.download("refresh", output, "csv")


def test_download_file_names_are_safe_in_a_header():
    assert result_filename("Top wallets by balance", 2, 17, "csv") == "Top_wallets_by_balance_17.csv"
    assert result_filename('Sales "Q1" / Q2: ../etc', 2, 3, "json") == "Sales_Q1_Q2_.._etc_3.json"
    assert result_filename("Café réseau", 2, 3, "csv") == "Cafe_reseau_3.csv"
    assert result_filename("Сводка", 8, 3, "csv") == "query_8_3.csv"
    assert result_filename("", None, 3, "csv") == "query_result_3.csv"


def test_params_errors_land_on_the_parameters_field(connector, wallets):
    # The portal's form puts an error whose location is a field under that field.
    with pytest.raises(ValidationError) as info:
        params(wallets, parameters={"limit": "ten"})
    (error,) = info.value.errors()
    assert error["loc"] == ("parameters",) and "must be a number" in error["msg"]
    assert params(wallets, parameters={"limit": ""}).parameters == {}, "a blank value means the default"


# The real client: redash-toolbelt 0.1.9


def call_with_timeout(function, *args, timeout: float = 15.0):
    """Run a toolbelt call that polls without a timeout of its own, failing the test instead of hanging it."""
    box: dict = {}

    def run():
        try:
            box["value"] = function(*args)
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{function.__name__} still polling after {timeout} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


def test_redash_toolbelt_browses_the_simulator(sim):
    from redash_toolbelt import Redash

    client = Redash(sim.url(SLUG), KEY)
    assert client.test_credentials() is True
    assert Redash(sim.url(SLUG), "bad-key").test_credentials() is False  # the 404 is an HTTPError
    # paginate() stops when page * page_size >= count.
    assert sorted(q["id"] for q in client.paginate(client.queries, page_size=3)) == list(range(1, 8))
    assert client.get_query(4)["options"]["parameters"][0]["type"] == "date-range"
    assert client.dashboards()["count"] == 2
    assert client.get_dashboard(2)["widgets"][0]["visualization"]["query"]["id"] == 2


def test_redash_toolbelt_refresh_query_example_runs_against_the_simulator(sim, connector):
    # The package ships examples/refresh_query.py: POST /api/queries/<id>/results with
    # data=json.dumps(...) and no Content-Type, poll /api/jobs/<id> every 1 s, then GET
    # /api/queries/<id>/results/<rid>.json and return its rows.
    from redash_toolbelt.examples.refresh_query import get_fresh_query_result

    rows = call_with_timeout(get_fresh_query_result, sim.url(SLUG), 2, KEY, {"limit": 4})
    assert [row["rank"] for row in rows] == [1, 2, 3, 4]
    posted = [r for r in sim.state(SLUG)["requests"] if r["method"] == "POST"]
    assert posted and posted[-1]["content_type"] is None  # accepted like Redash's get_json(force=True)
    # Same query and values: the connector reads the same deterministic rows.
    target = TonalyticaTarget.model_validate(target_for_query(connector, 2))
    fetched = run_release(connector, target, params(target, parameters={"limit": 4}))[-1][1]
    assert fetched.output["preview"] == rows


def test_redash_toolbelt_refresh_query_example_sees_a_failed_job(sim):
    from redash_toolbelt.examples.refresh_query import get_fresh_query_result

    with pytest.raises(Exception, match="Query execution failed."):
        call_with_timeout(get_fresh_query_result, sim.url(SLUG), 7, KEY, {})


def test_check_target_accepts_a_live_query_and_names_what_is_wrong(connector, wallets, sim):
    assert connector.check_target(wallets) == []
    [missing] = connector.check_target(replace_target(wallets, query_id=9999))
    assert missing == "TONalytica has no query #9999 (it was deleted, or this API key cannot see it)"
    drifted = replace_target(wallets, parameter_types={**wallets.parameter_types, "region": "text"})
    [problem] = connector.check_target(drifted)
    assert problem.startswith("Query #2 (Top wallets by balance) no longer declares region")
    # Only reads.
    requests = sim.state(SLUG)["requests"]
    assert requests and all(r["method"] == "GET" for r in requests), requests[-3:]


def test_check_target_lets_a_refused_key_through_as_an_error(sim, wallets):
    refused = TonalyticaConnector(
        TonalyticaCredentials(api_key=SecretStr("wrong")), base_url=sim.url(SLUG), timeout=3.0
    )
    with pytest.raises(AuthenticationError):
        refused.check_target(wallets)


def replace_target(target: TonalyticaTarget, **changes) -> TonalyticaTarget:
    return TonalyticaTarget.model_validate({**target.model_dump(), **changes})
