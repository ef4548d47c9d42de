"""Tailer: launch a data operation's job and follow its run to the end.

Docs: shared/platforms/tailer.txt; CONTRACTS.md section 2 (which wins where they differ);
docs/platforms/tailer.md for the choices made where neither says.

Every API call is a JSON POST with ``Authorization: Bearer <JWT>``. The JWT is a
Firebase ID token (about 1 h). Two ways to get one, the user picks:

- ``refresh_token``: an API key and a refresh token, exchanged at the token endpoint
  exactly as ``tailer auth get-token`` does (POST ``<token_url>?key=<api_key>`` with
  ``{"grantType": "refresh_token", "refreshToken": ...}``, reading ``id_token``). The JWT
  lives only in memory on the connector instance and is fetched again shortly before
  its ``exp``.
- ``jwt``: a pasted JWT, used as is until its ``exp``; then every call fails with a
  clear AuthenticationError before anything is sent.

Table-to-table configuration ids carry an ``_<ENV>`` suffix in the API: the user types
the id as in the configuration file and the connector adds the suffix
(``TailerTarget.api_configuration_id``).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import json
import logging
import re
import time
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator

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
    TargetState,
    Waiting,
    since_start,
)
from .http import HttpClient, default_error_message

logger = logging.getLogger(__name__)

#: Where ``tailer auth get-token`` exchanges the refresh token (CONTRACTS.md).
DEFAULT_TOKEN_URL = "https://securetoken.googleapis.com/v1/token"  # noqa: S105 - a URL, not a secret

ConfigurationType = Literal["table-to-table", "table-to-storage", "storage-to-storage", "workflow"]
AuthMode = Literal["refresh_token", "jwt"]

#: Run statuses. Only SUCCESS is in the API docs; Tailer Studio lists Success, Failed and
#: Running (CONTRACTS.md), the rest are the usual spellings of the same states. Anything
#: else (e.g. Studio's "No match" or "Checked") is shown as it came and waited on, a while.
SUCCESS_STATUSES = frozenset({"SUCCESS", "SUCCEEDED", "DONE"})
FAILURE_STATUSES = frozenset({"FAILED", "FAILURE", "ERROR", "KO", "CANCELLED", "CANCELED", "ABORTED", "TIMEOUT"})
RUNNING_STATUSES = frozenset({"RUNNING", "WAITING", "QUEUED", "PENDING", "STARTED", "LAUNCHED", "IN_PROGRESS"})

ENVIRONMENT_PATTERN = re.compile(r"^[A-Z][A-Z0-9_]{0,19}$")
DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# JWT HELPERS (no verification: we only read the payload to know when the token lapses)


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, decoded without checking its signature.

    Raises ValueError with a message that never quotes the token.
    """
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise ValueError("this is not a JWT (three dot-separated parts expected)")
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ValueError("the JWT payload cannot be decoded") from None
    if not isinstance(claims, dict):
        raise ValueError("the JWT payload is not a JSON object")
    return claims


def jwt_expiry(token: str) -> float:
    """The ``exp`` claim of a JWT (a Unix time). Raises ValueError when it has none."""
    exp = jwt_claims(token).get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise ValueError("the JWT carries no expiry (exp claim)")
    return float(exp)


