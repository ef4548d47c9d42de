"""TONalytica against other Redash versions (issue 17), and the simulator against tonalytica-client.

tonalytica-client 0.1.0 hard-pins requests 2.22 / urllib3 1.25, which do not import on
Python 3.13, so it cannot be installed here. ``TonalyticaAPIClient`` below reproduces its
requests exactly, from its published source (tonalytica_client/client.py in the wheel
tonalytica_client-0.1.0-py3-none-any.whl on PyPI): the same ``requests.Session``, the same
``Authorization: Key`` header, the URL ``f"{host}/api/{uri}"`` (so the default host, which
ends with "/", asks for ``//api/...``), ``post`` sending ``json.dumps(payload)`` with
``Content-Type: application/json``, and the status checks of ``get``/``post``/``delete``.
Each method names the client's function it copies.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
import requests
from pydantic import SecretStr

from connectors.base import (
    AuthenticationError,
    Failed,
    NotFound,
    NotSupported,
    ServerError,
    StepContext,
    StepSpec,
    Waiting,
)
from connectors.statuses import MAX_UNKNOWN_STATUSES, UNKNOWN_COUNT
from connectors.tonalytica.connector import TonalyticaConnector
from connectors.tonalytica.schemas import DashboardRef, TonalyticaCredentials, TonalyticaParams, TonalyticaTarget
from simulators.tonalytica import USER_KEY
from tests.tonalytica_support import target_for_query

from .driver import run_release

SLUG = "tonalytica"
REFRESH = StepSpec("refresh", "Run query")


@pytest.fixture
def connector(sim):
    with TonalyticaConnector(
        TonalyticaCredentials(api_key=SecretStr(USER_KEY)), base_url=sim.url(SLUG), timeout=3.0
    ) as connector:
        yield connector


def fresh_run(connector: TonalyticaConnector, query_id: int = 2) -> StepContext:
    target = TonalyticaTarget.model_validate(target_for_query(connector, query_id))
    params = TonalyticaParams.model_validate({"force_refresh": True}, context={"target": target})
    return StepContext(target=target, params=params, release_key="k")


def assert_no_repr(message: str) -> None:
    assert "{" not in message and "'status':" not in message, message


# Unknown statuses


def test_an_unknown_job_status_is_shown_with_a_warning_then_fails_with_the_platforms_word(connector, sim):
    sim.config(SLUG, job_status=9, delay=30)
    ctx = fresh_run(connector)
    outcome = connector.run_step(REFRESH, ctx)
    assert isinstance(outcome, Waiting) and outcome.remote_status == "9" and "'9'" in outcome.warning
    output = dict(outcome.output)
    for checks in range(1, MAX_UNKNOWN_STATUSES):
        assert isinstance(outcome, Waiting), outcome
        outcome = connector.check_step(
            REFRESH, replace(ctx, remote_ref=outcome.remote_ref, output=output, checks=checks)
        )
        output = {**output, **outcome.output}
    assert isinstance(outcome, Failed) and "'9'" in outcome.message and "does not know" in outcome.message
    assert outcome.output[UNKNOWN_COUNT] == MAX_UNKNOWN_STATUSES


# Errors in the platform's words


def test_errors_are_the_platforms_sentence_never_a_repr(connector, sim):
    sim.fail(SLUG, "query_failed", message='column "balance" does not exist')
    failed = run_release(connector, fresh_run(connector).target, TonalyticaParams(force_refresh=True))[-1][1]
    assert isinstance(failed, Failed) and failed.message == 'column "balance" does not exist'
    sim.fail(SLUG, "500", match="/api/queries")
    with pytest.raises(ServerError) as info:
        connector.get_query(2)
    assert info.value.message.endswith("answered 500: Internal Server Error")
    for message in (failed.message, info.value.message):
        assert_no_repr(message)


def test_a_refused_key_reads_as_redash_says_it(sim):
    bad = TonalyticaConnector(TonalyticaCredentials(api_key=SecretStr("nope")), base_url=sim.url(SLUG), timeout=3.0)
    with bad, pytest.raises(AuthenticationError) as info:
        bad.test_connection()
    assert "Couldn't find resource. Please login and try again." in info.value.message
    assert_no_repr(info.value.message)


# Browse without a listing


@pytest.mark.parametrize("answer", ["404", "405"])
def test_browse_on_a_server_without_a_query_listing_says_so_and_still_looks_up_an_id(connector, sim, answer):
    sim.config(SLUG, queries_listing=answer)
    with pytest.raises(NotSupported) as info:
        connector.browse("query_name", query="wallet")
    assert "does not offer a query listing" in info.value.message and "type the query id" in info.value.message
    assert [c.value for c in connector.browse("query_id", query="2")] == ["2"]


# Dashboards by slug, then by id


@pytest.mark.parametrize("server", ["slug", "id", "both"])
def test_a_dashboard_is_found_by_slug_or_id_whichever_the_server_takes(connector, sim, server):
    sim.config(SLUG, dashboards=server)
    by_slug = connector.get_dashboard("network-overview")
    by_id = connector.get_dashboard(1)
    assert by_slug == by_id and by_slug["slug"] == "network-overview" and by_slug["query_ids"] == [1, 4, 5]
    result = connector.run_action(
        TonalyticaConnector.action("dashboard"), target=None, params=DashboardRef(dashboard="whale-watch")
    )
    assert "Whale watch" in result.message and [row[0] for row in result.tables[0].rows] == [2, 6]


def test_an_unknown_dashboard_is_not_found_either_way(connector):
    with pytest.raises(NotFound, match="no dashboard 'no-such-board'"):
        connector.get_dashboard("no-such-board")


# Cancel, confirmed


def test_cancel_deletes_the_job_and_reads_it_back(connector, sim):
    sim.config(SLUG, delay=5)
    ctx = fresh_run(connector)
    waiting = connector.run_step(REFRESH, ctx)
    cancelled = connector.cancel_step(REFRESH, replace(ctx, remote_ref=waiting.remote_ref))
    assert "confirmed" in cancelled.message and "Query cancelled by user." in cancelled.message
    methods = [(r["method"], r["path"]) for r in sim.state(SLUG)["requests"][-2:]]
    job = f"/{SLUG}/api/jobs/{waiting.remote_ref}"
    assert methods == [("DELETE", job), ("GET", job)]


def test_cancel_of_a_finished_job_says_it_had_finished(connector, sim):
    sim.config(SLUG, delay=0.01)
    ctx = fresh_run(connector)
    waiting = connector.run_step(REFRESH, ctx)
    time.sleep(0.1)
    cancelled = connector.cancel_step(REFRESH, replace(ctx, remote_ref=waiting.remote_ref))
    assert "already finished" in cancelled.message and cancelled.remote_status == "finished"


# The real client: tonalytica-client 0.1.0, reproduced


class TonalyticaAPIClient:
    """tonalytica_client.client.TonalyticaAPIClient 0.1.0, its request code copied as published."""

    def __init__(self, api_key: str, host: str = "https://tonalytica.redoubt.online/"):
        # __init__: a Session with the key header, then test_credentials() (GET session).
        self.api_key = api_key
        self.host = host
        self.s = requests.Session()
        self.s.headers.update({"Authorization": f"Key {api_key}"})
        if not self.test_credentials():
            raise Exception(f"Authorization with key {self.api_key} failed.")

    def get(self, uri: str, **kwargs: Any) -> requests.Response:  # TonalyticaAPIClient.get
        res = self.s.get(f"{self.host}/api/{uri}", timeout=10, **kwargs)
        if res.status_code != 200:
            raise Exception(f"[GET] /api/{uri} ({res.status_code})")
        return res

    def post(self, uri: str, payload: dict | None = None, **kwargs: Any) -> requests.Response:  # .post
        if payload is None or not isinstance(payload, dict):
            payload = {}
        data = json.dumps(payload)
        self.s.headers.update({"Content-Type": "application/json"})
        res = self.s.post(f"{self.host}/api/{uri}", data=data, timeout=10, **kwargs)
        if res.status_code != 200:
            raise Exception(f"[POST] /api/{uri} ({res.status_code})")
        return res

    def delete(self, uri: str) -> requests.Response:  # .delete
        res = self.s.delete(f"{self.host}/api/{uri}", timeout=10)
        if res.status_code != 200 and res.status_code != 204:
            raise Exception(f"[DELETE] /api/{uri} ({res.status_code})")
        return res

    def test_credentials(self) -> bool:  # .test_credentials
        try:
            self.get("session")
            return True
        except requests.exceptions.HTTPError:
            return False

    def generate_query_results(  # .generate_query_results (return_results=False: its True branch is buggy)
        self, ds_id: int, qry: str, qry_id: int | None = None, max_age: int = 0, parameters: dict | None = None
    ) -> requests.Response:
        payload: dict[str, Any] = {
            "data_source_id": ds_id,
            "query": qry,
            "max_age": max_age,
            "parameters": parameters or {},
        }
        if qry_id is not None:
            payload["query_id"] = qry_id
        return self.post("query_results", payload)

    def query_and_wait_result(self, ds_id: int, query: str, timeout: int = 60) -> requests.Response:  # same name
        payload = {"data_source_id": ds_id, "query": query, "max_age": 0}
        res = self.post("query_results", payload)
        job_id = res.json().get("job", {}).get("id")
        start = datetime.now()
        while True:
            job = self.get(f"jobs/{job_id}").json().get("job", {})
            if job.get("status") == 3:
                query_result_id = job.get("query_result_id")
                break
            if (datetime.now() - start).total_seconds() > timeout:
                raise Exception("Polling timeout.")
            time.sleep(0.2)
        return self.get(f"query_results/{query_result_id}")

    def queries(self, page: int = 1, page_size: int = 25) -> Any:  # .queries
        return self.get("queries", params=dict(page=page, page_size=page_size)).json()

    def get_query(self, query_id: int) -> Any:  # .get_query
        return self.get(f"queries/{query_id}").json()

    def dashboards(self, page: int = 1, page_size: int = 25) -> Any:  # .dashboards
        return self.get("dashboards", params=dict(page=page, page_size=page_size)).json()

    def get_dashboard(self, id: Any) -> Any:  # .get_dashboard: the docs' "/dashboards/<dashboard_slug>"
        return self.get(f"dashboards/{id}").json()

    def dashboard(self, slug: str) -> Any:  # .dashboard
        return self.get(f"dashboards/{slug}").json()

    def paginate(self, resource: Any, page: int = 1, page_size: int = 100) -> list:  # .paginate
        response = resource(page=page, page_size=page_size)
        items = response["results"]
        if response["page"] * response["page_size"] >= response["count"]:
            return items
        return [*items, *self.paginate(resource, page=page + 1, page_size=page_size)]


@pytest.fixture
def client(sim):
    # The client's default host ends with "/": every URL has "//api/".
    return TonalyticaAPIClient(USER_KEY, host=sim.url(SLUG) + "/")


def test_tonalytica_client_connects_through_double_slashes_and_refuses_a_bad_key(client, sim):
    assert client.get("session").json()["user"]["email"] == "analyst@tonalytica.example"
    with pytest.raises(Exception, match=r"\[GET\] /api/session \(404\)"):
        TonalyticaAPIClient("bad-key", host=sim.url(SLUG) + "/")


def test_tonalytica_client_reads_queries_and_dashboards_as_documented(client):
    assert sorted(q["id"] for q in client.paginate(client.queries, page_size=3)) == list(range(1, 8))
    assert client.get_query(2)["options"]["parameters"][0]["name"] == "limit"
    assert client.dashboards()["count"] == 2
    # The docs' V9 form, by slug, and the id form of newer servers.
    assert client.get_dashboard("network-overview")["id"] == 1
    assert client.dashboard("whale-watch")["widgets"][0]["visualization"]["query"]["id"] == 2
    assert client.get_dashboard(2)["slug"] == "whale-watch"


def test_tonalytica_client_runs_an_ad_hoc_query_and_waits_for_its_result(client, sim):
    sim.config(SLUG, delay=0.1)
    result = client.query_and_wait_result(1, "SELECT metric, value FROM network_summary", timeout=10).json()
    data = result["query_result"]["data"]
    assert [c["name"] for c in data["columns"]] == ["metric", "value"] and data["rows"]
    # With a saved query's id and parameters: that query's rows for those values.
    sql = client.get_query(2)["query"]
    job = client.generate_query_results(1, sql, qry_id=2, parameters={"limit": 3}).json()["job"]
    assert job["status"] in (1, 2)


def test_the_ad_hoc_endpoint_answers_redash_s_errors(client, sim):
    with pytest.raises(Exception, match=r"\[POST\] /api/query_results \(401\)"):
        client.post("query_results", {"query": "SELECT 1", "max_age": 0})
    answer = client.s.post(
        f"{sim.url(SLUG)}//api/query_results", data=json.dumps({"query": "SELECT 1"}), timeout=10
    ).json()
    assert answer == {"job": {"status": 4, "error": "Please select data source to run this query."}}
