"""DataHQ spec store: upload a source spec, then follow its revision's pipelines.

Docs: shared/platforms/datahq-specstore.txt; CONTRACTS.md section 5 (read from the
server's source, datopian/specstore), which wins where the two differ:

- ``POST /source/upload`` always answers HTTP 200 ``{success, dataset_id, flow_id, errors}``:
  a refusal is ``success: false`` with the platform's ``errors``, never an HTTP error.
- The token (header ``Auth-Token``) is a JWT of the auth server for the "source" service;
  its ``userid`` must equal the spec's ``meta.ownerid``.
- ``GET /source/<ownerid>/<dataset>/<revision|latest|successful>`` reports a revision;
  an unknown dataset or revision is a 404 *HTML* page (werkzeug), not JSON.
- ``/source/update`` is gone (pipelines report in-process now): we only read.

One choice differs from the docs' wording. The server keys datasets by ``meta.ownerid``
(its ``owner_getter`` reads ``ownerid``), so ``dataset_id`` and ``flow_id`` start with the
owner *id*, and so does the status path. ``check_step`` therefore follows the ``flow_id``
the server returned, and ``revisions()`` builds its path from the credentials' owner id.
The owner *name* is only checked against ``meta.owner``. See docs/platforms/datahq.md.
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import Field, SecretStr, ValidationInfo, field_validator

from .base import (
    Action,
    ActionResult,
    AuthenticationError,
    Connector,
    Done,
    Failed,
    InvalidResponse,
    NotFound,
    NotSent,
    NotSupported,
    PermanentError,
    ReconcileOutcome,
    Schema,
    StepContext,
    StepOutcome,
    StepSpec,
    Table,
    Waiting,
    since_start,
)
from .http import HttpClient, default_error_message, safe_url
from .statuses import known_status, unknown_status

SLUG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
_SLUG = re.compile(SLUG_PATTERN)
#: The server's schedule grammar (flowmanager/schedules.py): "every " + integer + one unit.
_SCHEDULE = re.compile(r"^every \s*(\d+)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
FINDABILITY = ("published", "unlisted", "private")
#: Flow and pipeline states of the status endpoint.
STATES = ("QUEUED", "INPROGRESS", "SUCCEEDED", "FAILED")
#: What the server answers an upload it refuses because of the token.
NOT_AUTHORISED = "No token or token not authorised for owner"
#: Warn about a token that lapses within this many seconds.
EXPIRY_WARNING = 7 * 86400
#: The prefix of the errors the server gives pipelines skipped after a failed dependency.
DEPENDENCY_FAILED = "Dependency unsuccessful"


# SPEC VALIDATION (pure: the portal's spec editor calls it too)


def schedule_seconds(schedule: Any) -> int:
    """The period of a spec's ``schedule`` in seconds; ValueError with a human message.

    Follows the server's parser: ``every N<unit>``, unit one of s/m/h/d/w, at least 60 s.
    """
    if not isinstance(schedule, str):
        raise ValueError("schedule must be a string like 'every 1d'")
    match = _SCHEDULE.match(schedule.strip())
    if not match:
        raise ValueError(
            f"schedule {schedule!r} must look like 'every 30m': 'every', a whole number and one of s, m, h, d, w"
        )
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 60:
        raise ValueError(f"schedule {schedule!r} is under one minute: the spec store runs flows at most once a minute")
    return seconds


def validate_spec(
    spec: Any, *, owner: str | None = None, ownerid: str | None = None, dataset: str | None = None
) -> list[str]:
    """Human error messages about a source spec; empty when the spec store should accept it.

    Checks what the server reads (``meta.owner``, ``meta.ownerid``, ``meta.dataset``, an
    optional ``schedule`` and ``meta.findability``) and, when given, that the spec matches
    the mapping's ``owner`` and ``dataset`` and the credentials' ``ownerid``. It does not
    check ``inputs``/``outputs`` beyond their type: the server's planner judges those.
    """
    if not isinstance(spec, dict):
        return ["The spec must be a JSON object"]
    meta = spec.get("meta")
    if not isinstance(meta, dict):
        return ["The spec needs a 'meta' object with owner, ownerid and dataset"]
    errors: list[str] = []
    for key in ("owner", "ownerid", "dataset"):
        value = meta.get(key)
        if value in (None, ""):
            errors.append(f"meta.{key} is required")
        elif not isinstance(value, str):
            errors.append(f"meta.{key} must be a string")
        elif not _SLUG.match(value):
            # The owner id and the dataset become path segments of the status URL.
            errors.append(f"meta.{key} {value!r} may only hold letters, digits, '.', '_' and '-'")
    expected = {
        "owner": (owner, "the mapping's owner"),
        "ownerid": (ownerid, "the credentials' owner id"),
        "dataset": (dataset, "the mapping's dataset"),
    }
    for key, (want, what) in expected.items():
        have = meta.get(key)
        if want and isinstance(have, str) and have and have != want:
            errors.append(f"meta.{key} is {have!r} but {what} is {want!r}")
    findability = meta.get("findability")
    if findability is not None and findability not in FINDABILITY:
        errors.append(f"meta.findability must be one of {', '.join(FINDABILITY)}")
    if spec.get("schedule") is not None:
        try:
            schedule_seconds(spec["schedule"])
        except ValueError as exc:
            errors.append(str(exc))
    for key in ("inputs", "outputs"):
        if key in spec and not isinstance(spec[key], list):
            errors.append(f"{key} must be a list")
    return errors


# TOKENS


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT, decoded WITHOUT checking its signature; None if not a JWT.

    Only for offline warnings: the spec store alone holds the auth server's public key.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


def _utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def token_problems(token: str, ownerid: str, *, now: float | None = None, expiry: bool = True) -> list[str]:
    """Why the spec store is sure to refuse this token (empty when it may accept it).

    Reads the token's claims without checking its signature. ``expiry=False`` leaves the
    expiry to the server's clock (``run_step`` does). The messages never quote the token.
    """
    claims = jwt_claims(token)
    if claims is None:
        return ["The auth token is not a JWT: the spec store only accepts tokens of the DataHQ auth server"]
    problems = []
    userid = claims.get("userid")
    if userid != ownerid:
        problems.append(
            f"The token belongs to user id {userid!r}, not to the owner id {ownerid!r}: "
            "the spec store refuses uploads whose meta.ownerid is not the token's user"
        )
    if claims.get("service", "source") != "source":
        problems.append(f"The token is for the {claims.get('service')!r} service, not 'source'")
    exp = claims.get("exp")
    if expiry and isinstance(exp, int | float) and exp <= (time.time() if now is None else now):
        problems.append(f"The token expired on {_utc(exp)}: ask the auth server for a new one")
    return problems


# SCHEMAS


class DatahqCredentials(Schema):
    token: SecretStr = Field(
        title="Auth token",
        description="A JWT of the DataHQ auth server for the 'source' service (/auth/authorize?service=source)",
        json_schema_extra={"widget": "password"},
    )
    owner: str = Field(
        title="Owner name", description="The owner the token belongs to, as in meta.owner", max_length=100
    )
    ownerid: str = Field(
        title="Owner id",
        description="The token's userid, as in meta.ownerid: the spec store files datasets under it",
        pattern=SLUG_PATTERN,
        max_length=100,
    )


class DatahqTarget(Schema):
    owner: str = Field(title="Owner", description="meta.owner of the spec", pattern=SLUG_PATTERN, max_length=100)
    dataset: str = Field(
        title="Dataset id", description="meta.dataset of the spec", pattern=SLUG_PATTERN, max_length=100
    )


#: The longest spec text accepted (a source spec is a few KB).
MAX_SPEC_CHARS = 200_000


def _plain_json(value: Any, path: str = "spec") -> Any:
    """``value`` if made of JSON types only (finite numbers, string keys); ValueError naming the place."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{path} has a key that is not a string: {key!r}")
            _plain_json(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _plain_json(item, f"{path}[{i}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{path} is {value}, which is not a JSON number")
    elif not (value is None or isinstance(value, str | bool | int | float)):
        raise ValueError(f"{path} holds {value!r}, which JSON cannot carry")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_spec_text(text: str | bytes) -> Any:
    """The JSON value a spec's text holds; ValueError with a human message (line and column).

    The portal's form parses a ``dict`` field's JSON itself; this serves any other caller
    handing the spec in as text (an API client, a test). ``NaN`` and ``Infinity`` are refused.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("The spec is not UTF-8 text") from None
    if len(text) > MAX_SPEC_CHARS:
        raise ValueError(f"The spec is {len(text):,} characters long: at most {MAX_SPEC_CHARS:,} are accepted")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"The spec is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except ValueError as exc:
        raise ValueError(f"The spec is not valid JSON: {exc}") from None


def _target_values(target: Any) -> tuple[str | None, str | None]:
    """(owner, dataset) of a target given as a model, a dict or nothing."""
    if isinstance(target, dict):
        return target.get("owner"), target.get("dataset")
    return getattr(target, "owner", None), getattr(target, "dataset", None)


class DatahqParams(Schema):
    """A release's parameters: the source spec, kept with the mapping and edited in the portal.

    Validated with ``context={"target": target}``: every problem ``validate_spec`` finds,
    including a ``meta.owner``/``meta.dataset`` other than the mapping's, is an error of the
    ``spec`` field. ``meta.ownerid`` is checked against the credentials by ``run_step``,
    before anything is sent, because validation here cannot see them.
    """

    spec: dict[str, Any] = Field(
        title="Source spec (JSON)",
        description=(
            "The JSON source spec sent to the spec store. meta: owner and dataset (as in the mapping's "
            "target), ownerid (the connection's owner id), findability (published, unlisted or private); "
            'inputs: a list, e.g. [{"kind": "datapackage", "url": "…/datapackage.json"}]; '
            'outputs: a list of {"kind": "zip" | "excel" | "preview" | "report"}; '
            'schedule (optional): "every N" + s, m, h, d or w, at least 60 seconds, e.g. "every 1d". '
            "Checked before it is saved or sent."
        ),
        json_schema_extra={"widget": "textarea"},
    )

    @field_validator("spec", mode="before")
    @classmethod
    def _parse_text(cls, value: Any) -> Any:
        # The portal's form hands in parsed JSON; other callers may hand in the text.
        if isinstance(value, str | bytes):
            value = parse_spec_text(value)
        if not isinstance(value, dict):
            raise ValueError('The spec must be a JSON object: {"meta": {...}, "inputs": [...], ...}')
        return _plain_json(value)

    @field_validator("spec", mode="after")
    @classmethod
    def _valid_spec(cls, spec: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        # A field validator, so that the errors land on the spec field of the editor.
        owner, dataset = _target_values((info.context or {}).get("target"))
        errors = validate_spec(spec, owner=owner, dataset=dataset)
        if errors:
            raise ValueError("; ".join(errors))
        return spec


# THE CONNECTOR


def _count(value: Any) -> Any:
    """A count for display, with thousands separators; anything else as it is."""
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value


def _when(value: Any) -> Any:
    """The server's ``modified`` for display: ISO dates as ``YYYY-MM-DD HH:MM:SS``, others as sent."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S")
        except ValueError:
            return value
    return value


def _pipelines_summary(pipelines: list[dict[str, Any]]) -> str:
    """``"3 pipelines: 2 succeeded, 1 in progress"``; the failed ones are named."""
    if not pipelines:
        return "none reported yet"
    counts: dict[str, int] = {}
    for p in pipelines:
        counts[p["status"]] = counts.get(p["status"], 0) + 1
    words = {"SUCCEEDED": "succeeded", "INPROGRESS": "in progress", "QUEUED": "queued", "FAILED": "failed"}
    parts = [f"{counts[s]} {words[s]}" for s in ("SUCCEEDED", "INPROGRESS", "QUEUED", "FAILED") if s in counts]
    parts += [f"{n} {s.lower()}" for s, n in counts.items() if s not in words]
    failed = [p["title"] for p in pipelines if p["status"] == "FAILED"]
    summary = f"{len(pipelines)} pipeline{'s' if len(pipelines) != 1 else ''}: {', '.join(parts)}"
    return summary + (f" ({', '.join(failed)})" if failed else "")


def _error_message(response: httpx.Response) -> str:
    """The shared parser, but readable for werkzeug's old HTML pages.

    Those start ``<!DOCTYPE HTML PUBLIC ...><title>404 Not Found</title>`` with no
    ``<html`` tag, which ``default_error_message`` would quote raw.
    """
    if "text/html" in response.headers.get("content-type", "") or response.text.lstrip().startswith("<"):
        title = re.search(r"<title>([^<]{1,100})</title>", response.text, re.IGNORECASE)
        return title.group(1).strip() if title else f"HTTP {response.status_code} {response.reason_phrase}"
    return default_error_message(response)


def _without_times(spec: Any) -> Any:
    """A spec without the times the spec store stamps into its ``meta``."""
    if not isinstance(spec, dict):
        return spec
    meta = spec.get("meta")
    if isinstance(meta, dict):
        meta = {k: v for k, v in meta.items() if k not in ("create_time", "update_time")}
    return {**spec, "meta": meta}


class DatahqConnector(Connector[DatahqCredentials, DatahqTarget, DatahqParams]):
    slug = "datahq"
    label = "DataHQ spec store"
    Credentials = DatahqCredentials
    Target = DatahqTarget
    Params = DatahqParams
    # The spec lives with the mapping in the portal and arrives in Params.
    needs_file = False

    validate_spec = staticmethod(validate_spec)

    actions = (
        Action(
            "revisions",
            "Revisions on the spec store",
            auto=True,
            description=(
                "The dataset's latest revision and its latest successful one, as the spec store reports "
                "them now (refreshed every 10 s)."
            ),
        ),
    )

    def __init__(self, credentials: DatahqCredentials, *, base_url: str, timeout: float = 30.0):
        super().__init__(credentials, base_url=base_url, timeout=timeout)
        # The token goes only on the upload, the one call that needs it.
        self.http = self._own(HttpClient(self.base_url, timeout=timeout, error_parser=_error_message))

    # Connection

    @classmethod
    def credential_warnings(cls, credentials: DatahqCredentials) -> list[str]:
        """Offline: a token that is not a JWT, belongs to another user id, expired or soon lapses."""
        token = credentials.token.get_secret_value()
        warnings = token_problems(token, credentials.ownerid)
        exp = (jwt_claims(token) or {}).get("exp")
        if not warnings and isinstance(exp, int | float) and exp - time.time() < EXPIRY_WARNING:
            warnings.append(f"The token expires on {_utc(exp)}")
        return warnings

    def test_connection(self) -> str:
        """Check the token offline, then reach the spec store without side effects.

        The spec store has no session endpoint and checks the token only inside an upload,
        after which it stores the dataset: no call proves the token without publishing.
        So: (1) the token must be a "source" JWT of ``ownerid``, unexpired (its signature
        cannot be checked here: only the spec store holds the auth server's key);
        (2) ``POST /source/upload`` with no JSON body, which the server refuses before it
        reads the token or stores anything ("Received empty contents..."): that proves the
        URL is a spec store answering in its own format. The message says what was proven.
        """
        token = self.credentials.token.get_secret_value()
        problems = token_problems(token, self.credentials.ownerid)
        if problems:
            raise AuthenticationError("; ".join(problems))
        answer = self.http.json(
            "POST", "/source/upload", content=b"", headers={"Content-Type": "text/plain"}, ok=(200,)
        )
        if (
            not isinstance(answer, dict)
            or answer.get("success") is not False
            or not isinstance(answer.get("errors"), list)
        ):
            raise InvalidResponse(
                f"{safe_url(self.http.url('/source/upload'))} does not answer like a DataHQ spec store"
            )
        claims = jwt_claims(token) or {}
        plan = (claims.get("permissions") or {}).get("max_dataset_num")
        details = [f"user id {self.credentials.ownerid}"]
        if plan is not None:
            details.append(f"plan of {plan} datasets")
        if isinstance(claims.get("exp"), int | float):
            details.append(f"valid until {_utc(claims['exp'])}")
        return (
            f"Reached the DataHQ spec store. The token is a well-formed source token ({', '.join(details)}); "
            "its signature is checked only by the spec store, at the first upload."
        )

    @classmethod
    def describe_target(cls, target: DatahqTarget) -> str:
        return f"{target.owner}/{target.dataset}"

    # No check_target: an owner/dataset the spec store does not hold yet is created by its first
    # upload, so every well-formed target is valid, and the owner is checked with the token.

    # Releases

    @classmethod
    def plan(cls, target: DatahqTarget, params: DatahqParams) -> list[StepSpec]:
        # One upload makes one new revision: never sent twice blindly.
        return [StepSpec("upload", f"Upload the spec of {target.owner}/{target.dataset} and run its pipelines")]

    def run_step(self, step: StepSpec, ctx: StepContext[DatahqTarget, DatahqParams]) -> StepOutcome:
        """Upload the spec (one call), then wait on the revision it made.

        Refused before sending, with a message and no call: a mapping of another owner than
        the credentials', a token the spec store is sure to refuse (not a JWT, another user
        id or service), a spec whose ``meta.ownerid`` is not the credentials'. The server's
        ``success: false`` raises PermanentError listing its ``errors`` (AuthenticationError
        for the token's). Success returns Waiting with the flow id as remote reference.
        """
        if step.name != "upload":
            raise PermanentError(f"Unknown step {step.name!r}")
        target: DatahqTarget = ctx.target
        spec = ctx.params.spec
        # What the spec store is sure to refuse is refused here, before the token leaves.
        self._check_owner(target)
        token = self.credentials.token.get_secret_value()
        problems = token_problems(token, self.credentials.ownerid, expiry=False)
        if problems:
            raise AuthenticationError("; ".join(problems) + ". Nothing was sent.")
        # Params validation could not see the credentials: check the owner id before sending.
        meta = spec.get("meta") if isinstance(spec, dict) else None
        spec_ownerid = meta.get("ownerid") if isinstance(meta, dict) else None
        if spec_ownerid != self.credentials.ownerid:
            raise PermanentError(
                f"The spec's meta.ownerid is {spec_ownerid!r} but these credentials are for owner id "
                f"{self.credentials.ownerid!r}: the spec store would refuse it"
            )
        answer = self.http.json(
            "POST",
            "/source/upload",
            content=json.dumps(spec).encode(),
            headers={"Content-Type": "application/json", "Auth-Token": token},
            ok=(200,),
        )
        if not isinstance(answer, dict) or "success" not in answer:
            raise InvalidResponse("The spec store's upload answered without 'success'")
        errors = [str(e) for e in answer.get("errors") or []]
        if not answer["success"]:
            message = "The spec store refused the spec: " + ("; ".join(errors) or "no reason given")
            if NOT_AUTHORISED in errors:
                # The offline reading of the token says why, when it can (e.g. it expired).
                hints = token_problems(token, self.credentials.ownerid)
                raise AuthenticationError(message + "".join(f". {h}" for h in hints))
            raise PermanentError(message)
        flow_id = str(answer.get("flow_id") or "")
        revision = self._revision_number(flow_id)
        return Waiting(
            remote_ref=flow_id,
            message=f"Revision {revision} of {target.owner}/{target.dataset} queued",
            remote_status="QUEUED",
            output={"flow_id": flow_id, "dataset_id": answer.get("dataset_id"), "revision": revision, "pipelines": []},
        )

    def check_step(self, step: StepSpec, ctx: StepContext[DatahqTarget, DatahqParams]) -> StepOutcome:
        target: DatahqTarget = ctx.target
        revision = self._revision_number(ctx.remote_ref)
        try:
            status = self._status(ctx.remote_ref)
        except NotFound:
            raise NotFound(
                f"revision {revision} of {target.owner}/{target.dataset} is unknown to the spec store", status_code=404
            ) from None
        return self._outcome(status, ctx.remote_ref, revision, ctx.output)

    # RECONCILE (issue 14): after a lost answer, ask the spec store what happened.

    def reconcile_step(self, step: StepSpec, ctx: StepContext) -> ReconcileOutcome:
        """The dataset's latest revision tells: our spec, modified since the step started,
        means the upload happened (follow that revision); no revision, another spec or an
        older one means it did not. An unreadable time leaves it to a person."""
        target: DatahqTarget = ctx.target
        self._check_owner(target)
        try:
            status = self._status(f"{self.credentials.ownerid}/{target.dataset}/latest")
        except NotFound:
            return NotSent("the spec store has no revision of this dataset")
        contents = status.get("spec_contents")
        if not isinstance(contents, dict) or _without_times(contents) != _without_times(ctx.params.spec):
            return NotSent("the latest revision holds another spec")
        recent = since_start(status.get("modified"), ctx.started_at)
        if recent is None:
            raise NotSupported("the spec store's latest revision has no readable time")
        if not recent:
            return NotSent("the latest revision with this spec is older than the release")
        flow_id = str(status.get("id") or "")
        revision = self._revision_number(flow_id)
        return self._outcome(status, flow_id, revision)

    # What the portal shows beyond steps

    @classmethod
    def step_tables(cls, step_name: str, output: Mapping[str, Any]) -> list[Table]:
        """Under the upload step: its revision's pipelines (live while it waits), then its stats.

        From the step's ``output`` only (no network). The pipelines table lists those the
        spec store reported so far (queued ones never report), with their error log; the
        stats table appears once the revision ended with stats.
        """
        if step_name != "upload" or not isinstance(output.get("pipelines"), list):
            return []
        revision = output.get("revision")
        rows = [
            [p.get("title"), p.get("status"), "; ".join(p.get("error_log") or []) or None]
            for p in output["pipelines"]
            if isinstance(p, dict)
        ]
        tables = [
            Table(
                f"Pipelines of revision {revision}" if revision else "Pipelines",
                ["Pipeline", "Status", "Error log"],
                rows,
                status_column="Status",
            )
        ]
        stats = output.get("stats")
        if isinstance(stats, dict) and any(stats.get(k) is not None for k in ("bytes", "count_of_rows", "hash")):
            tables.append(
                Table(
                    "Stats",
                    ["Bytes", "Rows", "Hash"],
                    [[_count(stats.get("bytes")), _count(stats.get("count_of_rows")), stats.get("hash")]],
                )
            )
        return tables

    def action_revisions(self, *, target: DatahqTarget, params: None) -> ActionResult:
        """The ``revisions`` action: the latest and latest successful revisions as one table."""
        found = self.revisions(target)
        if found["latest"] is None and found["successful"] is None:
            return ActionResult(
                message=f"The spec store has no revision of {target.owner}/{target.dataset} yet: release the spec."
            )
        rows = []
        for which, label in (("latest", "Latest"), ("successful", "Latest successful")):
            revision = found[which]
            if revision is None:
                rows.append([label, None, None, "none yet", None, None, None])
                continue
            rows.append(
                [
                    label,
                    revision["revision"],
                    revision["flow_id"],
                    revision["state"],
                    _when(revision["modified"]),
                    _pipelines_summary(revision["pipelines"]),
                    "; ".join(revision["error_log"]) or None,
                ]
            )
        return ActionResult(
            tables=[
                Table(
                    f"Revisions of {target.owner}/{target.dataset}",
                    ["Which", "Revision", "Flow id", "State", "Modified", "Pipelines", "Error"],
                    rows,
                    status_column="State",
                )
            ]
        )

    # Other platform actions

    def revisions(self, target: DatahqTarget) -> dict[str, dict[str, Any] | None]:
        """The latest and the latest successful revisions of a dataset (None when there is none).

        Each is ``{flow_id, revision, state, modified, pipelines, stats, error_log}``.
        Raises PermanentError, without a call, when the target's owner is not the credentials'.
        """
        self._check_owner(target)
        found: dict[str, dict[str, Any] | None] = {}
        for which in ("latest", "successful"):
            path = f"{self.credentials.ownerid}/{target.dataset}/{which}"
            try:
                status = self._status(path)
            except NotFound:
                found[which] = None
                continue
            flow_id = str(status.get("id") or path)
            found[which] = {
                "flow_id": flow_id,
                "revision": self._revision_number(flow_id),
                "state": status["state"],
                "modified": status.get("modified"),
                "pipelines": self._pipelines(status),
                "stats": self._stats(status),
                "error_log": [str(e) for e in status.get("error_log") or []],
            }
        return found

    # Helpers

    def _check_owner(self, target: DatahqTarget) -> None:
        """The mapping's owner must be the credentials' owner: paths use the credentials' owner id."""
        if target.owner != self.credentials.owner:
            raise PermanentError(
                f"The mapping is for owner {target.owner!r} but the connection's token is for owner "
                f"{self.credentials.owner!r} (id {self.credentials.ownerid!r}): use a connection of "
                f"{target.owner!r}. Nothing was sent."
            )

    def _status(self, flow_path: str) -> dict[str, Any]:
        """GET a revision's status; NotFound on the server's 404 page."""
        path = "/source/" + "/".join(quote(part, safe="") for part in flow_path.split("/"))
        status = self.http.json("GET", path, ok=(200,))
        # A state this connector does not know is kept as it came: the release step calls it unknown.
        if not isinstance(status, dict) or not isinstance(status.get("state"), str) or not status["state"].strip():
            raise InvalidResponse("The spec store answered a revision without a state")
        return status

    @staticmethod
    def _revision_number(flow_id: Any) -> int:
        # flow_id is "<ownerid>/<dataset>/<revision>".
        parts = flow_id.split("/") if isinstance(flow_id, str) else []
        if len(parts) != 3 or not parts[2].isdigit():
            raise InvalidResponse(f"The spec store answered an unexpected flow id {flow_id!r}")
        return int(parts[2])

    @staticmethod
    def _pipelines(status: dict[str, Any]) -> list[dict[str, Any]]:
        """The revision's pipelines as rows for the UI, in the server's order."""
        pipelines = status.get("pipelines") or {}
        if not isinstance(pipelines, dict):
            return []
        return [
            {
                "id": pid,
                "title": str(p.get("title") or pid),
                "status": str(p.get("status") or ""),
                "error_log": [str(e) for e in p.get("error_log") or []],
            }
            for pid, p in pipelines.items()
            if isinstance(p, dict)
        ]

    @staticmethod
    def _stats(status: dict[str, Any]) -> dict[str, Any]:
        stats = status.get("stats")
        if not isinstance(stats, dict):
            stats = {}
        return {key: stats.get(key) for key in ("bytes", "count_of_rows", "hash")}

    def _outcome(
        self, status: dict[str, Any], flow_id: str, revision: int, previous: Mapping[str, Any] | None = None
    ) -> StepOutcome:
        """Done, Failed or Waiting by the flow's state; any state but the four of STATES is ``unknown_status``."""
        state = status["state"]
        pipelines = self._pipelines(status)
        output: dict[str, Any] = {"flow_id": flow_id, "revision": revision, "state": state, "pipelines": pipelines}
        if state == "SUCCEEDED":
            output["stats"] = self._stats(status)
            return Done(
                message=f"Revision {revision} succeeded ({len(pipelines)} pipelines)",
                remote_ref=flow_id,
                remote_status=state,
                output=output,
            )
        if state == "FAILED":
            output["stats"] = self._stats(status)
            return Failed(
                self._failure(status, pipelines, revision), remote_ref=flow_id, remote_status=state, output=output
            )
        if state not in STATES:
            return unknown_status(
                platform="The spec store",
                word=state,
                what=f"revision {revision}",
                remote_ref=flow_id,
                output={**(previous or {}), **output},
            )
        output = known_status(output, previous)
        done = sum(1 for p in pipelines if p["status"] in ("SUCCEEDED", "FAILED"))
        running = [p["title"] for p in pipelines if p["status"] == "INPROGRESS"]
        message = f"{state}: {done} pipeline{'s' if done != 1 else ''} finished"
        if running:
            message += f", running {', '.join(running)}"
        return Waiting(remote_ref=flow_id, message=message, remote_status=state, output=output)

    @staticmethod
    def _failure(status: dict[str, Any], pipelines: list[dict[str, Any]], revision: int) -> str:
        """The platform's reason: the pipelines that failed on their own first, then those skipped."""
        failed = [p for p in pipelines if p["status"] == "FAILED"]
        causes = [p for p in failed if not any(e.startswith(DEPENDENCY_FAILED) for e in p["error_log"])]
        skipped = [p["title"] for p in failed if p not in causes]
        parts = [f"{p['title']}: {'; '.join(p['error_log']) or 'failed'}" for p in causes]
        if not parts:
            parts = [str(e) for e in status.get("error_log") or []] or ["the flow failed without an error log"]
        message = f"Revision {revision} failed. " + " | ".join(parts)
        if skipped:
            message += f" (not run: {', '.join(skipped)})"
        return message[:1000]
