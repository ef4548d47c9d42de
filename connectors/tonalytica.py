"""TONalytica (a Redash fork): run a saved query with parameters, then fetch its result.

Docs: shared/platforms/tonalytica.txt (Redash's "as of V9" docs) and CONTRACTS.md
section 4, which says where the real server differs from them:

- every path starts with ``/api/``;
- a missing or refused API key answers **404** ``Couldn't find resource. Please login
  and try again.``, not 401: we report it as AuthenticationError;
- job statuses are 1 queued, 2 started, 3 finished, 4 failed (a cancelled job is 4 too,
  with ``Query cancelled by user.``); 5 "cancelled" exists in some versions: 4 and 5 are
  both terminal;
- an unknown or expired job id answers **500** (Redash does not handle NoSuchJobError).

A release is two steps: "refresh" (POST ``/api/queries/<id>/results``: a cached result
completes it at once, else it waits on the job) and "fetch" (read the result, keep a
preview). Beyond releases the portal gets: ``browse`` of the saved queries for the mapping
form (filling the parameter declarations), the actions ``query_info``, ``dashboards`` and
``archive_query``, step tables (the job, the result preview) and CSV/JSON downloads of the
fetched result streamed through the portal. docs/platforms/tonalytica.md explains the choices.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal

import httpx
from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from .base import (
    Action,
    ActionResult,
    AuthenticationError,
    Choice,
    Connector,
    Done,
    Download,
    Failed,
    InvalidResponse,
    NotFound,
    NotSent,
    NotSupported,
    PermanentError,
    ReconcileOutcome,
    Schema,
    ServerError,
    StepContext,
    StepOutcome,
    StepSpec,
    Table,
    Waiting,
    since_start,
)
from .http import HttpClient, default_error_message, safe_url

#: What Redash answers, with a 404, to a missing, unknown or disabled API key.
LOGIN_REFUSED = "Couldn't find resource. Please login and try again."
#: Redash forgets a job this long after it ends (REDASH_JOB_EXPIRY_TIME's default).
JOB_EXPIRY_SECONDS = 12 * 3600
#: How many 500s in a row the job endpoint may answer before we call the job lost.
MAX_JOB_SERVER_ERRORS = 3
#: Rows kept in the "fetch" step's output.
PREVIEW_ROWS = 50
#: Saved queries offered by one Browse… (Redash's default page size): a search narrows them.
BROWSE_LIMIT = 25
#: Longest cell text shown in a preview table (a JSON column can hold kilobytes).
PREVIEW_CELL_CHARS = 200
#: format -> (button label, Content-Type) of the fetched result's downloads.
DOWNLOAD_FORMATS: dict[str, tuple[str, str]] = {
    "csv": ("CSV", "text/csv; charset=utf-8"),
    "json": ("JSON", "application/json"),
}
CANCELLED_MESSAGE = "Query cancelled by user."

JOB_QUEUED, JOB_STARTED, JOB_FINISHED, JOB_FAILED, JOB_CANCELLED = 1, 2, 3, 4, 5
#: RQ-era statuses of Redash HEAD (deferred, scheduled): the job has not run yet.
JOB_WAITING_STATUSES = {JOB_QUEUED: "queued", JOB_STARTED: "started", 6: "deferred", 7: "scheduled"}

# PARAMETERS

ParameterType = Literal[
    "text",
    "number",
    "enum",
    "query",
    "date",
    "datetime-local",
    "datetime-with-seconds",
    "date-range",
    "datetime-range",
    "datetime-range-with-seconds",
]
#: The exact formats the Redash UI sends (its ``_is_date`` is laxer: we are stricter on purpose,
#: so a typo is caught in the form instead of running a query on a misread date).
DATE_FORMATS: dict[str, tuple[str, str]] = {
    # type -> (strptime format, what users are told)
    "date": ("%Y-%m-%d", "YYYY-MM-DD"),
    "datetime-local": ("%Y-%m-%d %H:%M", "YYYY-MM-DD HH:MM"),
    "datetime-with-seconds": ("%Y-%m-%d %H:%M:%S", "YYYY-MM-DD HH:MM:SS"),
}
RANGE_TYPES = {
    "date-range": "date",
    "datetime-range": "datetime-local",
    "datetime-range-with-seconds": "datetime-with-seconds",
}


def _parse_date(name: str, kind: str, value: Any) -> tuple[str, dt.datetime]:
    """A date or datetime parameter value as Redash wants it, and its parsed value."""
    fmt, shown = DATE_FORMATS[kind]
    if isinstance(value, dt.datetime):
        value = value.strftime(fmt)
    elif isinstance(value, dt.date):
        value = value.isoformat() if kind == "date" else dt.datetime.combine(value, dt.time()).strftime(fmt)
    if not isinstance(value, str):
        raise ValueError(f"parameter '{name}' must be a {kind} written {shown}, got {value!r}")
    text = value.strip().replace("T", " ")
    try:
        # strptime alone accepts "2024-1-5": the length check keeps the format exact.
        parsed = dt.datetime.strptime(text, fmt)
        if len(text) != len(parsed.strftime(fmt)):
            raise ValueError
    except ValueError:
        raise ValueError(f"parameter '{name}' must be a {kind} written {shown}, got {value!r}") from None
    return text, parsed


def coerce_parameter(name: str, kind: str, value: Any, options: Iterable[str] = ()) -> Any:
    """``value`` in the JSON shape Redash expects for a parameter of type ``kind``.

    Raises ValueError with a message naming the parameter. Numbers become int or float,
    dates stay strings in their exact format, ranges become ``{"start", "end"}`` with the
    end not before the start.
    """
    if kind == "number":
        if isinstance(value, bool):
            raise ValueError(f"parameter '{name}' must be a number, got {value!r}")
        if isinstance(value, int | float):
            return value
        try:
            number = float(str(value).strip())
        except ValueError:
            raise ValueError(f"parameter '{name}' must be a number, got {value!r}") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError(f"parameter '{name}' must be a finite number, got {value!r}")
        return int(number) if number.is_integer() and "." not in str(value) else number
    if kind == "text":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise ValueError(f"parameter '{name}' must be text, got {value!r}")
        return value
    if kind in ("enum", "query"):
        allowed = list(options)
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str | int) and not isinstance(v, bool) for v in values):
            raise ValueError(f"parameter '{name}' must be one of its options, got {value!r}")
        if kind == "enum" and allowed:
            wrong = [str(v) for v in values if str(v) not in allowed]
            if wrong:
                raise ValueError(f"parameter '{name}' must be one of {', '.join(allowed)}; got {', '.join(wrong)}")
        return value
    if kind in DATE_FORMATS:
        return _parse_date(name, kind, value)[0]
    if kind in RANGE_TYPES:
        if not isinstance(value, Mapping) or set(value) != {"start", "end"}:
            raise ValueError(f"parameter '{name}' must be a range with a start and an end, got {value!r}")
        start, start_at = _parse_date(f"{name}.start", RANGE_TYPES[kind], value["start"])
        end, end_at = _parse_date(f"{name}.end", RANGE_TYPES[kind], value["end"])
        if end_at < start_at:
            raise ValueError(f"parameter '{name}' ends ({end}) before it starts ({start})")
        return {"start": start, "end": end}
    raise ValueError(f"parameter '{name}' has an unknown type {kind!r}")


def _is_blank(kind: str, value: Any) -> bool:
    # A form sends "" for an empty field: only a text parameter can mean an empty string.
    return value is None or (value == "" and kind != "text")


def resolve_parameters(target: TonalyticaTarget, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared parameter's value for a run: the override, else the mapping's default.

    Raises ValueError listing every problem: unknown names, values of the wrong type,
    and declared parameters left without a value (Redash would refuse the run).
    """
    problems: list[str] = []
    declared = target.parameter_types
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        known = ", ".join(declared) or "none"
        problems.append(
            f"unknown parameter {', '.join(repr(n) for n in unknown)} (query #{target.query_id} declares: {known})"
        )
    values: dict[str, Any] = {}
    missing: list[str] = []
    for name, kind in declared.items():
        raw = overrides.get(name)
        if _is_blank(kind, raw):
            raw = target.parameter_defaults.get(name)
        if _is_blank(kind, raw):
            missing.append(name)
            continue
        try:
            values[name] = coerce_parameter(name, kind, raw, target.parameter_options.get(name, ()))
        except ValueError as exc:
            problems.append(str(exc))
    if missing:
        problems.append(f"no value for the required parameter{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    if problems:
        raise ValueError("; ".join(problems))
    return values


def parameter_declarations(query: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A Redash query's ``options.parameters`` as plain declarations.

    Each is ``{"name", "title", "type", "value", "enum_options", "multiple"}``; ``value``
    is the query's saved default as Redash stores it (possibly a dynamic date like
    ``"d_last_7_days"``, which only the Redash UI resolves).
    """
    options = query.get("options") or {}
    declared = []
    for p in options.get("parameters") or []:
        if not isinstance(p, Mapping) or not p.get("name"):
            continue
        enum = p.get("enumOptions") or ""
        declared.append(
            {
                "name": p["name"],
                "title": p.get("title") or p["name"],
                "type": p.get("type") or "text",
                "value": p.get("value"),
                "enum_options": [o for o in enum.splitlines() if o] if isinstance(enum, str) else [],
                "multiple": bool(p.get("multiValuesOptions")),
            }
        )
    return declared


# SCHEMAS


class TonalyticaCredentials(Schema):
    api_key: SecretStr = Field(
        title="User API key",
        description="From your TONalytica profile page. Sent as 'Authorization: Key ...', never in a URL.",
    )


class TonalyticaTarget(Schema):
    """A saved query, with its parameter declarations copied when the mapping was made.

    ``TonalyticaConnector.target_for_query`` builds one from the live query.
    """

    # Both fields have a Browse… button (``browse``): a choice fills every field below from
    # the live query. query_name is browsable too because the portal renders an int field as
    # a number input, where no search text can be typed.
    query_id: int = Field(
        gt=0,
        title="Query id",
        description="Browse… lists the saved queries; with an id typed in, it looks that query up",
        json_schema_extra={"browse": True},
    )
    query_name: str = Field(
        default="",
        max_length=255,
        title="Query name",
        description="For display only. Type part of a name and Browse… to search the saved queries",
        json_schema_extra={"browse": True},
    )
    parameter_types: dict[str, ParameterType] = Field(
        default_factory=dict, title="Parameter types", description="name -> type, as declared by the query"
    )
    parameter_defaults: dict[str, Any] = Field(
        default_factory=dict,
        title="Default parameter values",
        description="name -> value used when a release gives none",
    )
    parameter_options: dict[str, list[str]] = Field(
        default_factory=dict,
        title="Dropdown options",
        description="name -> allowed values of a dropdown (enum) parameter",
    )
    max_age: int = Field(
        default=-1,
        ge=-1,
        title="Accept a cached result up to (seconds)",
        description="-1 accepts any cached result, 0 always runs the query",
    )

    @model_validator(mode="after")
    def _typed_defaults(self) -> TonalyticaTarget:
        problems = [
            f"default for undeclared parameter '{n}'" for n in self.parameter_defaults if n not in self.parameter_types
        ]
        problems += [
            f"options for undeclared parameter '{n}'" for n in self.parameter_options if n not in self.parameter_types
        ]
        typed = {}
        for name, value in self.parameter_defaults.items():
            kind = self.parameter_types.get(name)
            if kind is None:
                continue
            if _is_blank(kind, value):
                continue  # no default: the parameter is required at release time
            try:
                typed[name] = coerce_parameter(name, kind, value, self.parameter_options.get(name, ()))
            except ValueError as exc:
                problems.append(f"default: {exc}")
        if problems:
            raise ValueError("; ".join(problems))
        object.__setattr__(self, "parameter_defaults", typed)
        return self


class TonalyticaParams(Schema):
    """What one release asks for. With the target in the validation context (as the portal
    validates), every value is checked against the declared types and required parameters."""

    # The portal's form renders this dict as a JSON textarea, the bool as a checkbox and the
    # optional int as an optional number field; errors about values land under "Parameters".
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        # Validated even when absent: a declared parameter without a default must be given.
        validate_default=True,
        title="Parameters",
        description=(
            'A JSON object of name -> value, e.g. {"limit": 60}; it overrides the mapping\'s defaults. '
            'Dates as "YYYY-MM-DD", ranges as {"start": ..., "end": ...}; a blank value uses the default.'
        ),
    )
    force_refresh: bool = Field(
        default=False,
        title="Force a fresh run",
        description="Run the query now (max_age 0) instead of accepting a cached result",
    )
    max_age: int | None = Field(
        default=None, ge=-1, title="Accept a cached result up to (seconds)", description="Defaults to the mapping's"
    )

    @field_validator("parameters")
    @classmethod
    def _against_target(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Names stripped; with the target in the context, values checked and typed as declared.

        A field validator (not a model one) so that the portal shows the problems under the
        Parameters field, next to what the user typed.
        """
        value = {str(k).strip(): v for k, v in value.items()}
        target = (info.context or {}).get("target")
        if not isinstance(target, TonalyticaTarget):
            return value
        resolved = resolve_parameters(target, value)
        # Keep the real overrides only (a blank field means "the default"), in the shape
        # Redash wants (numbers as numbers...): a later change of a default still applies.
        return {k: resolved[k] for k, v in value.items() if not _is_blank(target.parameter_types[k], v)}

    def effective_max_age(self, target: TonalyticaTarget) -> int:
        if self.force_refresh:
            return 0
        return target.max_age if self.max_age is None else self.max_age


class DashboardFilter(Schema):
    """The filters of the ``dashboards`` action: Redash's own list parameters."""

    search: str = Field(default="", max_length=100, title="Search", description="Part of a dashboard's name")
    page: int = Field(default=1, ge=1, le=10_000, title="Page")


# WHAT THE PORTAL SHOWS


def show_value(value: Any) -> str | None:
    """A parameter value as one short line: a range as ``start → end``, a list joined."""
    if value is None or value == "":
        return None
    if isinstance(value, Mapping) and set(value) == {"start", "end"}:
        return f"{value['start']} → {value['end']}"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def parameter_summary(declared: Iterable[Mapping[str, Any]], defaults: Mapping[str, Any]) -> str:
    """One line describing a query's parameters for a browse choice.

    ``defaults`` are the usable (typed) ones from ``TonalyticaConnector.target_data``: a
    declared value missing there could not be used, so the parameter is said required.
    """
    parts = []
    for p in declared:
        kind = "dropdown of " + ", ".join(p["enum_options"]) if p["type"] == "enum" and p["enum_options"] else p["type"]
        if p["name"] in defaults:
            value = f"default {show_value(defaults[p['name']])}"
        elif not _is_blank(p["type"], p["value"]):
            value = f"required: its saved default {show_value(p['value'])!r} cannot be used"
        else:
            value = "required"
        parts.append(f"{p['name']} ({kind}, {value})")
    return "parameters: " + "; ".join(parts) if parts else "no parameters"


def preview_cell(value: Any) -> Any:
    """A result cell as the preview table shows it: short, JSON for nested values."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= PREVIEW_CELL_CHARS else text[: PREVIEW_CELL_CHARS - 1] + "…"


def result_filename(query_name: str, query_id: Any, result_id: int, fmt: str) -> str:
    """``<query name>_<result id>.<fmt>``, in ASCII letters, digits, ``.``, ``_`` and ``-`` only.

    The portal puts it in a quoted Content-Disposition header: no quote, slash or non-ASCII
    character may reach it. A name with nothing left falls back to ``query_<id>``.
    """
    ascii_name = unicodedata.normalize("NFKD", query_name or "").encode("ascii", "ignore").decode()
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_name).strip("._-")[:100]
    if not stem:
        stem = f"query_{int(query_id)}" if str(query_id or "").isdigit() else "query_result"
    return f"{stem}_{int(result_id)}.{fmt}"


# HTTP


def redash_error_message(response: httpx.Response) -> str:
    """Redash says why in ``{"message"}`` or, when a run is refused, ``{"job": {"error"}}``."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("job"), dict) and body["job"].get("error"):
        return str(body["job"]["error"])[:500]
    return default_error_message(response)


class TonalyticaHttp(HttpClient):
    """HttpClient with Redash's way of refusing a key (a 404)."""

    def raise_for_response(self, method: str, url: str, response: httpx.Response) -> None:
        if response.status_code == 404 and redash_error_message(response) == LOGIN_REFUSED:
            raise AuthenticationError(
                f"TONalytica refused the API key ({method} {safe_url(url)} answered 404: {LOGIN_REFUSED})",
                status_code=404,
            )
        super().raise_for_response(method, url, response)


# THE CONNECTOR


class TonalyticaConnector(Connector):
    slug = "tonalytica"
    label = "TONalytica"
    Credentials = TonalyticaCredentials
    Target = TonalyticaTarget
    Params = TonalyticaParams
    needs_file = False
    actions = (
        Action(
            "query_info",
            "Query on TONalytica",
            description="The saved query as TONalytica has it now: its declared parameters next to this mapping's.",
        ),
        Action(
            "dashboards",
            "Dashboards",
            scope="connection",
            auto=True,
            params=DashboardFilter,
            description="The dashboards this API key can see on TONalytica, 25 a page, refreshed every 10 s.",
        ),
        Action(
            "archive_query",
            "Archive the query",
            role="manage",
            mutating=True,
            # Redash's archive also deletes the query's dashboard widgets and alerts: say so.
            confirm=(
                "Archive this saved query on TONalytica? It leaves TONalytica's lists, its schedule stops, "
                "and its widgets and alerts are deleted. The portal cannot undo this."
            ),
            description=(
                "DELETE /api/queries/<id> on TONalytica. This mapping stays: archive it too if nothing "
                "should release the query any more."
            ),
        ),
    )

    def __init__(self, credentials: TonalyticaCredentials, *, base_url: str, timeout: float = 30.0):
        super().__init__(credentials, base_url=base_url, timeout=timeout)
        # Paths carry /api/ themselves: accept a base URL pasted with it.
        if self.base_url.endswith("/api"):
            self.base_url = self.base_url[: -len("/api")]
        self.http = TonalyticaHttp(
            self.base_url,
            timeout=timeout,
            # A header, never ?api_key=: URLs end up in logs and messages.
            headers={"Authorization": f"Key {credentials.api_key.get_secret_value()}"},
            error_parser=redash_error_message,
        )

    # Connection

    def test_connection(self) -> str:
        """GET /api/session. Any 404 there means the key was refused (Redash's way), not "not found"."""
        try:
            session = self.http.json("GET", "/api/session", ok=(200,))
        except NotFound as exc:
            raise AuthenticationError(
                f"TONalytica refused the API key, or the base URL is not a TONalytica server ({exc.message})",
                status_code=404,
            ) from None
        user = session.get("user") if isinstance(session, dict) else None
        if not isinstance(user, dict):
            raise InvalidResponse("TONalytica's /api/session answered without a user")
        who = user.get("name") or user.get("email") or f"user #{user.get('id')}"
        email = user.get("email")
        return f"Connected to TONalytica as {who}" + (f" ({email})" if email and email != who else "")

    @classmethod
    def describe_target(cls, target: TonalyticaTarget) -> str:
        name = f" {target.query_name}" if target.query_name else ""
        params = f", parameters {', '.join(target.parameter_types)}" if target.parameter_types else ""
        return f"Query #{target.query_id}{name}{params}"

    # Browse

    def list_queries(self, *, search: str = "", page: int = 1, page_size: int = 25) -> dict[str, Any]:
        """A page of saved (non-archived) queries: ``{"count", "page", "page_size", "results"}``.

        Each result is ``{"id", "name", "description", "tags", "updated_at", "parameters"}``
        (parameters as ``parameter_declarations``). ``page_size`` is 1..250 (Redash's limit).
        """
        self._check_page(page, page_size)
        query: dict[str, Any] = {"page": page, "page_size": page_size}
        if search.strip():
            query["q"] = search.strip()
        answer = self.http.json("GET", "/api/queries", params=query, ok=(200,))
        return self._page(answer, self._query_summary)

    def get_query(self, query_id: int) -> dict[str, Any]:
        """One query with its declared parameters. The query's own API key is left out.

        Raises NotFound, saying which query, for an id TONalytica does not know.
        """
        try:
            query = self.http.json("GET", f"/api/queries/{int(query_id)}", ok=(200,))
        except NotFound:
            raise self._no_such_query(query_id) from None
        if not isinstance(query, dict) or "id" not in query:
            raise InvalidResponse("TONalytica answered a query without an id")
        return {
            **self._query_summary(query),
            "query": query.get("query", ""),
            "data_source_id": query.get("data_source_id"),
            "is_archived": bool(query.get("is_archived")),
            "is_draft": bool(query.get("is_draft")),
            "latest_query_data_id": query.get("latest_query_data_id"),
            "schedule": query.get("schedule"),
        }

    def target_for_query(self, query_id: int, *, max_age: int = -1) -> dict[str, Any]:
        """Target data for a mapping, copied from the live query's declarations.

        A saved default that does not validate (a dynamic date such as ``d_last_7_days``,
        which only the Redash UI resolves) is left out: the parameter becomes required.
        """
        return self.target_data(self.get_query(query_id), max_age=max_age)

    @staticmethod
    def target_data(query: Mapping[str, Any], *, max_age: int = -1) -> dict[str, Any]:
        """Target data from a query as ``get_query`` or ``list_queries`` return it (no network).

        Saved defaults that do not validate are left out, as in ``target_for_query``.
        """
        types = {p["name"]: p["type"] for p in query["parameters"]}
        options = {
            p["name"]: p["enum_options"] for p in query["parameters"] if p["type"] == "enum" and p["enum_options"]
        }
        defaults = {}
        for p in query["parameters"]:
            if _is_blank(p["type"], p["value"]):
                continue
            try:
                defaults[p["name"]] = coerce_parameter(p["name"], p["type"], p["value"], options.get(p["name"], ()))
            except ValueError:
                continue
        return {
            "query_id": query["id"],
            "query_name": query["name"][:255],
            "parameter_types": types,
            "parameter_defaults": defaults,
            "parameter_options": options,
            "max_age": max_age,
        }

    def archive_query(self, query_id: int) -> str:
        """Archive a saved query (DELETE /api/queries/<id>, which answers 200 with ``null``)."""
        self.http.request("DELETE", f"/api/queries/{int(query_id)}", ok=(200, 204))
        return f"Query #{int(query_id)} archived on TONalytica"

    def list_dashboards(self, *, search: str = "", page: int = 1, page_size: int = 25) -> dict[str, Any]:
        """A page of dashboards: ``{"count", "page", "page_size", "results"}``.

        Each result is ``{"id", "slug", "name", "tags", "is_archived", "is_draft", "updated_at"}``.
        """
        self._check_page(page, page_size)
        query: dict[str, Any] = {"page": page, "page_size": page_size}
        if search.strip():
            query["q"] = search.strip()
        answer = self.http.json("GET", "/api/dashboards", params=query, ok=(200,))
        return self._page(answer, self._dashboard_summary)

    def get_dashboard(self, dashboard_id: int) -> dict[str, Any]:
        """One dashboard by id (Redash v10+; v9 addressed them by slug), with the ids of its queries."""
        dashboard = self.http.json("GET", f"/api/dashboards/{int(dashboard_id)}", ok=(200,))
        if not isinstance(dashboard, dict):
            raise InvalidResponse("TONalytica answered a dashboard that is not an object")
        query_ids = []
        for widget in dashboard.get("widgets") or []:
            query = ((widget or {}).get("visualization") or {}).get("query") or {}
            if query.get("id") is not None and query["id"] not in query_ids:
                query_ids.append(query["id"])
        return {**self._dashboard_summary(dashboard), "query_ids": query_ids}

    def fetch_result(self, result_id: int) -> dict[str, Any]:
        """A query result as JSON: ``{"id", "columns", "rows", "retrieved_at", "runtime"}``.

        ``columns`` are Redash's ``{"name", "friendly_name", "type"}``; ``rows`` are ``{column: value}``.
        """
        answer = self.http.json("GET", f"/api/query_results/{int(result_id)}", ok=(200,))
        result = answer.get("query_result") if isinstance(answer, dict) else None
        data = result.get("data") if isinstance(result, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
            raise InvalidResponse(f"TONalytica answered query result {int(result_id)} without data rows")
        return {
            "id": result.get("id", int(result_id)),
            "columns": list(data.get("columns") or []),
            "rows": data["rows"],
            "retrieved_at": result.get("retrieved_at"),
            "runtime": result.get("runtime"),
        }

    def stream_result_csv(self, result_id: int, *, chunk_size: int = 64 * 1024) -> Iterator[bytes]:
        """A query result as CSV bytes, chunk by chunk (UTF-8, Redash's own CSV rendering).

        Errors (refused key, unknown result) raise here, before any byte is returned.
        """
        return self.http.stream(f"/api/query_results/{int(result_id)}.csv", chunk_size=chunk_size)

    # Browse, actions, step tables and downloads (what the portal shows beyond steps)

    def browse(self, field: str, *, query: str = "", values: Mapping[str, Any] | None = None) -> list[Choice]:
        """Saved queries for the mapping form's ``query_id`` and ``query_name`` fields.

        ``query`` is what the field holds. In ``query_id`` an id looks that one query up (so
        does ``#id`` in either field); anything else searches names, descriptions and SQL
        (Redash's ``q``; empty lists every query), newest first, at most BROWSE_LIMIT; the
        last choice's detail says how many more matched. A choice fills ``query_id``,
        ``query_name`` and the parameter declarations (types, usable defaults, dropdown
        options); ``max_age`` stays as the user set it. Raises NotFound for an unknown id.
        """
        if field not in ("query_id", "query_name"):
            return super().browse(field, query=query, values=values)
        text = query.strip()
        wanted = text.removeprefix("#").strip()
        if wanted.isdigit() and (field == "query_id" or text.startswith("#")):
            found, count = [self.get_query(int(wanted))], 1
        else:
            page = self.list_queries(search=text, page_size=BROWSE_LIMIT)
            found, count = page["results"], page["count"]
        choices = [self._choice(field, q) for q in found if q.get("id") is not None]
        if choices and isinstance(count, int) and count > len(choices):
            last = choices[-1]
            more = f"{len(choices)} of {count} queries shown: type part of a name to narrow the list"
            choices[-1] = Choice(last.value, last.label, f"{last.detail} — {more}", last.fill)
        return choices

    def _choice(self, field: str, query: Mapping[str, Any]) -> Choice:
        data = self.target_data(query)
        # max_age is the user's choice in the form, not the query's: left out of the fill.
        fill = {k: v for k, v in data.items() if k != "max_age"}
        detail = parameter_summary(query["parameters"], data["parameter_defaults"])
        if query.get("is_archived"):
            detail += " · archived on TONalytica"
        return Choice(
            value=str(data["query_id"]) if field == "query_id" else data["query_name"],
            label=f"#{data['query_id']} {data['query_name']}",
            detail=detail,
            fill=fill,
        )

    def action_query_info(self, *, target: TonalyticaTarget, params: None) -> ActionResult:
        """The live query's declared parameters next to the mapping's, and what changed."""
        query = self.get_query(target.query_id)
        live = self.target_data(query)
        rows = [
            [
                p["name"],
                p["title"],
                p["type"],
                show_value(p["value"]),
                show_value(target.parameter_defaults.get(p["name"])),
                ", ".join(p["enum_options"]) or None,
            ]
            for p in query["parameters"]
        ]
        count = len(rows)
        notes = [f"Query #{query['id']} “{query['name']}”: {count} parameter{'s' if count != 1 else ''}."]
        if query.get("updated_at"):
            notes.append(f"Updated {query['updated_at']}.")
        if query["is_archived"]:
            notes.append("It is archived on TONalytica.")
        if live["parameter_types"] != target.parameter_types or live["parameter_options"] != target.parameter_options:
            notes.append(
                "Its declared parameters differ from this mapping's: edit the mapping and Browse… the query again "
                "to copy them."
            )
        columns = ["Name", "Title", "Type", "Default on TONalytica", "Default in this mapping", "Dropdown options"]
        return ActionResult(message=" ".join(notes), tables=[Table("Declared parameters", columns, rows)])

    def action_dashboards(self, *, target: None, params: DashboardFilter | None) -> ActionResult:
        """One page of the connection's dashboards as a table."""
        params = params or DashboardFilter()
        page = self.list_dashboards(search=params.search, page=params.page, page_size=BROWSE_LIMIT)
        rows = [
            [
                d["id"],
                d["name"] + (" (draft)" if d["is_draft"] else ""),
                d["slug"],
                ", ".join(map(str, d["tags"])) or None,
                d["updated_at"],
            ]
            for d in page["results"]
        ]
        count = page["count"] if isinstance(page["count"], int) else len(rows)
        first = (params.page - 1) * BROWSE_LIMIT + 1
        title = f"Dashboards {first}–{first + len(rows) - 1} of {count}" if rows else "Dashboards"
        return ActionResult(tables=[Table(title, ["Id", "Name", "Slug", "Tags", "Updated"], rows)])

    def action_archive_query(self, *, target: TonalyticaTarget, params: None) -> ActionResult:
        """Archive the mapping's query (run by the portal in a worker, recorded)."""
        return ActionResult(message=self.archive_query(target.query_id))

    @classmethod
    def step_tables(cls, step_name: str, output: Mapping[str, Any]) -> list[Table]:
        """Under "refresh": the query job (or the cached result); under "fetch": the first rows."""
        if step_name == "refresh":
            return cls._job_tables(output)
        if step_name == "fetch":
            return cls._preview_tables(output)
        return []

    @staticmethod
    def _job_tables(output: Mapping[str, Any]) -> list[Table]:
        result_id = output.get("query_result_id")
        if output.get("cached"):
            return [Table("Cached result", ["Query result", "Retrieved at"], [[result_id, output.get("retrieved_at")]])]
        if not output.get("job_id"):
            return []
        started = output.get("job_started_at")
        started_text = (
            dt.datetime.fromtimestamp(float(started), dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if started else None
        )
        status = output.get("job_status") or ("finished" if result_id is not None else None)
        return [
            Table(
                "Query job",
                ["Job", "Status", "Started", "Query result"],
                [[output["job_id"], status, started_text, result_id]],
                status_column="Status",
            )
        ]

    @staticmethod
    def _preview_tables(output: Mapping[str, Any]) -> list[Table]:
        preview = output.get("preview")
        if not isinstance(preview, list):
            return []
        rows = [row for row in preview if isinstance(row, Mapping)]
        columns = [str(c) for c in output.get("columns") or (list(rows[0]) if rows else [])]
        total = output.get("row_count", len(rows))
        if not rows:
            title = "The query returned no rows"
        elif len(rows) >= total:
            title = f"Result: all {total} row{'s' if total != 1 else ''}"
        else:
            title = f"Preview: the first {len(rows)} of {total} rows"
        return [Table(title, columns, [[preview_cell(row.get(c)) for c in columns] for row in rows])]

    @classmethod
    def downloads(cls, step_name: str, output: Mapping[str, Any]) -> list[tuple[str, str]]:
        """The fetched result as CSV or JSON (Redash's own renderings)."""
        if step_name != "fetch" or output.get("query_result_id") is None:
            return []
        return [(fmt, label) for fmt, (label, _) in DOWNLOAD_FORMATS.items()]

    def download(self, step_name: str, output: Mapping[str, Any], fmt: str) -> Download:
        """Stream ``GET /api/query_results/<id>.<fmt>`` with the connection's key in its header.

        The portal relays the bytes: the user never gets a TONalytica URL (nor the key).
        Errors raise here, before any byte: an unknown result is NotFound, said plainly.
        """
        if fmt not in dict(self.downloads(step_name, output)):
            raise NotSupported(f"TONalytica offers no {fmt!r} download for the step {step_name!r}")
        result_id = int(output["query_result_id"])
        try:
            chunks = self.http.stream(f"/api/query_results/{result_id}.{fmt}")
        except NotFound:
            raise NotFound(
                f"TONalytica no longer has query result {result_id}: run the release again for a fresh one",
                status_code=404,
            ) from None
        return Download(
            filename=result_filename(str(output.get("query_name") or ""), output.get("query_id"), result_id, fmt),
            content_type=DOWNLOAD_FORMATS[fmt][1],
            chunks=chunks,
        )

    # Releases

    @classmethod
    def plan(cls, target: TonalyticaTarget, params: TonalyticaParams) -> list[StepSpec]:
        max_age = params.effective_max_age(target)
        how = (
            "force a fresh run"
            if max_age == 0
            else ("any cached result" if max_age < 0 else f"cache up to {max_age} s")
        )
        return [
            # Not idempotent: running a query twice costs the database a second run.
            StepSpec("refresh", f"Run query #{target.query_id} ({how})"),
            StepSpec("fetch", "Fetch the result", idempotent=True),
        ]

    def run_step(self, step: StepSpec, ctx: StepContext) -> StepOutcome:
        if step.name == "refresh":
            return self._refresh(ctx.target, ctx.params)
        if step.name == "fetch":
            return self._fetch(ctx)
        raise PermanentError(f"Unknown TONalytica step {step.name!r}")

    def check_step(self, step: StepSpec, ctx: StepContext) -> StepOutcome:
        """Follow the job with GET /api/jobs/<id>.

        A 500 there is ambiguous: Redash answers it for a job it no longer knows (expired
        after 12 h, or lost with Redis), but also when it merely failed. So: a job started
        more than 12 h ago is called expired at once; otherwise up to MAX_JOB_SERVER_ERRORS
        500s in a row are waited out (counted in the step's output), then the job is called lost.
        """
        if step.name != "refresh":
            return super().check_step(step, ctx)
        output = dict(ctx.output)
        started = float(output.get("job_started_at") or 0)
        try:
            answer = self.http.json("GET", f"/api/jobs/{ctx.remote_ref}", ok=(200,))
        except ServerError as exc:
            if exc.status_code != 500:
                raise  # 502/503/504 from a proxy: transient, the engine retries.
            errors = int(output.get("job_server_errors", 0)) + 1
            expired = bool(started) and time.time() - started > JOB_EXPIRY_SECONDS
            if expired or errors >= MAX_JOB_SERVER_ERRORS:
                why = (
                    "expired on TONalytica (jobs are kept 12 h)"
                    if expired
                    else "is no longer known to TONalytica: it expired (jobs are kept 12 h) or was lost"
                )
                raise PermanentError(
                    f"The query job {ctx.remote_ref} {why}; its endpoint answers 500 Internal Server Error. "
                    "Run the release again.",
                    status_code=500,
                ) from None
            output["job_server_errors"] = errors
            return Waiting(
                remote_ref=ctx.remote_ref,
                message=f"TONalytica answered 500 for the job ({errors}/{MAX_JOB_SERVER_ERRORS}); checking again",
                remote_status="unknown",
                output=output,
            )
        output.pop("job_server_errors", None)
        return self._job_outcome(answer, output)

    def cancel_step(self, step: StepSpec, ctx: StepContext) -> Failed:
        """DELETE /api/jobs/<id>; the job then reports status 4 ``Query cancelled by user.``,
        which the step's job table shows at once."""
        if step.name != "refresh" or not ctx.remote_ref:
            raise NotSupported("Only a running TONalytica query job can be cancelled")
        try:
            self.http.request("DELETE", f"/api/jobs/{ctx.remote_ref}", ok=(200, 204))
        except ServerError as exc:
            if exc.status_code == 500:  # Redash's answer for a job it no longer knows
                raise PermanentError(
                    f"The query job {ctx.remote_ref} is no longer known to TONalytica (finished long ago or expired)",
                    status_code=500,
                ) from None
            raise
        return Failed(
            f"Cancellation of query job {ctx.remote_ref} requested on TONalytica",
            remote_ref=ctx.remote_ref,
            remote_status="cancelled",
            output={"job_status": "cancelled"},
        )

    # Steps

    def _refresh(self, target: TonalyticaTarget, params: TonalyticaParams) -> StepOutcome:
        try:
            values = resolve_parameters(target, params.parameters)
        except ValueError as exc:
            # The portal validated params against the target; this catches a target changed since.
            raise PermanentError(f"Cannot run query #{target.query_id}: {exc}") from None
        body = {"parameters": values, "max_age": params.effective_max_age(target)}
        try:
            answer = self.http.json("POST", f"/api/queries/{target.query_id}/results", json=body, ok=(200,))
        except NotFound:
            raise self._no_such_query(target.query_id) from None
        if isinstance(answer, dict) and isinstance(answer.get("query_result"), dict):
            result = answer["query_result"]
            if result.get("id") is None:
                raise InvalidResponse("TONalytica answered a cached result without an id (is this a query API key?)")
            return Done(
                message=f"Cached result from {result.get('retrieved_at') or 'an earlier run'}",
                remote_ref=str(result["id"]),
                remote_status="cached",
                output={"query_result_id": result["id"], "cached": True, "retrieved_at": result.get("retrieved_at")},
            )
        return self._job_outcome(answer, {"job_started_at": time.time(), "cached": False})

    def _job_outcome(self, answer: Any, output: dict[str, Any]) -> StepOutcome:
        job = answer.get("job") if isinstance(answer, dict) else None
        if not isinstance(job, dict) or not job.get("id"):
            raise InvalidResponse("TONalytica answered neither a query result nor a job")
        job_id, status = str(job["id"]), job.get("status")
        output = {**output, "job_id": job_id}
        if status in JOB_WAITING_STATUSES:
            return Waiting(
                remote_ref=job_id,
                message=f"Query job {JOB_WAITING_STATUSES[status]}",
                remote_status=JOB_WAITING_STATUSES[status],
                # job_status: what step_tables shows (the output is all it gets).
                output={**output, "job_status": JOB_WAITING_STATUSES[status]},
            )
        if status == JOB_FINISHED:
            # Old versions put the id in "result" only; on success both are the result id.
            result_id = job.get("query_result_id") or job.get("result")
            if result_id is None:
                raise InvalidResponse(f"TONalytica's job {job_id} finished without a query_result_id")
            # job_started_at stays: the release page shows when the job started.
            output = {k: v for k, v in output.items() if k != "job_server_errors"}
            return Done(
                message="Query ran",
                remote_ref=str(result_id),
                remote_status="finished",
                output={**output, "query_result_id": result_id, "job_status": "finished"},
            )
        if status in (JOB_FAILED, JOB_CANCELLED):
            error = str(job.get("error") or "").strip()
            cancelled = status == JOB_CANCELLED or error == CANCELLED_MESSAGE
            return Failed(
                error or ("Query cancelled" if cancelled else "The query failed on TONalytica"),
                remote_ref=job_id,
                remote_status="cancelled" if cancelled else "failed",
                output={**output, "job_status": "cancelled" if cancelled else "failed"},
            )
        raise InvalidResponse(f"TONalytica's job {job_id} has an unknown status {status!r}")

    def _fetch(self, ctx: StepContext) -> StepOutcome:
        result_id = (ctx.results.get("refresh") or {}).get("query_result_id")
        if result_id is None:
            raise PermanentError("No query result to fetch: the refresh step gave none")
        result = self.fetch_result(int(result_id))
        names = [c.get("name") for c in result["columns"] if isinstance(c, dict)]
        count = len(result["rows"])
        return Done(
            message=f"{count} row{'s' if count != 1 else ''}, {len(names)} column{'s' if len(names) != 1 else ''}",
            remote_ref=str(result_id),
            output={
                "query_result_id": result_id,
                # For the download's file name (download() gets the output only).
                "query_id": ctx.target.query_id,
                "query_name": ctx.target.query_name,
                "row_count": count,
                "columns": names,
                "column_types": {c.get("name"): c.get("type") for c in result["columns"] if isinstance(c, dict)},
                "preview": result["rows"][:PREVIEW_ROWS],
                "retrieved_at": result["retrieved_at"],
                "runtime": result["runtime"],
            },
        )

    # Helpers

    @staticmethod
    def _no_such_query(query_id: int) -> NotFound:
        return NotFound(
            f"TONalytica has no query #{int(query_id)} (it was deleted, or this API key cannot see it)",
            status_code=404,
        )

    @staticmethod
    def _check_page(page: int, page_size: int) -> None:
        if page < 1:
            raise PermanentError("page must be 1 or more")
        if not 1 <= page_size <= 250:
            raise PermanentError("page_size must be between 1 and 250 (TONalytica's limit)")

    @staticmethod
    def _page(answer: Any, summary: Any) -> dict[str, Any]:
        if not isinstance(answer, dict) or not isinstance(answer.get("results"), list):
            raise InvalidResponse("TONalytica answered a page without results")
        return {
            "count": answer.get("count", len(answer["results"])),
            "page": answer.get("page"),
            "page_size": answer.get("page_size"),
            "results": [summary(item) for item in answer["results"] if isinstance(item, dict)],
        }

    @staticmethod
    def _query_summary(query: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": query.get("id"),
            "name": query.get("name") or "",
            "description": query.get("description") or "",
            "tags": list(query.get("tags") or []),
            "updated_at": query.get("updated_at"),
            "parameters": parameter_declarations(query),
        }

    @staticmethod
    def _dashboard_summary(dashboard: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": dashboard.get("id"),
            "slug": dashboard.get("slug"),
            "name": dashboard.get("name") or "",
            "tags": list(dashboard.get("tags") or []),
            "is_archived": bool(dashboard.get("is_archived")),
            "is_draft": bool(dashboard.get("is_draft")),
            "updated_at": dashboard.get("updated_at"),
        }

    # RECONCILE (issue 14): after a lost answer, ask TONalytica what happened. Kept in one
    # block at the end of the class so it moves as one piece when the module is split.

    def reconcile_step(self, step: StepSpec, ctx: StepContext) -> ReconcileOutcome:
        """The refresh: with a job id stored, the job says where it is. Without one, the
        query's latest result tells: retrieved since the step started, it is this run's
        (the step is done with it); else the refresh is sent again, which is safe here:
        Redash hands a second identical request the job already running for it (its
        per-query-hash enqueue lock), and a query refresh changes nothing but the cache."""
        if step.name != "refresh":
            raise NotSupported(f"TONalytica step {step.name} is not reconciled")
        if ctx.remote_ref:
            return self.check_step(step, ctx)
        target: TonalyticaTarget = ctx.target
        query = self.get_query(target.query_id)
        result_id = query.get("latest_query_data_id")
        if result_id is None:
            return NotSent("the query has no result yet")
        result = self.fetch_result(int(result_id))
        recent = since_start(result.get("retrieved_at"), ctx.started_at)
        if recent is None:
            raise NotSupported("TONalytica's latest result has no readable time")
        if not recent:
            return NotSent("the query's latest result is older than the release")
        return Done(
            message=f"Result retrieved at {result.get('retrieved_at')}",
            remote_ref=str(result_id),
            remote_status="done",
            output={"query_result_id": int(result_id), "cached": False, "retrieved_at": result.get("retrieved_at")},
        )
