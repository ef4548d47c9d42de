"""Tailer API simulator (docs: shared/platforms/tailer.txt, CONTRACTS.md section 2).

Documented: the JSON POST actions launch_job, check_run_status, get_last_status,
reset_workflow_status and set_configuration_status with their request and success
bodies; Bearer JWTs; run ids ``YYYYMMDD-HHMMSS-<uuid4>``; ``_<ENV>``-suffixed
table-to-table ids; a token endpoint answering like Google's securetoken
(``tailer auth get-token``).
Not documented, chosen here (docs/platforms/tailer.md): error bodies
``{"code", "data": {}, "message"}``, 401 for a missing/expired/tampered JWT, 404 for an
unknown configuration/job/run, 400 for launching a disabled, archived or non-launchable
configuration, the RUNNING status, a refused status change answered 200 with a message
other than "ok", and the default ``limit`` of get_last_status (10).

Tokens are HS256 JWTs signed with a key drawn at start-up (kept across resets, so a
minted demo token stays valid). Control options beyond the common ones:
``POST /_sim/config {"token_ttl": 2}`` and ``GET /_sim/jwt?ttl=3600`` (mint a token to paste).
"""

from __future__ import annotations

import copy
import datetime as dt
import re
import secrets
import time
import uuid
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .core import Simulator

PROJECT = "tailer-sim"
DEFAULT_TOKEN_TTL = 3600.0  # Firebase ID tokens last an hour
API_KEYS = {"tailer-demo-api-key"}
#: refresh token -> the user it signs in
REFRESH_TOKENS = {"tailer-demo-refresh-token": {"user_id": "tailer-demo-user", "email": "demo@tailer.example"}}
DEMO_USER = REFRESH_TOKENS["tailer-demo-refresh-token"]

#: Only these are documented as launchable ("Tables to Tables or Tables to Storage").
LAUNCHABLE = {"table-to-table", "table-to-storage"}
TYPE_ALIASES = {"gbq-to-gbq": "table-to-table"}  # the older name (CONTRACTS.md)
IDENTITY = ("account", "environment", "configuration_type", "configuration_id")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
S2S_ID = "000099-jarvis-demo-iowa-liquor-storage-to-storage"
S2S_JOB = f"storage-to-storage|000099|{S2S_ID}|DEV|stores-{{{{FD_DATE}}}}-{{{{FD_TIME}}}}.csv"


def _configurations() -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """Known configurations, keyed by identity as the API receives it (suffixed for table-to-table)."""
    seeds = [
        (
            "000099",
            "DEV",
            "table-to-table",
            "000099_iowa_liquor_prepare_pda_DEV",
            "gbq-to-gbq|000099_iowa_liquor_prepare_pda_DEV",
        ),
        (
            "000099",
            "PROD",
            "table-to-table",
            "000099_iowa_liquor_prepare_pda_PROD",
            "gbq-to-gbq|000099_iowa_liquor_prepare_pda_PROD",
        ),
        (
            "000099",
            "DEV",
            "table-to-table",
            "000099_Load_PDA_f_traffic_ma_DEV",
            "gbq-to-gbq|000099_Load_PDA_f_traffic_ma_DEV",
        ),
        (
            "000099",
            "DEV",
            "table-to-storage",
            "000099-iowa-liquor-export-stores",
            "table-to-storage|000099-iowa-liquor-export-stores",
        ),
        ("000099", "DEV", "storage-to-storage", S2S_ID, S2S_JOB),
        ("000099", "DEV", "workflow", "000099-iowa-liquor-load-pda", "workflow|000099-iowa-liquor-load-pda"),
    ]
    configs = {}
    for account, env, ctype, cid, job in seeds:
        configs[(account, env, ctype, cid)] = {
            "account": account,
            "environment": env,
            "configuration_type": ctype,
            "configuration_id": cid,
            "job_id": job,
            "activated": True,
            "archived": False,
        }
    configs[("000099", "DEV", "workflow", "000099-iowa-liquor-load-pda")].update(triggered_jobs=["JA", "JB"], resets=0)
    return configs


