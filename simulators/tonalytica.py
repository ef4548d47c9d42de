"""TONalytica (a Redash fork) simulator: CONTRACTS.md section 4, shared/platforms/tonalytica.txt.

It plays the real Redash server, not the seed doc: every path under ``/api/``, a missing
or bad key answers 404 ``Couldn't find resource...``, jobs report 1 queued, 2 started,
3 finished, 4 failed (cancelled included), and an unknown job id answers 500.
Shapes no source shows are chosen here and listed in docs/platforms/tonalytica.md.

Platform fault modes (``POST /_sim/fail``):

- ``query_failed``: the next job started ends 4 with a database error (``message``, or
  ``relation "sales" does not exist``);
- ``expire_jobs``: the job asked for (GET /api/jobs/<id>) is forgotten: 500 from then on.

``POST /_sim/config`` also plays other servers: ``dashboards`` (``"slug"``: V9, by slug only;
``"id"``: v10+, by id, slug only with ``?legacy``; default both), ``job_status`` (a number
every unfinished job reports instead of 1 or 2, e.g. a status a newer server added) and
``queries_listing`` (``"404"`` or ``"405"``: no ``GET /api/queries``).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import random
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .core import Simulator

#: The one user key the simulator knows (a real user key is 40 characters; any string works here).
USER_KEY = "tonalytica-demo-user-key"
USER = {"id": 1, "name": "Demo Analyst", "email": "analyst@tonalytica.example", "groups": [1, 2]}
LOGIN_REFUSED = "Couldn't find resource. Please login and try again."
NOT_FOUND = (
    "The requested URL was not found on the server. "
    "If you entered the URL manually please check your spelling and try again."
)
DATA_SOURCE_ID = 1
ONE_YEAR = 31557600

RowsResult = tuple[list[dict[str, str]], list[dict[str, Any]]]
Rows = Callable[[dict[str, Any], random.Random], RowsResult]


def col(name: str, type_: str) -> dict[str, str]:
    return {"name": name, "friendly_name": name.replace("_", " ").title(), "type": type_}


def param(name: str, type_: str, value: Any, title: str = "", **extra: Any) -> dict[str, Any]:
    """A parameter declaration as Redash stores it in ``options.parameters``."""
    return {
        "name": name,
        "title": title or name.replace("_", " ").title(),
        "type": type_,
        "value": value,
        "global": False,
        "parentQueryId": None,
        "locals": [],
        **extra,
    }


def address(rng: random.Random) -> str:
    return "EQ" + "".join(
        rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") for _ in range(46)
    )


def days(start: str, end: str, limit: int = 366) -> list[dt.date]:
    first, last = dt.date.fromisoformat(start[:10]), dt.date.fromisoformat(end[:10])
    return [first + dt.timedelta(n) for n in range(min(limit, (last - first).days + 1))]


# Result generators: deterministic rows from the parameter values (seeded by the query text).


def summary_rows(values: dict[str, Any], rng: random.Random) -> RowsResult:
    metrics = [
        ("blocks_24h", 95_120),
        ("transactions_24h", 4_312_877),
        ("active_wallets_24h", 611_204),
        ("validators", 398),
    ]
    return [col("metric", "string"), col("value", "integer")], [{"metric": m, "value": v} for m, v in metrics]


def top_wallet_rows(values: dict[str, Any], rng: random.Random) -> RowsResult:
    limit = max(0, min(1000, int(float(values["limit"]))))
    balance = 50_000_000.0
    rows = []
    for rank in range(1, limit + 1):
        balance = round(balance * rng.uniform(0.55, 0.97), 2)
        rows.append({"rank": rank, "address": address(rng), "balance_ton": balance})
    return [col("rank", "integer"), col("address", "string"), col("balance_ton", "float")], rows


def wallet_tx_rows(values: dict[str, Any], rng: random.Random) -> RowsResult:
    start = dt.datetime(2024, 3, 1, 8, 0)
    rows = [
        {
            "lt": 44_000_000_000_000 + n * 1_000,
            "utime": (start + dt.timedelta(minutes=37 * n)).isoformat(),
            "counterparty": address(rng),
            "amount_ton": round(rng.uniform(0.1, 900), 3),
            "direction": rng.choice(["in", "out"]),
        }
        for n in range(5)
    ]
    columns = [
        col("lt", "integer"),
        col("utime", "datetime"),
        col("counterparty", "string"),
        col("amount_ton", "float"),
        col("direction", "string"),
    ]
    return columns, rows


def daily_tx_rows(values: dict[str, Any], rng: random.Random) -> RowsResult:
    period = values["period"]
    rows = [
        {"day": d.isoformat(), "tx_count": rng.randint(2_000_000, 6_000_000)}
        for d in days(period["start"], period["end"])
    ]
    return [col("day", "date"), col("tx_count", "integer")], rows


def block_rows(values: dict[str, Any], rng: random.Random) -> RowsResult:
    day = dt.date.fromisoformat(values["day"])
    per_hour = 1_800 if values["workchain"] == "masterchain" else 3_400
    rows = [
        {
            "hour": dt.datetime.combine(day, dt.time(h)).isoformat(),
            "workchain": values["workchain"],
            "blocks": per_hour + rng.randint(-60, 60),
        }
        for h in range(24)
    ]
    return [col("hour", "datetime"), col("workchain", "string"), col("blocks", "integer")], rows


def large_transfer_rows(values: dict[str, Any], rng: random.Random) -> RowsResult:
    minimum = float(values["min_amount"])
    start = dt.datetime.fromisoformat(values["window"]["start"])
    rows = [
        {
            "utime": (start + dt.timedelta(minutes=11 * n)).isoformat(),
            "source": address(rng),
            "destination": address(rng),
            "amount_ton": round(minimum * rng.uniform(1, 20), 2),
        }
        for n in range(8)
    ]
    return [
        col("utime", "datetime"),
        col("source", "string"),
        col("destination", "string"),
        col("amount_ton", "float"),
    ], rows


#: The saved queries a fresh simulator holds: (name, description, SQL, parameters, rows, tags, error).
SEED_QUERIES: list[tuple[str, str, str, list[dict[str, Any]], Rows | None, list[str], str]] = [
    (
        "Network summary",
        "Headline numbers of the last 24 h",
        "SELECT metric, value FROM network_summary",
        [],
        summary_rows,
        ["network"],
        "",
    ),
    (
        "Top wallets by balance",
        "Richest wallets",
        "SELECT address, balance_ton FROM wallets ORDER BY balance_ton DESC LIMIT {{ limit }}",
        [param("limit", "number", 10, "Number of wallets")],
        top_wallet_rows,
        ["wallets"],
        "",
    ),
    (
        "Wallet transactions",
        "Last transactions of one wallet",
        "SELECT * FROM transactions WHERE account = '{{ address }}' ORDER BY lt DESC LIMIT 5",
        [param("address", "text", "EQCD39VS5jcptHL8vMjEXrzGaRcCVYto7HUn4bpAOg8xqB2N", "Wallet address")],
        wallet_tx_rows,
        ["wallets"],
        "",
    ),
    (
        "Daily transactions",
        "Transactions per day",
        "SELECT day, count(*) FROM transactions "
        "WHERE day BETWEEN '{{ period.start }}' AND '{{ period.end }}' GROUP BY day",
        [param("period", "date-range", {"start": "2024-01-01", "end": "2024-01-07"}, "Period")],
        daily_tx_rows,
        ["network"],
        "",
    ),
    (
        "Blocks on a day",
        "Blocks per hour",
        "SELECT hour, count(*) FROM blocks WHERE day = '{{ day }}' AND workchain = '{{ workchain }}' GROUP BY hour",
        [
            param("day", "date", "2024-03-01", "Day"),
            param(
                "workchain",
                "enum",
                "basechain",
                "Workchain",
                enumOptions="masterchain\nbasechain",
                multiValuesOptions=None,
            ),
        ],
        block_rows,
        ["network"],
        "",
    ),
    (
        "Large transfers",
        "Transfers above a threshold",
        "SELECT * FROM transfers "
        "WHERE amount_ton >= {{ min_amount }} AND utime BETWEEN '{{ window.start }}' AND '{{ window.end }}'",
        [
            param("min_amount", "number", None, "Minimum amount (TON)"),
            param("window", "datetime-range", {"start": "2024-01-01 00:00", "end": "2024-01-02 00:00"}, "Window"),
        ],
        large_transfer_rows,
        ["wallets"],
        "",
    ),
    (
        "Legacy sales report",
        "Kept from the old warehouse",
        "SELECT region, sum(amount) FROM sales GROUP BY region",
        [],
        None,
        ["legacy"],
        # PostgreSQL's error text, as Redash passes it on.
        'relation "sales" does not exist\n'
        "LINE 1: SELECT region, sum(amount) FROM sales GROUP BY region\n"
        "                                        ^",
    ),
]
#: (slug, name, query ids shown in its widgets)
SEED_DASHBOARDS = [("network-overview", "Network overview", [1, 4, 5]), ("whale-watch", "Whale watch", [2, 6])]

PARAMETER_RE = re.compile(r"{{\s*([\w-]+)(?:\.(start|end))?\s*}}")


def query_hash(text: str) -> str:
    """Like Redash's gen_query_hash: comments and whitespace ignored, case folded."""
    text = re.sub(r"/\*.*?\*/|--[^\n]*", "", text, flags=re.S)
    return hashlib.md5("".join(text.split()).lower().encode()).hexdigest()


def iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat()


def is_date(value: Any) -> bool:
    # Redash uses dateutil's lax parser; fromisoformat is close enough for a simulator.
    try:
        dt.datetime.fromisoformat(str(value))
        return True
    except ValueError:
        return False


def valid_value(definition: dict[str, Any], value: Any) -> bool:
    """Redash's ParameterizedQuery._valid: a value must fit its declared type."""
    kind = definition["type"]
    if kind == "text":
        return isinstance(value, str)
    if kind == "number":
        try:
            float(value)
            return not isinstance(value, bool)
        except (TypeError, ValueError):
            return False
    if kind == "enum":
        options = (definition.get("enumOptions") or "").splitlines()
        values = value if isinstance(value, list) and definition.get("multiValuesOptions") else [value]
        return all(v in options for v in values)
    if kind == "query":
        return True
    if kind in ("date", "datetime-local", "datetime-with-seconds"):
        return is_date(value)
    if kind in ("date-range", "datetime-range", "datetime-range-with-seconds"):
        return isinstance(value, dict) and is_date(value.get("start")) and is_date(value.get("end"))
    return False


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """JSON as Flask-RESTful sends it; ``None`` becomes the body ``null`` (archive, cancel)."""
    return JSONResponse(body, status_code=status, headers=headers)


