"""The TONalytica connector: browse, actions, downloads and the release steps.

See the package's docstring for the platform's quirks, and docs/platforms/tonalytica.md.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ..base import (
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
    ServerError,
    StepContext,
    StepOutcome,
    StepSpec,
    Table,
    Waiting,
    since_start,
)
from ..statuses import known_status, unknown_status
from .client import (
    TonalyticaHttp,
    check_page,
    dashboard_summary,
    query_summary,
    read_page,
    redash_error_message,
)
from .parameters import coerce_parameter, is_blank
from .presentation import (
    DOWNLOAD_FORMATS,
    job_tables,
    parameter_summary,
    preview_tables,
    result_filename,
    show_value,
)
from .schemas import (
    DashboardFilter,
    DashboardRef,
    TonalyticaCredentials,
    TonalyticaParams,
    TonalyticaTarget,
    resolve_parameters,
)

#: Redash forgets a job this long after it ends (REDASH_JOB_EXPIRY_TIME's default).
JOB_EXPIRY_SECONDS = 12 * 3600
#: How many 500s in a row the job endpoint may answer before we call the job lost.
MAX_JOB_SERVER_ERRORS = 3
#: Rows kept in the "fetch" step's output.
PREVIEW_ROWS = 50
#: Saved queries offered by one Browse… (Redash's default page size): a search narrows them.
BROWSE_LIMIT = 25
CANCELLED_MESSAGE = "Query cancelled by user."
#: Pages of 250 dashboards searched for the other key of a dashboard (slug or id).
DASHBOARD_PAGES = 4

JOB_QUEUED, JOB_STARTED, JOB_FINISHED, JOB_FAILED, JOB_CANCELLED = 1, 2, 3, 4, 5
#: RQ-era statuses of Redash HEAD (deferred, scheduled): the job has not run yet.
JOB_WAITING_STATUSES = {JOB_QUEUED: "queued", JOB_STARTED: "started", 6: "deferred", 7: "scheduled"}


class TonalyticaConnector(Connector[TonalyticaCredentials, TonalyticaTarget, TonalyticaParams]):
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
            "dashboard",
            "A dashboard's queries",
            scope="connection",
            params=DashboardRef,
            description="One dashboard by slug (or id) and the saved queries its widgets show.",
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
        self.http = self._own(
            TonalyticaHttp(
                self.base_url,
                timeout=timeout,
                # A header, never ?api_key=: URLs end up in logs and messages.
                headers={"Authorization": f"Key {credentials.api_key.get_secret_value()}"},
                error_parser=redash_error_message,
            )
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

    def check_target(self, target: TonalyticaTarget) -> list[str]:  # type: ignore[override]  # narrower, as describe_target
        """The query must exist, and still declare the parameters the mapping copied from it
        (a refresh with a parameter the query no longer has is refused by TONalytica)."""
        try:
            query = self.get_query(target.query_id)
        except NotFound as exc:
            return [exc.message]
        declared = {p["name"] for p in query["parameters"]}
        gone = sorted(set(target.parameter_types) - declared)
        if gone:
            return [
                f"Query #{target.query_id} ({query['name']}) no longer declares {', '.join(gone)}: "
                "choose the query again with Browse to copy its parameters"
            ]
        return []

    def list_queries(self, *, search: str = "", page: int = 1, page_size: int = 25) -> dict[str, Any]:
        """A page of saved (non-archived) queries: ``{"count", "page", "page_size", "results"}``.

        Each result is ``{"id", "name", "description", "tags", "updated_at", "parameters"}``
        (parameters as ``parameter_declarations``). ``page_size`` is 1..250 (Redash's limit).
        """
        check_page(page, page_size)
        query: dict[str, Any] = {"page": page, "page_size": page_size}
        if search.strip():
            query["q"] = search.strip()
        answer = self.http.json("GET", "/api/queries", params=query, ok=(200,))
        return read_page(answer, query_summary)

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
            **query_summary(query),
            "query": query.get("query", ""),
            "data_source_id": query.get("data_source_id"),
            "is_archived": bool(query.get("is_archived")),
            "is_draft": bool(query.get("is_draft")),
            "latest_query_data_id": query.get("latest_query_data_id"),
            "schedule": query.get("schedule"),
        }

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
            if is_blank(p["type"], p["value"]):
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
        check_page(page, page_size)
        query: dict[str, Any] = {"page": page, "page_size": page_size}
        if search.strip():
            query["q"] = search.strip()
        answer = self.http.json("GET", "/api/dashboards", params=query, ok=(200,))
        return read_page(answer, dashboard_summary)

    def get_dashboard(self, dashboard: int | str) -> dict[str, Any]:
        """One dashboard, by slug (V9, as the docs say) or by id (Redash v10+), with the ids of its queries.

        The server's own convention is unknown (CONTRACTS.md section 6), so a 404 for one form
        is tried again in the other, found in the dashboard list. Raises NotFound when neither answers.
        """
        ident = str(dashboard).strip()
        try:
            answer = self.http.json("GET", f"/api/dashboards/{quote(ident, safe='')}", ok=(200,))
        except NotFound:
            other = self._other_dashboard_key(ident)
            if other is None:
                raise NotFound(f"TONalytica has no dashboard {ident!r} (by slug or by id)", status_code=404) from None
            try:
                answer = self.http.json("GET", f"/api/dashboards/{quote(other, safe='')}", ok=(200,))
            except NotFound:
                raise NotFound(
                    f"TONalytica lists dashboard {ident!r} but answers 404 for its slug and its id", status_code=404
                ) from None
        return self._dashboard_with_queries(answer)

    def _other_dashboard_key(self, ident: str) -> str | None:
        """The id of a dashboard known by slug, or the slug of one known by id, from the list."""
        for page_number in range(1, DASHBOARD_PAGES + 1):
            page = self.list_dashboards(page=page_number, page_size=250)
            for d in page["results"]:
                if ident.isdigit() and str(d["id"]) == ident and d["slug"]:
                    return str(d["slug"])
                if not ident.isdigit() and d["slug"] == ident and d["id"] is not None:
                    return str(d["id"])
            if page_number * 250 >= (page["count"] if isinstance(page["count"], int) else 0):
                return None
        return None

    @staticmethod
    def _dashboard_with_queries(dashboard: Any) -> dict[str, Any]:
        if not isinstance(dashboard, dict):
            raise InvalidResponse("TONalytica answered a dashboard that is not an object")
        query_ids = []
        for widget in dashboard.get("widgets") or []:
            query = ((widget or {}).get("visualization") or {}).get("query") or {}
            if query.get("id") is not None and query["id"] not in query_ids:
                query_ids.append(query["id"])
        return {**dashboard_summary(dashboard), "query_ids": query_ids}

    def fetch_result(self, result_id: int) -> dict[str, Any]:
        """A query result as JSON: ``{"id", "columns", "rows", "retrieved_at", "runtime"}``.

        ``columns`` are Redash's ``{"name", "friendly_name", "type"}``; ``rows`` are ``{column: value}``.
        """
        answer = self.http.json("GET", f"/api/query_results/{int(result_id)}", ok=(200,))
        result = answer.get("query_result") if isinstance(answer, dict) else None
        data = result.get("data") if isinstance(result, dict) else None
        if not isinstance(result, dict) or not isinstance(data, dict) or not isinstance(data.get("rows"), list):
            raise InvalidResponse(f"TONalytica answered query result {int(result_id)} without data rows")
        return {
            "id": result.get("id", int(result_id)),
            "columns": list(data.get("columns") or []),
            "rows": data["rows"],
            "retrieved_at": result.get("retrieved_at"),
            "runtime": result.get("runtime"),
        }

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
            try:
                page = self.list_queries(search=text, page_size=BROWSE_LIMIT)
            except (NotFound, PermanentError) as exc:
                if exc.status_code not in (404, 405) or isinstance(exc, AuthenticationError):
                    raise
                raise NotSupported(
                    f"This TONalytica server does not offer a query listing (GET /api/queries answered "
                    f"{exc.status_code}): type the query id in Query id and Browse… looks that one query up",
                    status_code=exc.status_code,
                ) from None
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

    def action_dashboard(self, *, target: None, params: DashboardRef) -> ActionResult:
        """The dashboard's name and the ids of the queries it shows (each can be mapped and released)."""
        found = self.get_dashboard(params.dashboard)
        state = " (archived)" if found["is_archived"] else (" (draft)" if found["is_draft"] else "")
        count = len(found["query_ids"])
        message = (
            f"Dashboard “{found['name']}”{state}, slug {found['slug']}, id {found['id']}: "
            f"{count} saved quer{'ies' if count != 1 else 'y'}."
        )
        return ActionResult(
            message=message, tables=[Table("Queries on the dashboard", ["Query id"], [[q] for q in found["query_ids"]])]
        )

    def action_archive_query(self, *, target: TonalyticaTarget, params: None) -> ActionResult:
        """Archive the mapping's query (run by the portal in a worker, recorded)."""
        return ActionResult(message=self.archive_query(target.query_id))

    @classmethod
    def step_tables(cls, step_name: str, output: Mapping[str, Any]) -> list[Table]:
        """Under "refresh": the query job (or the cached result); under "fetch": the first rows."""
        if step_name == "refresh":
            return job_tables(output)
        if step_name == "fetch":
            return preview_tables(output)
        return []

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

    def run_step(self, step: StepSpec, ctx: StepContext[TonalyticaTarget, TonalyticaParams]) -> StepOutcome:
        if step.name == "refresh":
            return self._refresh(ctx.target, ctx.params)
        if step.name == "fetch":
            return self._fetch(ctx)
        raise PermanentError(f"Unknown TONalytica step {step.name!r}")

    def check_step(self, step: StepSpec, ctx: StepContext[TonalyticaTarget, TonalyticaParams]) -> StepOutcome:
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

    def cancel_step(self, step: StepSpec, ctx: StepContext[TonalyticaTarget, TonalyticaParams]) -> Failed:
        """DELETE /api/jobs/<id>, then GET it back to confirm: a cancelled job reports status 4
        ``Query cancelled by user.`` (or 5), which the step's job table shows at once."""
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
        return self._confirm_cancel(ctx.remote_ref)

    def _confirm_cancel(self, job_id: str) -> Failed:
        """Read the job back after DELETE: the message says what TONalytica reports now."""
        requested = f"Cancellation of query job {job_id} requested on TONalytica"
        try:
            answer = self.http.json("GET", f"/api/jobs/{job_id}", ok=(200,))
        except ServerError:
            answer = None  # a 500: the job is gone (expired), which ends it all the same
        job = answer.get("job") if isinstance(answer, dict) else None
        status = job.get("status") if isinstance(job, dict) else None
        error = str(job.get("error") or "").strip() if isinstance(job, dict) else ""
        if status == JOB_CANCELLED or (status == JOB_FAILED and error == CANCELLED_MESSAGE):
            confirmed = f"{requested} and confirmed: the job reports “{error or 'cancelled'}”"
            return Failed(confirmed, remote_ref=job_id, remote_status="cancelled", output={"job_status": "cancelled"})
        if status == JOB_FINISHED:
            why = f"{requested}, but the query had already finished: its result stays on TONalytica"
            return Failed(why, remote_ref=job_id, remote_status="finished", output={"job_status": "finished"})
        if status == JOB_FAILED:
            why = f"{requested}, but the query had already failed: {error or 'no reason given'}"
            return Failed(why, remote_ref=job_id, remote_status="failed", output={"job_status": "failed"})
        shown = JOB_WAITING_STATUSES.get(status, str(status)) if status is not None else "no longer known"
        return Failed(
            f"{requested}; TONalytica still reports the job {shown}",
            remote_ref=job_id,
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
            output = known_status(output, output)
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
        return unknown_status(
            platform="TONalytica",
            word=str(status),
            what=f"query job {job_id}",
            remote_ref=job_id,
            # job_status: what the step's job table shows, the platform's word as it came.
            output={**output, "job_status": str(status)},
        )

    def _fetch(self, ctx: StepContext[TonalyticaTarget, TonalyticaParams]) -> StepOutcome:
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

    # RECONCILE (issue 14): after a lost answer, ask TONalytica what happened.

    def reconcile_step(self, step: StepSpec, ctx: StepContext[TonalyticaTarget, TonalyticaParams]) -> ReconcileOutcome:
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