def _seeded_runs() -> list[dict[str, Any]]:
    """The runs shown in the docs' get_last_status examples, as past history."""
    t2t = ("000099", "DEV", "table-to-table", "000099_iowa_liquor_prepare_pda_DEV")
    s2s = ("000099", "DEV", "storage-to-storage", S2S_ID)
    rows = [
        (
            t2t,
            "20201230-112837-0a795c70-2557-4a60-ba16-788aa2bea179",
            "2020-12-30T11:28:43.861340+00:00",
            "0:01:24.002519",
            "2020-12-30T11:30:07.960767+00:00",
        ),
        (
            t2t,
            "20201230-110907-47b31b2d-a54a-4a95-a3a6-b4fbc2168333",
            "2020-12-30T11:09:13.665798+00:00",
            "0:01:35.345232",
            "2020-12-30T11:10:49.097747+00:00",
        ),
        (
            t2t,
            "20201210-140612-19e547a1-de6a-47f0-b563-b8a3d5754118",
            "2020-12-10T14:06:17.415294+00:00",
            "0:01:39.201091",
            "2020-12-10T14:07:56.739284+00:00",
        ),
        (s2s, "20201209-cf026ae9-c79c-4cf9-8ffb-0bb63ad39469", "2020-12-09T17:17:23+00:00", "0:00:03.885654", None),
        (s2s, "20201209-7b7b7a66-1cc0-4f09-a893-ce4a35adf09b", "2020-12-09T17:17:18+00:00", "0:00:04.373931", None),
        (s2s, "20201209-4d76a90a-b092-4c69-a87f-b0cd79305428", "2020-12-09T17:17:18+00:00", "0:00:04.295537", None),
    ]
    return [
        {
            "key": key,
            "run_id": run_id,
            "start": start,
            "duration": duration,
            "last_update": last,
            "status": "SUCCESS",
            "started": None,
        }
        for key, run_id, start, duration, last in rows
    ]


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"code": status, "data": {}, "message": message}, status_code=status)


def google_error(message: str, status: int = 400) -> JSONResponse:
    """The shape of securetoken.googleapis.com's errors."""
    return JSONResponse(
        {"error": {"code": status, "message": message, "status": "INVALID_ARGUMENT"}}, status_code=status
    )