def message(status: int, text: str) -> Response:
    return json_response({"message": text}, status)


def job_error(status: int, text: str) -> Response:
    return json_response({"job": {"status": 4, "error": text}}, status)


def to_filename(name: str) -> str:
    """Redash's to_filename: no path characters, whitespace runs become underscores."""
    name = re.sub(r'[<>:"\\/|?*]+', " ", name)
    return re.sub(r"\s+", "_", name).strip("_")


class TonalyticaSimulator(Simulator):
    slug = "tonalytica"
    default_delay = 1.0

    @classmethod
    def demo(cls, base_url: str) -> dict[str, Any]:
        """The demo analyst's user key and the "Top wallets by balance" query (id 2, one number parameter)."""
        return {
            "name": "TONalytica (simulator)",
            "credentials": {"api_key": USER_KEY},
            "mappings": [
                {
                    "dataset": "Top wallets",
                    "name": "Top wallets on TONalytica",
                    "target": {
                        "query_id": 2,
                        "query_name": "Top wallets by balance",
                        "parameter_types": {"limit": "number"},
                        "parameter_defaults": {"limit": 10},
                        "max_age": 0,
                    },
                },
            ],
        }

    def reset(self) -> None:
        super().reset()
        self.dashboard_keys = "both"
        self.forced_job_status: int | None = None
        self.queries_listing = ""
        now = time.time()
        self.queries: dict[int, dict[str, Any]] = {}
        self.generators: dict[int, Rows | None] = {}
        self.errors: dict[int, str] = {}
        for qid, (name, description, text, parameters, rows, tags, error) in enumerate(SEED_QUERIES, start=1):
            self.queries[qid] = {
                "id": qid,
                "latest_query_data_id": None,
                "name": name,
                "description": description,
                "query": text,
                "query_hash": query_hash(text),
                "schedule": None,
                "api_key": uuid.uuid5(uuid.NAMESPACE_URL, f"q{qid}").hex,
                "is_archived": False,
                "is_draft": False,
                "updated_at": iso(now - 86400 * (10 - qid)),
                "created_at": iso(now - 86400 * (30 - qid)),
                "data_source_id": DATA_SOURCE_ID,
                "options": {"parameters": parameters},
                "version": 1,
                "tags": tags,
                "is_safe": True,
                "user": USER,
                "last_modified_by": USER,
            }
            self.generators[qid], self.errors[qid] = rows, error
        self.dashboards: dict[int, dict[str, Any]] = {
            did: {
                "id": did,
                "slug": slug,
                "name": name,
                "query_ids": qids,
                "tags": [],
                "is_archived": False,
                "is_draft": False,
                "updated_at": iso(now - 3600 * did),
                "created_at": iso(now - 86400 * 20),
            }
            for did, (slug, name, qids) in enumerate(SEED_DASHBOARDS, start=1)
        }
        self.results: dict[int, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self._next_result = 1
        # A scheduled refresh already ran the query without parameters: a cache hit and a
        # latest_query_data_id exist from the start, as on a live instance.
        self._store_result(self.queries[1], self.queries[1]["query"], {})

    def state(self) -> dict[str, Any]:
        self._settle_locked()  # the control endpoint already holds the lock
        return {
            "queries": {
                qid: {"is_archived": q["is_archived"], "latest_query_data_id": q["latest_query_data_id"]}
                for qid, q in self.queries.items()
            },
            "jobs": {
                jid: self._job_view(j) | {"query_id": j["query_id"], "parameters": j["parameters"]}
                for jid, j in self.jobs.items()
            },
            "results": {
                rid: {"query_id": r["query_id"], "query_hash": r["query_hash"], "rows": len(r["data"]["rows"])}
                for rid, r in self.results.items()
            },
            "requests": self.requests[-50:],
        }

    async def _control_config(self, request: Request) -> Response:
        """The base options plus ``dashboards``, ``job_status`` and ``queries_listing``."""
        body = await request.json()  # Starlette caches it: the base class reads it again
        if "dashboards" in body:
            self.dashboard_keys = str(body["dashboards"])
        if "job_status" in body:
            self.forced_job_status = None if body["job_status"] is None else int(body["job_status"])
        if "queries_listing" in body:
            self.queries_listing = str(body["queries_listing"])
        return await super()._control_config(request)

    def app(self) -> ASGIApp:
        """The routes behind Werkzeug's merging of slashes: tonalytica-client's default host ends
        with "/", so it asks for ``//api/...`` (CONTRACTS.md section 4), which Redash serves."""
        inner = super().app()

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and "//" in scope["path"]:
                scope = {**scope, "path": re.sub("/{2,}", "/", scope["path"])}
            await inner(scope, receive, send)

        return app

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/api/session", self.session, methods=["GET"]),
            Route("/api/queries", self.list_queries, methods=["GET"]),
            Route("/api/queries/{qid:int}", self.query, methods=["GET", "DELETE"]),
            Route("/api/queries/{qid:int}/results", self.query_results, methods=["GET", "POST"]),
            Route("/api/queries/{qid:int}/results.{fmt}", self.query_results, methods=["GET"]),
            Route("/api/queries/{qid:int}/results/{rid}", self.result_of_query, methods=["GET"]),
            Route("/api/queries/{qid:int}/jobs/{job_id}", self.job, methods=["GET", "DELETE"]),
            Route("/api/jobs/{job_id}", self.job, methods=["GET", "DELETE"]),
            Route("/api/query_results", self.adhoc_results, methods=["POST"]),
            Route("/api/query_results/{rid}", self.result_by_id, methods=["GET"]),
            Route("/api/dashboards", self.list_dashboards, methods=["GET"]),
            Route("/api/dashboards/{ident}", self.dashboard, methods=["GET"]),
        ]

    # Auth, bookkeeping

    def _authenticate(self, request: Request) -> Response | None:
        """Redash's api_key loader: ``Authorization: Key <k>`` or ``?api_key=``. No key or a bad one is a 404."""
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        via = "header" if scheme.lower() == "key" and key.strip() else ""
        if not via and request.query_params.get("api_key"):
            key, via = request.query_params["api_key"], "query"
        with self.lock:
            # Never the key itself: only how it came.
            self.requests.append(
                {
                    "method": request.method,
                    "path": request.url.path,
                    "auth": via or "none",
                    "content_type": request.headers.get("content-type"),
                }
            )
        if not via or key.strip() != USER_KEY:
            return message(404, LOGIN_REFUSED)
        self._settle()
        return None

    def _settle(self) -> None:
        """Store the result of every job the clock says has finished (jobs move when asked, not in the background)."""
        with self.lock:
            self._settle_locked()

    def _settle_locked(self) -> None:
        for job in self.jobs.values():
            if job["result_id"] is None and not job["cancelled"] and not job["error"] and self._job_stage(job) >= 2:
                query = self.queries.get(job["query_id"]) if job["query_id"] is not None else None
                job["result_id"] = self._store_result(query, job["text"], job["parameters"])["id"]

    def _store_result(self, query: dict[str, Any] | None, text: str, values: dict[str, Any]) -> dict[str, Any]:
        digest = query_hash(text)
        generator = self.generators[query["id"]] if query is not None else None
        columns, rows = generator(values, random.Random(digest)) if generator else ([], [])
        now = time.time()
        result: dict[str, Any] = {
            "id": self._next_result,
            "query_hash": digest,
            "query": text,
            "data": {"columns": columns, "rows": rows},
            "data_source_id": DATA_SOURCE_ID,
            "runtime": round(random.Random(digest).uniform(0.05, 2.5), 3),
            "retrieved_at": iso(now),
            "stored_at": now,
            "query_id": query["id"] if query is not None else None,
        }
        self.results[result["id"]] = result
        self._next_result += 1
        # Redash updates latest_query_data_id of every query whose own text has this hash:
        # so a parameterized run never does (its applied text differs).
        for q in self.queries.values():
            if q["query_hash"] == digest:
                q["latest_query_data_id"] = result["id"]
        return result

    @staticmethod
    def _public(result: dict[str, Any]) -> dict[str, Any]:
        return {
            k: result[k] for k in ("id", "query_hash", "query", "data", "data_source_id", "runtime", "retrieved_at")
        }

    def _page(self, request: Request, items: list[dict[str, Any]]) -> Response:
        """Redash's paginate(): {"count", "page", "page_size", "results"}, page_size 1..250."""
        try:
            page = int(request.query_params.get("page", 1))
            page_size = int(request.query_params.get("page_size", 25))
        except ValueError:
            return message(400, "Page and page_size must be integers.")
        if page < 1:
            return message(400, "Page must be positive integer.")
        if (page - 1) * page_size + 1 > len(items) > 0:
            return message(400, "Page is out of range.")
        if not 1 <= page_size <= 250:
            return message(400, "Page size is out of range (1-250).")
        start = (page - 1) * page_size
        return json_response(
            {"count": len(items), "page": page, "page_size": page_size, "results": items[start : start + page_size]}
        )

    @staticmethod
    def _search(request: Request, items: list[dict[str, Any]], *fields: str) -> list[dict[str, Any]]:
        term = request.query_params.get("q", "").strip().lower()
        if not term:
            return items
        return [i for i in items if any(term in str(i.get(f) or "").lower() for f in fields)]

    # Session, queries, dashboards

    async def session(self, request: Request) -> Response:
        if (denied := self._authenticate(request)) is not None:
            return denied
        return json_response(
            {
                "user": {**USER, "permissions": ["view_query", "execute_query", "list_dashboards", "create_query"]},
                "org_slug": "default",
                "messages": [],
                "client_config": {"dateFormat": "DD/MM/YY"},
            }
        )

    async def list_queries(self, request: Request) -> Response:
        if (denied := self._authenticate(request)) is not None:
            return denied
        if self.queries_listing in ("404", "405"):
            return message(
                int(self.queries_listing), "Not Found" if self.queries_listing == "404" else "Method Not Allowed"
            )
        with self.lock:
            # Redash lists live queries newest first.
            items = [
                q
                for q in sorted(self.queries.values(), key=lambda q: q["created_at"], reverse=True)
                if not q["is_archived"]
            ]
            # The list carries the stats fields (serialize_query with_stats=True).
            items = [q | {"retrieved_at": None, "runtime": None} for q in items]
        return self._page(request, self._search(request, items, "name", "description", "query"))

    async def query(self, request: Request) -> Response:
        if (denied := self._authenticate(request)) is not None:
            return denied
        query = self.queries.get(request.path_params["qid"])
        if query is None:
            return message(404, NOT_FOUND)
        if request.method == "DELETE":
            with self.lock:
                query["is_archived"] = True
                query["schedule"] = None
            return json_response(None)
        return json_response(query)

    async def list_dashboards(self, request: Request) -> Response:
        if (denied := self._authenticate(request)) is not None:
            return denied
        items = [
            self._dashboard_view(d, widgets=False)
            for d in sorted(self.dashboards.values(), key=lambda d: d["name"])
            if not d["is_archived"]
        ]
        return self._page(request, self._search(request, items, "name"))

    async def dashboard(self, request: Request) -> Response:
        """By id (Redash v10+) and by slug (V9, as the docs say; v10+ wants ``?legacy``, which is accepted too)."""
        if (denied := self._authenticate(request)) is not None:
            return denied
        ident = request.path_params["ident"]
        by_slug = self.dashboard_keys != "id" or "legacy" in request.query_params
        if ident.isdigit() and self.dashboard_keys != "slug":
            found = self.dashboards.get(int(ident))
        elif by_slug:
            found = next((d for d in self.dashboards.values() if d["slug"] == ident), None)
        else:
            found = None
        if found is None:
            return message(404, NOT_FOUND)
        return json_response(self._dashboard_view(found, widgets=True))

    def _dashboard_view(self, d: dict[str, Any], *, widgets: bool) -> dict[str, Any]:
        view = {k: v for k, v in d.items() if k != "query_ids"} | {
            "user_id": USER["id"],
            "user": USER,
            "layout": [],
            "dashboard_filters_enabled": False,
            "version": 1,
            "widgets": None,
        }
        if widgets:
            view["widgets"] = [
                {
                    "id": d["id"] * 100 + n,
                    "width": 1,
                    "options": {},
                    "dashboard_id": d["id"],
                    "text": "",
                    "visualization": {
                        "id": qid * 10,
                        "type": "TABLE",
                        "name": "Table",
                        "description": "",
                        "options": {},
                        "query": {k: self.queries[qid][k] for k in ("id", "name", "description", "options")},
                    },
                }
                for n, qid in enumerate(d["query_ids"])
            ]
        return view

    # Running queries

    async def query_results(self, request: Request) -> Response:
        if (denied := self._authenticate(request)) is not None:
            return denied
        query = self.queries.get(request.path_params["qid"])
        if query is None:
            return message(404, NOT_FOUND)
        if request.method == "POST":
            return await self._run(request, query)
        # GET serves latest_query_data_id, which parameterized runs never set.
        result = self.results.get(query["latest_query_data_id"] or 0)
        if result is None:
            return message(404, "No cached result found for this query.")
        return self._render(result, query, request.path_params.get("fmt", "json"), cache=False)

    async def _run(self, request: Request, query: dict[str, Any]) -> Response:
        """POST /api/queries/<id>/results, as Redash's run_query()."""
        # The server reads the body with get_json(force=True): the Content-Type does not matter.
        try:
            body = json.loads(await request.body())
        except ValueError:
            return message(400, "The browser (or proxy) sent a request that this server could not understand.")
        if not isinstance(body, dict):
            return message(400, "The browser (or proxy) sent a request that this server could not understand.")
        values = body.get("parameters") or {}
        max_age = body.get("max_age", -1)
        try:
            max_age = -1 if max_age is None else int(max_age)
        except (TypeError, ValueError):
            return message(500, "Internal Server Error")  # int() of garbage is unhandled in Redash
        if not isinstance(values, dict):
            return message(400, "The following parameter values are incompatible with their definitions: parameters")
        schema = query["options"].get("parameters") or []
        if schema:
            definitions = {p["name"]: p for p in schema}
            invalid = [
                name
                for name, value in values.items()
                if name not in definitions or not valid_value(definitions[name], value)
            ]
            if invalid:
                return message(
                    400, f"The following parameter values are incompatible with their definitions: {', '.join(invalid)}"
                )
        needed = list(dict.fromkeys(m.group(1) for m in PARAMETER_RE.finditer(query["query"])))
        missing = [name for name in needed if name not in values]
        if missing:
            return job_error(400, f"Missing parameter value for: {', '.join(missing)}")
        return self._start(request, query, self._apply(query["query"], values), values, max_age)

    async def adhoc_results(self, request: Request) -> Response:
        """POST /api/query_results: an ad-hoc run (tonalytica-client's query path), as Redash's
        QueryResultListResource: ``{data_source_id, query, max_age, parameters, query_id?}``."""
        if (denied := self._authenticate(request)) is not None:
            return denied
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return message(400, "The browser (or proxy) sent a request that this server could not understand.")
        if body.get("data_source_id") is None:
            return job_error(401, "Please select data source to run this query.")
        if body.get("data_source_id") != DATA_SOURCE_ID:
            return message(404, NOT_FOUND)
        values = body.get("parameters") or {}
        if not isinstance(values, dict):
            return message(400, "The following parameter values are incompatible with their definitions: parameters")
        try:
            max_age = int(body.get("max_age", -1) if body.get("max_age") is not None else -1)
        except (TypeError, ValueError):
            return message(500, "Internal Server Error")
        text = str(body.get("query") or "")
        try:
            text = self._apply(text, values)
        except KeyError as missing:
            return job_error(400, f"Missing parameter value for: {missing.args[0]}")
        # The rows come from the saved query of that id, or of the same text; other SQL returns none.
        query = self.queries.get(body["query_id"]) if isinstance(body.get("query_id"), int) else None
        if query is None:
            query = next((q for q in self.queries.values() if q["query"].strip() == text.strip()), None)
        return self._start(request, query, text, values, max_age)

    def _start(
        self, request: Request, query: dict[str, Any] | None, text: str, values: dict[str, Any], max_age: int
    ) -> Response:
        """A cached result younger than ``max_age``, the running job of the same text, or a new job."""
        digest = query_hash(text)
        with self.lock:
            if max_age != 0:
                now = time.time()
                cached = [
                    r
                    for r in self.results.values()
                    if r["query_hash"] == digest and (max_age < 0 or now - r["stored_at"] <= max_age)
                ]
                if cached:
                    return json_response({"query_result": self._public(max(cached, key=lambda r: r["stored_at"]))})
            for job in self.jobs.values():
                # The same query text already running on the data source: Redash hands back that job.
                if job["hash"] == digest and self._job_view(job)["status"] in (1, 2):
                    return json_response({"job": self._job_view(job)})
            fault = self.take_fault("query_failed", request)
            saved_error = self.errors[query["id"]] if query is not None else ""
            error = (fault.message or 'relation "sales" does not exist') if fault else saved_error
            job = {
                "id": str(uuid.uuid4()),
                "query_id": query["id"] if query is not None else None,
                "text": text,
                "hash": digest,
                "parameters": values,
                "started": time.monotonic(),
                "started_wall": time.time(),
                "error": error,
                "cancelled": False,
                "result_id": None,
            }
            self.jobs[job["id"]] = job
        return json_response({"job": self._job_view(job)})

    @staticmethod
    def _apply(text: str, values: dict[str, Any]) -> str:
        def value(match: re.Match[str]) -> str:
            raw = values[match.group(1)]
            if match.group(2):
                return str(raw[match.group(2)])
            if isinstance(raw, list):
                return ",".join(f"'{v}'" for v in raw)
            return str(raw)

        return PARAMETER_RE.sub(value, text)

    def _job_stage(self, job: dict[str, Any]) -> int:
        # queued for one delay, started for one delay, then finished.
        return self.stage(job["started"], 2)

    def _job_view(self, job: dict[str, Any]) -> dict[str, Any]:
        stage = self._job_stage(job)
        started_at = (
            dt.datetime.fromtimestamp(job["started_wall"] + self.delay, dt.UTC).replace(tzinfo=None).isoformat()
        )
        view = {"id": job["id"], "updated_at": 0, "status": 1, "error": "", "result": None, "query_result_id": None}
        if job["cancelled"]:
            view |= {"status": 4, "error": "Query cancelled by user.", "updated_at": started_at}
        elif stage == 1:
            view |= {"status": 2, "updated_at": started_at}
        elif stage >= 2 and job["error"]:
            view |= {"status": 4, "error": job["error"], "updated_at": started_at}
        elif stage >= 2 and job["result_id"] is not None:
            view |= {
                "status": 3,
                "result": job["result_id"],
                "query_result_id": job["result_id"],
                "updated_at": started_at,
            }
        elif stage >= 2:
            view |= {"status": 2, "updated_at": started_at}  # finished this instant: stored at the next _settle
        if self.forced_job_status is not None and view["status"] in (1, 2):
            view["status"] = self.forced_job_status
        return view

    async def job(self, request: Request) -> Response:
        """GET follows a job; DELETE cancels it. An unknown (or expired) id is Redash's unhandled 500."""
        if (denied := self._authenticate(request)) is not None:
            return denied
        job_id = request.path_params["job_id"]
        with self.lock:
            job = self.jobs.get(job_id)
            if job is not None and request.method == "GET" and self.take_fault("expire_jobs", request):
                del self.jobs[job_id]
                job = None
            if job is None:
                return message(500, "Internal Server Error")
            if request.method == "DELETE":
                if self._job_view(job)["status"] in (1, 2):
                    job["cancelled"] = True
                return json_response(None)
            return json_response({"job": self._job_view(job)})

    # Results

    async def result_by_id(self, request: Request) -> Response:
        if (denied := self._authenticate(request)) is not None:
            return denied
        rid, _, fmt = request.path_params["rid"].partition(".")
        result = self.results.get(int(rid)) if rid.isdigit() else None
        if result is None:
            return message(404, NOT_FOUND)
        return self._render(result, None, fmt or "json", cache=True)

    async def result_of_query(self, request: Request) -> Response:
        """GET /api/queries/<qid>/results/<rid>.<fmt>: what redash-toolbelt fetches after a refresh."""
        if (denied := self._authenticate(request)) is not None:
            return denied
        query = self.queries.get(request.path_params["qid"])
        rid, _, fmt = request.path_params["rid"].partition(".")
        result = self.results.get(int(rid)) if rid.isdigit() else None
        if query is None or result is None:
            return message(404, NOT_FOUND)
        return self._render(result, query, fmt or "json", cache=True)

    def _render(self, result: dict[str, Any], query: dict[str, Any] | None, fmt: str, *, cache: bool) -> Response:
        headers = {"Cache-Control": f"private,max-age={ONE_YEAR}"} if cache else {}
        if fmt == "json":
            return json_response({"query_result": self._public(result)}, headers=headers)
        if fmt not in ("csv", "tsv"):
            return message(400, f"Unsupported format: {fmt}")
        name = (to_filename(query["name"]) or str(query["id"])) if query else str(result["id"])
        day = result["retrieved_at"][:10].replace("-", "_")
        headers["Content-Disposition"] = f"attachment; filename={name}_{day}.{fmt}"
        content_type = "text/csv; charset=UTF-8" if fmt == "csv" else "text/tab-separated-values; charset=UTF-8"
        return Response(
            self._csv(result, "," if fmt == "csv" else "\t"),
            media_type=None,
            headers={**headers, "Content-Type": content_type},
        )

    @staticmethod
    def _csv(result: dict[str, Any], delimiter: str) -> bytes:
        """Redash's CSV: a header of column names; dates and datetimes in its display format (DD/MM/YY HH:mm)."""
        columns = result["data"]["columns"]
        out = io.StringIO()
        writer = csv.writer(out, delimiter=delimiter)
        writer.writerow([c["name"] for c in columns])
        for row in result["data"]["rows"]:
            cells = []
            for c in columns:
                value = row.get(c["name"])
                if c["type"] == "datetime" and value:
                    value = dt.datetime.fromisoformat(value).strftime("%d/%m/%y %H:%M")
                elif c["type"] == "date" and value:
                    value = dt.date.fromisoformat(value).strftime("%d/%m/%y")
                cells.append(value)
            writer.writerow(cells)
        return out.getvalue().encode("utf-8")