def _utc(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _span(seconds: float) -> str:
    minutes = max(0, int(seconds // 60))
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def shown_time(value: Any) -> Any:
    """A Tailer timestamp (ISO 8601, e.g. ``2020-12-30T11:28:43.861340+00:00``) as people read
    it: ``2020-12-30 11:28:43 UTC``. Anything else is shown as it came."""
    if not isinstance(value, str) or not value:
        return value
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def shown_duration(value: Any) -> Any:
    """A Tailer duration (``str(timedelta)``, e.g. ``0:01:24.002519``) without its microseconds."""
    if isinstance(value, str) and (match := re.fullmatch(r"((?:\d+ days?, )?\d+:\d{2}:\d{2})\.\d+", value.strip())):
        return match.group(1)
    return value


def check_date(value: str) -> str:
    """A YYYY-MM-DD calendar date, as get_last_status documents ``execution_date``."""
    if not DATE_PATTERN.match(value):
        raise ValueError(f"'{value}' is not a date in the YYYY-MM-DD format (e.g. 2020-12-09)")
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"'{value}' is not a real calendar date") from None
    return value


# SCHEMAS


def job_target(job: str) -> TailerTarget:
    """The target named by a credentials' ``test_job``: ``account/ENVIRONMENT/type/configuration id``."""
    parts = [part.strip() for part in job.split("/")]
    if len(parts) != 4 or not all(parts):
        raise ValueError("write account/ENVIRONMENT/configuration type/configuration id, separated by '/'")
    account, environment, configuration_type, configuration_id = parts
    try:
        return TailerTarget.model_validate(
            {
                "account": account,
                "environment": environment,
                "configuration_type": configuration_type,
                "configuration_id": configuration_id,
            }
        )
    except ValidationError as exc:
        raise ValueError("; ".join(str(e["msg"]) for e in exc.errors())) from None


class TailerCredentials(Schema):
    """API key + refresh token (exchanged for short-lived JWTs), or a pasted JWT.

    A secret the chosen mode needs is checked on its own field (so a form shows the error
    under it); the model validator then drops the other mode's secrets, so a stale secret
    of the other mode is never stored.
    """

    # Pydantic quotes the raw input in a ValidationError's text; hide it, it holds secrets.
    model_config = ConfigDict(hide_input_in_errors=True)

    auth_mode: AuthMode = Field(
        default="refresh_token",
        title="Authentication",
        description=(
            "Refresh token (recommended): the API key and refresh token below, exchanged for "
            "short-lived tokens that renew themselves. Pasted JWT: a token pasted in the JWT field, "
            "valid about an hour"
        ),
        json_schema_extra={
            "choice_labels": {"refresh_token": "API key and refresh token (recommended)", "jwt": "Pasted JWT"}
        },
    )
    api_key: SecretStr | None = Field(
        default=None,
        validate_default=True,
        title="API key",
        description="Refresh-token mode: tailer_firebase_api_key from tailer-configuration.json",
        json_schema_extra={"show_when": {"auth_mode": "refresh_token"}},
    )
    refresh_token: SecretStr | None = Field(
        default=None,
        validate_default=True,
        title="Refresh token",
        description="Refresh-token mode: firebase_user.refreshToken from tailer-configuration.json",
        json_schema_extra={"show_when": {"auth_mode": "refresh_token"}},
    )
    token_url: str = Field(
        default=DEFAULT_TOKEN_URL,
        title="Token endpoint",
        description="Refresh-token mode: where the refresh token is exchanged (Google's securetoken for Tailer)",
        max_length=500,
        json_schema_extra={"show_when": {"auth_mode": "refresh_token"}},
    )
    jwt: SecretStr | None = Field(
        default=None,
        validate_default=True,
        title="JWT",
        description="JWT mode: the 'User token' printed by `tailer auth get-token` (it lasts about an hour)",
        json_schema_extra={"widget": "textarea", "show_when": {"auth_mode": "jwt"}},
    )
    test_job: str = Field(
        default="",
        max_length=300,
        title="Job to test with",
        description=(
            "Optional: account/ENVIRONMENT/configuration type/configuration id of a job these credentials "
            "may read, e.g. 000099/DEV/table-to-table/000099_iowa_liquor_prepare_pda. The connection test "
            "then asks Tailer for its last run (get_last_status, a documented read); without it, the test "
            "can only check the token itself"
        ),
    )

    @field_validator("test_job")
    @classmethod
    def _a_job_identity(cls, value: str) -> str:
        if value:
            job_target(value)  # raises ValueError, shown under the field
        return value

    @field_validator("token_url")
    @classmethod
    def _plain_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("the token endpoint must be an http(s) URL")
        if "?" in value or "#" in value:
            # The API key is sent as ?key=: keep it in its own (secret) field.
            raise ValueError("the token endpoint takes no query string; put the API key in its own field")
        return value

    @field_validator("api_key", "refresh_token", "jwt")
    @classmethod
    def _needed_by_the_mode(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        mode = info.data.get("auth_mode")  # absent when the mode itself was invalid
        present = value is not None and bool(value.get_secret_value())
        if mode == "refresh_token" and info.field_name in ("api_key", "refresh_token") and not present:
            what = "API key" if info.field_name == "api_key" else "refresh token"
            raise ValueError(f"the refresh-token mode needs the {what} (or choose the JWT mode)")
        if mode == "jwt" and info.field_name == "jwt":
            if not present or value is None:
                raise ValueError("the JWT mode needs the JWT: paste the token `tailer auth get-token` prints")
            try:
                jwt_expiry(value.get_secret_value())
            except ValueError as exc:
                raise ValueError(f"unreadable JWT: {exc}") from None
        return value if present else None

    @model_validator(mode="after")
    def _only_the_modes_secrets(self) -> TailerCredentials:
        if self.auth_mode == "refresh_token":
            object.__setattr__(self, "jwt", None)
        else:
            object.__setattr__(self, "api_key", None)
            object.__setattr__(self, "refresh_token", None)
        return self


class TailerTarget(Schema):
    """One data operation (configuration) of an account and environment, optionally one job."""

    account: str = Field(title="Account", description="e.g. 000099", pattern=r"^[A-Za-z0-9_-]+$", max_length=64)
    environment: str = Field(title="Environment", description="DEV, PROD, ... (upper case)", max_length=20)
    configuration_type: ConfigurationType = Field(title="Configuration type")
    configuration_id: str = Field(
        title="Configuration id",
        description="As in the configuration file. For table-to-table, without the _<ENV> suffix: it is added for you",
        pattern=r"^[A-Za-z0-9_.-]+$",
        max_length=255,
    )
    job_id: str | None = Field(
        default=None,
        title="Job id",
        description="Optional, e.g. gbq-to-gbq|000099_iowa_liquor_prepare_pda_DEV",
        max_length=500,
    )

    @field_validator("environment", mode="before")
    @classmethod
    def _environment(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if not value:
                raise ValueError("the environment is required (DEV, PROD, ...)")
            if value != value.upper():
                raise ValueError(f"Tailer environments are upper case: write '{value.upper()}', not '{value}'")
            if not ENVIRONMENT_PATTERN.match(value):
                raise ValueError(
                    f"'{value}' is not a Tailer environment name: upper-case letters, digits and _ "
                    "starting with a letter, e.g. DEV or PROD"
                )
        return value

    @field_validator("job_id")
    @classmethod
    def _blank_job_is_none(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("configuration_id")
    @classmethod
    def _no_double_suffix(cls, value: str, info: ValidationInfo) -> str:
        # A field validator (environment and type come first), so a form shows it under the id.
        environment, ctype = info.data.get("environment"), info.data.get("configuration_type")
        suffix = f"_{environment}"
        if environment and ctype == "table-to-table" and value.endswith(suffix):
            raise ValueError(
                f"enter the table-to-table configuration id without its '{suffix}' suffix "
                f"('{value.removesuffix(suffix)}'): the connector adds it"
            )
        return value

    @property
    def api_configuration_id(self) -> str:
        """The configuration id the API is sent: table-to-table ids get the ``_<ENV>`` suffix."""
        if self.configuration_type == "table-to-table":
            return f"{self.configuration_id}_{self.environment}"
        return self.configuration_id

    @property
    def status_job_id(self) -> str | None:
        """The job id sent with check_run_status: the target's, or the documented
        ``gbq-to-gbq|<id>`` for table-to-table; None (left out) when unknown."""
        if self.job_id:
            return self.job_id
        if self.configuration_type == "table-to-table":
            return f"gbq-to-gbq|{self.api_configuration_id}"
        return None


class TailerParams(Schema):
    execution_date: str | None = Field(
        default=None,
        title="Execution date",
        description="Optional, YYYY-MM-DD; the job's default when empty",
        max_length=10,
    )

    @field_validator("execution_date")
    @classmethod
    def _date(cls, value: str | None) -> str | None:
        return check_date(value) if value else None

    @model_validator(mode="after")
    def _launchable(self, info: ValidationInfo) -> TailerParams:
        # The docs: only table-to-table and table-to-storage operations are launched through
        # the API; refuse the others here rather than after a remote 400.
        target = (info.context or {}).get("target")
        if target is not None and target.configuration_type not in LAUNCHABLE_TYPES:
            raise ValueError(
                f"{target.configuration_type} configurations are not launched through the Tailer API "
                "(only table-to-table and table-to-storage); they run when their triggers fire"
            )
        return self


LAUNCHABLE_TYPES = ("table-to-table", "table-to-storage")
RUN_STATUSES = Literal["SUCCESS", "FAILED", "RUNNING"]


class LastRunsParams(Schema):
    """get_last_status's documented filters."""

    execution_date: str | None = Field(default=None, title="Execution date", description="YYYY-MM-DD", max_length=10)
    status: RUN_STATUSES | None = Field(default=None, title="Status")
    limit: int = Field(default=10, ge=1, le=100, title="Limit")

    @field_validator("execution_date")
    @classmethod
    def _date(cls, value: str | None) -> str | None:
        return check_date(value) if value else None


RESET_HELP = (
    "Resets the workflow's record of which triggering jobs succeeded. Needed when the "
    "jobs got out of step. Example from Tailer's docs: jobs JA, JB and JC trigger JT when "
    "all three succeed. JC failed, was fixed and relaunched, so JT ran. The next morning "
    "JC is launched again as a check: now JA(0), JB(0), JC(1). When JA and JB run later, "
    "JC already counts as done and JT fires unbalanced. A reset puts every job back to 0."
)


RESET_CONFIRM = (
    "Reset this workflow on Tailer? Every triggering job goes back to 0, as if none had run. "
    "Do it when the jobs are out of step, e.g. JA, JB and JC trigger JT, and JC was relaunched "
    "alone: the workflow counts JA(0), JB(0), JC(1), so JT would fire before JA and JB ran again."
)


def _error_message(response: Any) -> str:
    """Google's token endpoint nests its message (``{"error": {"message": ...}}``)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict) and body["error"].get("message"):
        return str(body["error"]["message"])[:300]
    return default_error_message(response)


# THE CONNECTOR


class TailerConnector(Connector[TailerCredentials, TailerTarget, TailerParams]):
    slug = "tailer"
    label = "Tailer"
    Credentials = TailerCredentials
    Target = TailerTarget
    Params = TailerParams
    needs_file = False
    remote_toggles = True
    actions = (
        Action(
            "last_runs",
            "Last runs",
            auto=True,
            params=LastRunsParams,
            description="The operation's latest runs on Tailer (get_last_status), refreshed every 10 s.",
        ),
        Action(
            "reset_workflow",
            "Reset workflow",
            role="operate",
            mutating=True,
            description=RESET_HELP,
            confirm=RESET_CONFIRM,
            applies_to=lambda target: target.configuration_type == "workflow",
        ),
    )

    #: Checks of a run that may answer a status we do not know before the step fails.
    max_unknown_checks: ClassVar[int] = 20
    #: Renew a fetched JWT this long before its exp (capped to a tenth of its lifetime, so
    #: that very short tokens, as in tests, are still reused).
    token_margin: ClassVar[float] = 60.0

    def __init__(self, credentials: TailerCredentials, *, base_url: str, timeout: float = 30.0):
        super().__init__(credentials, base_url=base_url, timeout=timeout)
        self.http = self._own(HttpClient(self.base_url, timeout=timeout, error_parser=_error_message))
        # The fetched JWT and when to renew it: in memory only, never stored or logged.
        self._jwt: SecretStr | None = None
        self._renew_at = 0.0

    # Tokens

    def _bearer(self) -> tuple[str, bool]:
        """A JWT fit to send now, and whether it was fetched by this call.

        Raises AuthenticationError for an expired pasted JWT, before anything is sent.
        """
        creds = self.credentials
        if creds.auth_mode == "jwt":
            if creds.jwt is None:  # the model validator prevents it
                raise AuthenticationError("The JWT mode needs a pasted JWT")
            token = creds.jwt.get_secret_value()
            try:
                exp = jwt_expiry(token)
            except ValueError as exc:
                raise AuthenticationError(f"The pasted Tailer JWT is unusable: {exc}") from None
            if time.time() >= exp:
                raise AuthenticationError(
                    f"The pasted Tailer JWT expired on {_utc(exp)}: paste a fresh one "
                    "(tailer auth get-token) or switch to the refresh-token mode"
                )
            return token, False
        if self._jwt is not None and time.time() < self._renew_at:
            return self._jwt.get_secret_value(), False
        if self.token_store is not None and (shared := self.token_store.get("jwt")):
            # Fetched by an earlier task of this connection, kept until shortly before exp.
            self._adopt(shared, {})
            if time.time() < self._renew_at:
                return shared, False
        return self._fetch_token(), True

    def _fetch_token(self) -> str:
        """Exchange the refresh token for a JWT, as ``tailer auth get-token`` does."""
        creds = self.credentials
        if creds.api_key is None or creds.refresh_token is None:  # the model validator prevents it
            raise AuthenticationError("The refresh-token mode needs the API key and the refresh token")
        self._jwt = None
        try:
            answer = self.http.json(
                "POST",
                creds.token_url,
                # safe_url() drops the query string from every message, so the key stays out.
                params={"key": creds.api_key.get_secret_value()},
                headers={"content-type": "application/json; charset=UTF-8"},
                json={"grantType": "refresh_token", "refreshToken": creds.refresh_token.get_secret_value()},
            )
        except AuthenticationError:
            raise
        except PermanentError as exc:
            if exc.status_code == 400:
                # Google's endpoint answers 400 for a bad key or refresh token (INVALID_REFRESH_TOKEN...).
                raise AuthenticationError(
                    f"The token endpoint refused the API key or refresh token: {exc.message}", status_code=400
                ) from None
            raise
        token = answer.get("id_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise InvalidResponse("The token endpoint answered without an id_token")
        exp = self._adopt(token, answer)
        if self.token_store is not None:
            self.token_store.put("jwt", token, ttl=self._renew_at - time.time())
        logger.info("Fetched a Tailer JWT valid until %s", _utc(exp))
        return token

    def _adopt(self, token: str, answer: dict[str, Any]) -> float:
        """Use ``token`` from now on, renewed shortly before its exp (returned)."""
        now = time.time()
        try:
            claims = jwt_claims(token)
            exp = float(claims["exp"])
        except (ValueError, KeyError, TypeError):
            # Not a readable JWT: trust expires_in (seconds, a string at Google), else an hour.
            try:
                exp = now + float(answer.get("expires_in", 3600))
            except (TypeError, ValueError):
                exp = now + 3600
            claims = {}
        issued = claims.get("iat")
        lifetime = exp - (float(issued) if isinstance(issued, int | float) else now)
        self._renew_at = exp - min(self.token_margin, max(0.0, lifetime) / 10)
        self._jwt = SecretStr(token)
        return exp

    def _call(self, path: str, body: dict[str, Any]) -> Any:
        """POST ``body`` with the bearer JWT and return the decoded JSON answer.

        A 401 on a cached fetched token (revoked, clock skew) gets one more try with a fresh
        token: the request was refused, so sending it again cannot run anything twice.
        """
        token, fresh = self._bearer()
        try:
            return self.http.json("POST", path, json=body, headers={"Authorization": f"Bearer {token}"})
        except AuthenticationError as exc:
            if self.credentials.auth_mode == "jwt":
                raise AuthenticationError(
                    f"{exc.message} (the pasted JWT was refused: paste a fresh one)", status_code=exc.status_code
                ) from None
            if fresh or exc.status_code != 401:
                raise
        self._jwt = None
        token, _fresh = self._bearer()
        return self.http.json("POST", path, json=body, headers={"Authorization": f"Bearer {token}"})

    @staticmethod
    def _identity(target: TailerTarget) -> dict[str, Any]:
        return {
            "account": target.account,
            "environment": target.environment,
            "configuration_type": target.configuration_type,
            "configuration_id": target.api_configuration_id,
        }

    @staticmethod
    def _results(answer: Any, action: str) -> list[dict[str, Any]]:
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
            raise InvalidResponse(f"Tailer's {action} answered without a results list")
        return results

    @staticmethod
    def _require_ok(answer: Any, action: str) -> str:
        """The documented ``{"message": "ok"}``; anything else is the platform's refusal."""
        message = str(answer.get("message", "")) if isinstance(answer, dict) else ""
        code = answer.get("code") if isinstance(answer, dict) else None
        code = code if isinstance(code, int) and not isinstance(code, bool) else None
        if message.strip().lower() != "ok" or (code is not None and code >= 400):
            raise PermanentError(f"Tailer refused {action}: {message or 'no message'}", status_code=code)
        return message

    # Connection

    @classmethod
    def credential_warnings(cls, credentials: TailerCredentials) -> list[str]:
        """A pasted JWT that has expired or lapses within 24 h."""
        if credentials.auth_mode != "jwt" or credentials.jwt is None:
            return []
        try:
            exp = jwt_expiry(credentials.jwt.get_secret_value())
        except ValueError as exc:
            return [f"The JWT is unreadable: {exc}"]
        left = exp - time.time()
        if left <= 0:
            return [f"The pasted JWT expired on {_utc(exp)}: paste a fresh one or use the refresh-token mode."]
        if left < 24 * 3600:
            return [
                f"The pasted JWT expires in {_span(left)} ({_utc(exp)}); releases after that will fail. "
                "The refresh-token mode renews tokens by itself."
            ]
        return []

    def test_connection(self) -> str:
        """Get a JWT (exchanging the refresh token), then, with a ``test_job``, one documented read.

        Every Tailer call needs a job's full identity, so the read is get_last_status of the
        credentials' ``test_job`` with ``limit: 1``; only its 200 counts (a 400 or 404 raises).
        Without a test job, the refresh-token exchange (or the pasted JWT's expiry, offline)
        is all that is checked, and the message says so.
        """
        token, _fresh = self._bearer()
        proof = ""
        if self.credentials.test_job:
            runs = self.last_runs(job_target(self.credentials.test_job), limit=1)
            latest = f", last run {runs[0].get('status')}" if runs and isinstance(runs[0], dict) else ", no run yet"
            proof = f"; it reads job {self.credentials.test_job}{latest}"
        try:
            claims = jwt_claims(token)
        except ValueError:  # a fetched token need not be readable; it was accepted all the same
            claims = {}
        who = claims.get("email") or claims.get("user_id") or claims.get("sub") or "the given user"
        exp = claims.get("exp")
        until = f" (token valid until {_utc(float(exp))})" if isinstance(exp, int | float) else ""
        if proof:
            return f"Tailer accepted the token of {who}{until}{proof}"
        how = "has a pasted token of" if self.credentials.auth_mode == "jwt" else "issued a token for"
        return (
            f"Tailer {how} {who}{until}; the Tailer API itself was not asked: "
            "set a job to test with on the connection to check that it accepts the token"
        )

    # Targets

    @classmethod
    def describe_target(cls, target: TailerTarget) -> str:
        job = f" [{target.job_id}]" if target.job_id else ""
        where = f"{target.account} / {target.environment} / {target.configuration_type}"
        return f"{where} / {target.api_configuration_id}{job}"

    def check_target(self, target: TailerTarget) -> list[str]:  # type: ignore[override]  # narrower, as describe_target
        """The data operation (and job, if given) must exist: get_last_status with ``limit: 1``,
        a documented read, answers 404 for a configuration or job Tailer does not know."""
        try:
            self.last_runs(target, limit=1)
        except NotFound as exc:
            return [f"Tailer does not know {self.describe_target(target)}: {exc.message}"]
        return []

    def set_target_state(self, target: TailerTarget, state: TargetState) -> str:
        """set_configuration_status with the documented activated/archived pairs."""
        flags = {"enabled": (True, False), "disabled": (False, False), "archived": (False, True)}
        if state not in flags:
            raise PermanentError(f"Unknown target state '{state}'")
        activated, archived = flags[state]
        body = {"action": "set_configuration_status", "activated": activated, "archived": archived}
        answer = self._call("/v1/configuration/status", {**body, **self._identity(target)})
        return self._require_ok(answer, f"to set {target.api_configuration_id} {state}")

    def remote_state(self, target: TailerTarget) -> str | None:
        """The target's state on the platform, when it can tell: Tailer's API has no read
        of a configuration's activated/archived flags, so always None (unknown)."""
        return None

    def last_runs(
        self,
        target: TailerTarget,
        *,
        execution_date: str | dt.date | None = None,
        status: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """get_last_status: the configuration's (or job's) latest runs, newest first.

        Filters as documented: ``execution_date`` (YYYY-MM-DD, the runs' start date),
        ``status`` (e.g. SUCCESS) and ``limit``. Returns the platform's rows as they are.
        """
        body: dict[str, Any] = {"action": "get_last_status", **self._identity(target)}
        if target.job_id:
            body["job_id"] = target.job_id
        if execution_date is not None:
            text = execution_date.isoformat() if isinstance(execution_date, dt.date) else str(execution_date).strip()
            try:
                body["execution_date"] = check_date(text)
            except ValueError as exc:
                raise PermanentError(f"Bad execution date: {exc}") from None
        if status:
            body["status"] = status.strip().upper()
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise PermanentError("The limit must be a positive whole number")
            body["limit"] = limit
        return self._results(self._call("/v1/dag/status", body), "get_last_status")

    def reset_workflow(self, target: TailerTarget) -> str:
        """reset_workflow_status: forget a workflow's triggered jobs. Workflows only."""
        if target.configuration_type != "workflow":
            raise PermanentError(
                f"Only workflow data operations can be reset; "
                f"{target.api_configuration_id} is {target.configuration_type}"
            )
        answer = self._call("/v1/workflow/status", {"action": "reset_workflow_status", **self._identity(target)})
        return self._require_ok(answer, f"to reset the workflow {target.configuration_id}")

    # Actions and what the release page shows

    @classmethod
    def release_refusal(cls, target: TailerTarget) -> str | None:
        if target.configuration_type not in LAUNCHABLE_TYPES:
            return (
                f"{target.configuration_type} configurations are not launched through the Tailer API "
                "(only table-to-table and table-to-storage); they run when their triggers fire"
            )
        return None

    def action_last_runs(self, *, target: TailerTarget, params: LastRunsParams) -> ActionResult:
        rows = self.last_runs(target, execution_date=params.execution_date, status=params.status, limit=params.limit)
        return ActionResult(
            tables=[
                Table(
                    "Last runs",
                    ["Run id", "Status", "Started", "Duration", "Last update", "Job"],
                    [
                        [
                            r.get("run_id"),
                            r.get("status"),
                            shown_time(r.get("start_execution_date")),
                            shown_duration(r.get("duration")),
                            shown_time(r.get("last_update_date")),
                            r.get("job_id"),
                        ]
                        for r in rows
                    ],
                    status_column="Status",
                )
            ]
        )

    def action_reset_workflow(self, *, target: TailerTarget, params: None) -> ActionResult:
        return ActionResult(message=self.reset_workflow(target))

    @classmethod
    def step_tables(cls, step_name: str, output: Any) -> list[Table]:
        if not output.get("run_id") or "status" not in output:
            return []
        return [
            Table(
                "Run",
                ["Run id", "Status", "Started", "Duration", "Last update"],
                [
                    [
                        output.get("run_id"),
                        output.get("status"),
                        shown_time(output.get("start")),
                        shown_duration(output.get("duration")),
                        shown_time(output.get("last_update")),
                    ]
                ],
                status_column="Status",
            )
        ]

    # Releases

    @classmethod
    def plan(cls, target: TailerTarget, params: TailerParams) -> list[StepSpec]:
        # Not idempotent: a second launch_job starts a second run.
        return [StepSpec("launch", f"Launch {target.api_configuration_id}")]

    def run_step(self, step: StepSpec, ctx: StepContext[TailerTarget, TailerParams]) -> StepOutcome:
        """launch_job, then wait on the run id it answers."""
        target: TailerTarget = ctx.target
        params: TailerParams = ctx.params
        body: dict[str, Any] = {"action": "launch_job", **self._identity(target)}
        if target.job_id:
            body["job_id"] = target.job_id
        if params.execution_date:
            body["execution_date"] = params.execution_date
        answer = self._call("/v1/dag/launch", body)
        run_id = answer.get("run_id") if isinstance(answer, dict) else None
        if not isinstance(run_id, str) or not run_id:
            raise InvalidResponse("Tailer's launch_job answered without a run_id")
        return Waiting(remote_ref=run_id, message=f"Launched run {run_id}", output={"run_id": run_id})

    def check_step(self, step: StepSpec, ctx: StepContext[TailerTarget, TailerParams]) -> StepOutcome:
        """check_run_status until SUCCESS or a failure; unknown statuses wait a while."""
        target: TailerTarget = ctx.target
        run_id = ctx.remote_ref
        body: dict[str, Any] = {"action": "check_run_status", **self._identity(target), "run_id": run_id}
        if job_id := target.status_job_id:
            body["job_id"] = job_id
        results = self._results(self._call("/v1/dag/status", body), "check_run_status")
        row = next((r for r in results if r.get("run_id") == run_id), None)
        unknown_checks = int(ctx.output.get("unknown_checks", 0) or 0)
        if row is None:
            return self._unknown(run_id, "", unknown_checks, {"run_id": run_id}, "the run is not listed yet")
        status = str(row.get("status") or "")
        output = {
            "run_id": run_id,
            "job_id": row.get("job_id"),
            "status": status,
            "start": row.get("start_execution_date"),
            "duration": row.get("duration"),
            "last_update": row.get("last_update_date"),
        }
        key = status.strip().upper().replace(" ", "_")
        when = f"after {shown_duration(output['duration'])}" if output["duration"] else "no duration yet"
        if output["start"]:
            when = f"started {shown_time(output['start'])}, {when}"
        if key in SUCCESS_STATUSES:
            return Done(message=f"Run {status} ({when})", remote_ref=run_id, remote_status=status, output=output)
        if key in FAILURE_STATUSES:
            reason = row.get("error") or row.get("message")
            detail = f": {reason}" if reason else "; see the job's logs in Tailer Studio"
            message = f"The Tailer run ended {status} ({when}){detail}"
            return Failed(message, remote_ref=run_id, remote_status=status, output=output)
        if key in RUNNING_STATUSES:
            return Waiting(remote_ref=run_id, message=f"{status} ({when})", remote_status=status, output=output)
        return self._unknown(run_id, status, unknown_checks, output, f"status '{status}'")

    # RECONCILE (issue 14): after a lost answer, ask Tailer what happened.

    def reconcile_step(self, step: StepSpec, ctx: StepContext) -> ReconcileOutcome:
        """The configuration's last runs tell: a run started since the step started is the
        one launch_job made (follow it); none means it was not launched. Start times Tailer
        does not give, or gives unreadable, leave it to a person."""
        target: TailerTarget = ctx.target
        if ctx.remote_ref:
            return self.check_step(step, ctx)
        rows = self.last_runs(target, limit=20)
        verdicts = [(row, since_start(row.get("start_execution_date"), ctx.started_at)) for row in rows]
        ours = [row for row, recent in verdicts if recent]
        if ours:
            run_id = str(ours[-1].get("run_id") or "")  # the oldest run since the start: ours
            if run_id:
                return self.check_step(step, dataclasses.replace(ctx, remote_ref=run_id))
        if any(recent is None for _, recent in verdicts):
            raise NotSupported("Tailer's last runs have no readable start time")
        return NotSent("no run of this configuration started since")

    def _unknown(self, run_id: str, status: str, seen: int, output: dict[str, Any], what: str) -> StepOutcome:
        """Keep waiting on an answer we cannot classify, shown as it came, up to a limit.

        The count of such checks travels in ``output`` (handed back by the engine on each
        check), so a long RUNNING phase does not use up the allowance.
        """
        seen += 1
        output = {**output, "unknown_checks": seen}
        if seen > self.max_unknown_checks:
            return Failed(
                f"Gave up on run {run_id}: {what} after {seen} checks, which this portal does not know "
                "as running, success or failure; look at the run in Tailer Studio",
                remote_ref=run_id,
                remote_status=status,
                output=output,
            )
        message = f"Tailer reports {what}"
        return Waiting(remote_ref=run_id, message=message, remote_status=status, output=output, warning=message)