class TailerSimulator(Simulator):
    slug = "tailer"
    default_delay = 1.0

    def __init__(self, delay: float | None = None) -> None:
        # Drawn once per process: tokens survive /_sim/reset, as a real signing key would.
        self._signing_key = secrets.token_urlsafe(32)
        super().__init__(delay)

    @classmethod
    def demo(cls, base_url: str) -> dict[str, Any]:
        """The demo account's API key and refresh token, exchanged at this simulator's token endpoint."""
        return {
            "name": "Tailer (simulator)",
            "credentials": {
                "auth_mode": "refresh_token",
                "api_key": next(iter(API_KEYS)),
                "refresh_token": next(iter(REFRESH_TOKENS)),
                "token_url": f"{base_url}/token",
                "test_job": "000099/DEV/table-to-table/000099_iowa_liquor_prepare_pda",
            },
            "mappings": [
                {
                    "dataset": "Iowa liquor",
                    "name": "Iowa liquor PDA (DEV)",
                    "target": {
                        "account": "000099",
                        "environment": "DEV",
                        "configuration_type": "table-to-table",
                        "configuration_id": "000099_iowa_liquor_prepare_pda",
                    },
                },
                {
                    "dataset": "Iowa liquor",
                    "name": "Iowa liquor load workflow (DEV)",
                    "target": {
                        "account": "000099",
                        "environment": "DEV",
                        "configuration_type": "workflow",
                        "configuration_id": "000099-iowa-liquor-load-pda",
                    },
                },
            ],
        }

    def reset(self) -> None:
        super().reset()
        self.token_ttl = DEFAULT_TOKEN_TTL
        self.configurations = _configurations()
        self.runs: dict[str, dict[str, Any]] = {r["run_id"]: r for r in _seeded_runs()}
        self.requests: list[dict[str, Any]] = []
        self.token_fetches = 0
        self.tokens_minted = 0
        self.auth_failures = 0

    def state(self) -> dict[str, Any]:
        return {
            "token_ttl": self.token_ttl,
            "token_fetches": self.token_fetches,
            "tokens_minted": self.tokens_minted,
            "auth_failures": self.auth_failures,
            "configurations": {"/".join(k): copy.deepcopy(v) for k, v in self.configurations.items()},
            "runs": {run_id: self._row(r, "check_run_status") for run_id, r in self.runs.items()},
            "requests": self.requests[-50:],
        }

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/token", self.token, methods=["POST"]),
            Route("/v1/dag/launch", self.launch, methods=["POST"]),
            Route("/v1/dag/status", self.status, methods=["POST"]),
            Route("/v1/workflow/status", self.workflow_status, methods=["POST"]),
            Route("/v1/configuration/status", self.configuration_status, methods=["POST"]),
            Route("/_sim/jwt", self.mint, methods=["GET"]),
        ]

    # Control

    async def _control_config(self, request: Request) -> Response:
        body = await request.json()
        if "delay" in body:
            self.delay = float(body["delay"])
        if "token_ttl" in body:
            self.token_ttl = float(body["token_ttl"])
        return JSONResponse({"ok": True, "delay": self.delay, "token_ttl": self.token_ttl})

    async def mint(self, request: Request) -> Response:
        """A token for the pasted-JWT mode; ``ttl`` may be negative (already expired)."""
        try:
            ttl = float(request.query_params.get("ttl", "3600"))
        except ValueError:
            return error(400, "ttl must be a number of seconds")
        token, exp = self._issue(ttl)
        with self.lock:
            self.tokens_minted += 1
        return JSONResponse({"jwt": token, "exp": exp})

    # Tokens

    def _issue(self, ttl: float) -> tuple[str, int]:
        now = int(time.time())
        exp = int(now + ttl)
        claims = {
            "iss": f"https://securetoken.google.com/{PROJECT}",
            "aud": PROJECT,
            "auth_time": now,
            "user_id": DEMO_USER["user_id"],
            "sub": DEMO_USER["user_id"],
            "iat": now,
            "exp": exp,
            "email": DEMO_USER["email"],
            "email_verified": True,
            "firebase": {"identities": {"email": [DEMO_USER["email"]]}, "sign_in_provider": "password"},
        }
        return jwt.encode(claims, self._signing_key, algorithm="HS256"), exp

    async def token(self, request: Request) -> Response:
        """Google securetoken's refresh grant, as ``tailer auth get-token`` calls it."""
        if request.query_params.get("key") not in API_KEYS:
            return google_error("API key not valid. Please pass a valid API key.")
        try:
            body = await request.json()
        except ValueError:
            return google_error("INVALID_ARGUMENT")
        if not isinstance(body, dict):
            return google_error("INVALID_ARGUMENT")
        grant = body.get("grantType", body.get("grant_type"))
        refresh = body.get("refreshToken", body.get("refresh_token"))
        if grant != "refresh_token":
            return google_error("INVALID_GRANT_TYPE")
        if not refresh:
            return google_error("MISSING_REFRESH_TOKEN")
        if refresh not in REFRESH_TOKENS:
            return google_error("INVALID_REFRESH_TOKEN")
        token, _exp = self._issue(self.token_ttl)
        with self.lock:
            self.token_fetches += 1
        user = REFRESH_TOKENS[refresh]
        return JSONResponse(
            {
                "access_token": token,
                "expires_in": str(int(self.token_ttl)),
                "token_type": "Bearer",
                "refresh_token": refresh,
                "id_token": token,
                "user_id": user["user_id"],
                "project_id": PROJECT,
            }
        )

    def _authenticate(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        denied = None
        if not header.lower().startswith("bearer ") or not header[7:].strip():
            denied = error(401, "Missing bearer token")
        else:
            try:
                jwt.decode(
                    header[7:].strip(),
                    self._signing_key,
                    algorithms=["HS256"],
                    audience=PROJECT,
                    issuer=f"https://securetoken.google.com/{PROJECT}",
                    options={"require": ["exp", "iat"]},
                )
            except jwt.ExpiredSignatureError:
                denied = error(401, "Token expired")
            except jwt.InvalidTokenError:
                denied = error(401, "Invalid token")
        if denied is not None:
            with self.lock:
                self.auth_failures += 1
        return denied

    # Request helpers

    async def _body(self, request: Request, action: str | tuple[str, ...]) -> dict[str, Any] | Response:
        """Authenticate, read the JSON body, check its action; log the call."""
        if (denied := self._authenticate(request)) is not None:
            return denied
        try:
            body = await request.json()
        except ValueError:
            return error(400, "The body must be JSON")
        if not isinstance(body, dict):
            return error(400, "The body must be a JSON object")
        actions = (action,) if isinstance(action, str) else action
        if body.get("action") not in actions:
            return error(400, f"Unknown action '{body.get('action')}' for {request.url.path}")
        with self.lock:
            # The route's own path, without the /tailer mount prefix.
            path = request.url.path.removeprefix(request.scope.get("root_path", ""))
            self.requests.append(
                {"path": path, **{k: v for k, v in body.items() if k != "action"}, "action": body["action"]}
            )
        return body

    def _configuration(self, body: dict[str, Any]) -> dict[str, Any] | Response:
        missing = [f for f in IDENTITY if not isinstance(body.get(f), str) or not body[f]]
        if missing:
            return error(400, f"Missing field(s): {', '.join(missing)}")
        ctype = TYPE_ALIASES.get(body["configuration_type"], body["configuration_type"])
        key = (body["account"], body["environment"], ctype, body["configuration_id"])
        config = self.configurations.get(key)
        if config is None:
            hint = " (table-to-table ids end with _<ENV>)" if ctype == "table-to-table" else ""
            return error(
                404,
                f"Configuration '{body['configuration_id']}' not found in account {body['account']} "
                f"({body['environment']}, {ctype}){hint}",
            )
        return config

    # Runs

    def _row(self, run: dict[str, Any], action: str) -> dict[str, Any]:
        """A run as the docs show it; table-to-table reads gbq-to-gbq in get_last_status, as in the docs."""
        account, env, ctype, cid = run["key"]
        status, duration, last_update = run["status"], run["duration"], run["last_update"]
        if run["started"] is not None:
            # Live run: RUNNING for two delays, then its end state.
            running = self.stage(run["started"], 2) < 2
            elapsed = time.monotonic() - run["started"]
            if not running:
                elapsed = min(elapsed, 2 * self.delay)
                status = "FAILED" if run["fail"] else (run["odd_status"] or "SUCCESS")
            else:
                status = "RUNNING"
            duration = str(dt.timedelta(seconds=elapsed))
            start = dt.datetime.fromisoformat(run["start"])
            last_update = (start + dt.timedelta(seconds=elapsed)).isoformat()
        row = {
            "account": account,
            "configuration_id": cid,
            "configuration_type": "gbq-to-gbq"
            if (ctype == "table-to-table" and action == "get_last_status")
            else ctype,
            "duration": duration,
            "environment": env,
            "job_id": self.configurations.get(run["key"], {}).get("job_id", run.get("job_id")),
            "last_update_date": last_update,
            "run_id": run["run_id"],
            "start_execution_date": run["start"],
            "status": status,
        }
        if row["last_update_date"] is None:  # storage-to-storage rows have none (docs)
            del row["last_update_date"]
        return row

    async def launch(self, request: Request) -> Response:
        body = await self._body(request, "launch_job")
        if isinstance(body, Response):
            return body
        config = self._configuration(body)
        if isinstance(config, Response):
            return config
        cid, ctype = config["configuration_id"], config["configuration_type"]
        if ctype not in LAUNCHABLE:
            return error(
                400,
                f"{ctype} data operations cannot be launched through the API "
                "(only table-to-table and table-to-storage)",
            )
        if config["archived"]:
            return error(400, f"Configuration '{cid}' is archived: it cannot be launched")
        if not config["activated"]:
            return error(400, f"Configuration '{cid}' is disabled: enable it before launching")
        if body.get("job_id") not in (None, config["job_id"]):
            return error(404, f"Job '{body['job_id']}' not found in configuration '{cid}'")
        execution_date = body.get("execution_date")
        if execution_date is not None and (not isinstance(execution_date, str) or not DATE.match(execution_date)):
            return error(400, "execution_date must be a YYYY-MM-DD date")
        failed = self.take_fault("run_failed", request)
        odd = self.take_fault("unknown_status", request)
        now = dt.datetime.now(dt.UTC)
        run_id = f"{now:%Y%m%d-%H%M%S}-{uuid.uuid4()}"
        run = {
            "key": (config["account"], config["environment"], ctype, cid),
            "run_id": run_id,
            "start": now.isoformat(),
            "started": time.monotonic(),
            "duration": None,
            "last_update": None,
            "status": None,
            "execution_date": execution_date,
            "fail": bool(failed),
            "odd_status": (odd.message or "CHECKED") if odd else None,
        }
        with self.lock:
            self.runs[run_id] = run
        return JSONResponse({"run_id": run_id})

    async def status(self, request: Request) -> Response:
        body = await self._body(request, ("check_run_status", "get_last_status"))
        if isinstance(body, Response):
            return body
        config = self._configuration(body)
        if isinstance(config, Response):
            return config
        job_id = body.get("job_id")
        if job_id not in (None, config["job_id"]):
            return error(404, f"Job '{job_id}' not found in configuration '{config['configuration_id']}'")
        key = (config["account"], config["environment"], config["configuration_type"], config["configuration_id"])
        if body["action"] == "check_run_status":
            if not body.get("run_id"):
                return error(400, "Missing field(s): run_id")
            run = self.runs.get(str(body["run_id"]))
            if run is None or run["key"] != key:
                return error(404, f"Run '{body['run_id']}' not found for '{config['configuration_id']}'")
            return JSONResponse({"results": [self._row(run, "check_run_status")]})
        # get_last_status with its documented filters
        execution_date, wanted, limit = body.get("execution_date"), body.get("status"), body.get("limit", 10)
        if execution_date is not None and (not isinstance(execution_date, str) or not DATE.match(execution_date)):
            return error(400, "execution_date must be a YYYY-MM-DD date")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            return error(400, "limit must be a positive integer")
        rows = [self._row(r, "get_last_status") for r in self.runs.values() if r["key"] == key]
        rows.sort(key=lambda r: r["start_execution_date"], reverse=True)
        if execution_date:
            rows = [r for r in rows if r["start_execution_date"].startswith(execution_date)]
        if wanted:
            rows = [r for r in rows if r["status"] == wanted]
        return JSONResponse({"results": rows[:limit]})

    # Configuration and workflow status

    async def workflow_status(self, request: Request) -> Response:
        body = await self._body(request, "reset_workflow_status")
        if isinstance(body, Response):
            return body
        config = self._configuration(body)
        if isinstance(config, Response):
            return config
        if config["configuration_type"] != "workflow":
            return error(400, "reset_workflow_status applies to workflow configurations only")
        if fault := self.take_fault("refuse_status_change", request):
            return JSONResponse({"code": 409, "data": {}, "message": fault.message or "KO: the workflow is running"})
        with self.lock:
            config["triggered_jobs"] = []
            config["resets"] = config.get("resets", 0) + 1
        return JSONResponse({"code": 200, "data": {}, "message": "ok"})

    async def configuration_status(self, request: Request) -> Response:
        body = await self._body(request, "set_configuration_status")
        if isinstance(body, Response):
            return body
        config = self._configuration(body)
        if isinstance(config, Response):
            return config
        activated, archived = body.get("activated"), body.get("archived")
        if not isinstance(activated, bool) or not isinstance(archived, bool):
            return error(400, "activated and archived must both be booleans")
        if activated and archived:
            return error(400, "An archived configuration cannot be activated")
        if fault := self.take_fault("refuse_status_change", request):
            # Docs: "you get a response (OK, or KO)", with an HTTP 200.
            return JSONResponse(
                {"message": fault.message or "KO: the configuration is locked by a deployment in progress"}
            )
        with self.lock:
            config["activated"], config["archived"] = activated, archived
        return JSONResponse({"message": "ok"})
