"""DataHQ spec store simulator (docs: shared/platforms/datahq-specstore.txt, CONTRACTS.md section 5).

Follows the server's source (datopian/specstore, flowmanager/): upload always answers
HTTP 200 ``{success, dataset_id, flow_id, errors}`` with the server's error strings;
datasets are keyed ``<meta.ownerid>/<meta.dataset>``; revisions count from 1; the flow
state derives from its pipelines; a failed pipeline fails its dependants; an unknown
dataset or revision (or a revision that is not an integer) is werkzeug's 404 HTML page;
``?callback=`` turns a JSON answer into JSONP.

Chosen here (docs/platforms/datahq.md): tokens are HS256 JWTs signed with the
simulator's own key (the real ones are RS256 from the auth server), handed out by
``GET /_sim/token``; the pipelines planned from a spec; the stats; and the upload
refuses a spec that is not an object with "Missing owner in spec" (the server crashes).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import time
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .core import Simulator

#: The simulator's signing key (the real spec store checks RS256 tokens of the auth server).
SIGNING_KEY = "datahq-simulator-signing-key-not-a-secret"
#: The demo owner seeded at every reset, with one dataset whose revision 1 succeeded.
DEMO_OWNER, DEMO_USERID, DEMO_DATASET = "demo-team", "u-demo", "demo-dataset"
DEFAULT_MAX_DATASETS = 10

# The server's own strings (flowmanager/controllers.py, schedules.py).
EMPTY = "Received empty contents (make sure your content-type is correct)"
NO_OWNER = "Missing owner in spec"
NOT_AUTHORISED = "No token or token not authorised for owner"
MAX_DATASETS = "Max datasets for user exceeded plan limit (%d)"
INVALID = "Validation failed for contents"
# The missing space is the server's ('successfully' 'executed' concatenated).
DEPENDENCY = 'Dependency unsuccessful. Cannot run until dependency "{}" is successfullyexecuted'
DEFAULT_FAILURE = "Pipeline failed: ValueError: row 7 of data.csv has 3 values but the schema has 4 fields"

#: Pipelines every revision runs: kind -> (title, kinds it depends on). In plan order.
BASE_PIPELINES: dict[str, tuple[str, tuple[str, ...]]] = {
    "csv": ("Creating CSV", ()),
    "json": ("Creating JSON", ("csv",)),
    "zip": ("Creating ZIP", ("csv", "json")),
}
#: Pipelines added by a spec's ``outputs: [{"kind": ...}]``. Other kinds are refused.
EXTRA_PIPELINES: dict[str, tuple[str, tuple[str, ...]]] = {
    "excel": ("Creating Excel", ("csv",)),
    "preview": ("Generating Preview", ("json",)),
    "report": ("Validating data (report)", ()),
}

# Werkzeug 0.x pages, as the server's Flask of its time sends them (no <html> tag).
_PAGE = (
    '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n'
    "<title>{code} {name}</title>\n<h1>{name}</h1>\n<p>{text}</p>\n"
)
_PAGES = {
    400: ("Bad Request", "The browser (or proxy) sent a request that this server could not understand."),
    404: (
        "Not Found",
        "The requested URL was not found on the server.  "
        "If you entered the URL manually please check your spelling and try again.",
    ),
    405: ("Method Not Allowed", "The method is not allowed for the requested URL."),
}


def html_error(code: int) -> HTMLResponse:
    name, text = _PAGES[code]
    return HTMLResponse(_PAGE.format(code=code, name=name, text=text), status_code=code)


def parse_schedule(spec: dict[str, Any]) -> list[str]:
    """The server's schedule errors (flowmanager/schedules.py), same strings, same order."""
    schedule = spec.get("schedule")
    if schedule is None:
        return []
    if not isinstance(schedule, str):
        return ["Schedule should be a string"]
    schedule = schedule.strip()
    if not schedule.startswith("every "):
        return ["Schedule should start with 'every'"]
    schedule = schedule[len("every ") :]
    multiplier = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}.get(schedule[-1:])
    if multiplier is None:
        return ["Bad time unit for schedule, only s/m/h/d/w are allowed"]
    try:
        amount = int(schedule[:-1]) * multiplier
    except ValueError:
        return ["Failed to parse time number"]
    return ["Can't schedule tasks for less than one minute"] if amount < 60 else []


def flow_state(statuses: list[str]) -> str:
    """The flow state from its pipelines' (FlowRegistry.check_flow_status, CONTRACTS.md 5)."""
    if "INPROGRESS" in statuses:
        return "INPROGRESS"
    if "QUEUED" in statuses:
        # Pending mixed with finished pipelines is still a running flow.
        return "INPROGRESS" if ("SUCCEEDED" in statuses or "FAILED" in statuses) else "QUEUED"
    return "FAILED" if "FAILED" in statuses else "SUCCEEDED"


def sign(
    userid: str,
    *,
    max_dataset_num: int = DEFAULT_MAX_DATASETS,
    service: str = "source",
    expires_in: float | None = None,
) -> str:
    """A token as the auth server's /auth/authorize hands out, signed with the simulator's key."""
    claims: dict[str, Any] = {"userid": userid, "permissions": {"max_dataset_num": max_dataset_num}, "service": service}
    if expires_in is not None:
        claims["exp"] = int(time.time() + expires_in)
    return jwt.encode(claims, SIGNING_KEY, algorithm="HS256")


def demo_spec(**extra: Any) -> dict[str, Any]:
    """A source spec of the demo owner's dataset, as the real specstore's tests write them."""
    return {
        "meta": {
            "owner": DEMO_OWNER,
            "ownerid": DEMO_USERID,
            "dataset": DEMO_DATASET,
            "version": 1,
            "findability": "published",
        },
        "inputs": [
            {
                "kind": "datapackage",
                "url": "https://example.org/demo/datapackage.json",
                "parameters": {"resource-mapping": {"demo": "data/demo.csv"}},
            }
        ],
        **extra,
    }


class DatahqSimulator(Simulator):
    slug = "datahq"
    default_delay = 1.0

    @classmethod
    def demo(cls, base_url: str) -> dict[str, Any]:
        """The demo owner's connection: a token that never expires, and the seeded dataset.

        ``default_params`` (a ready spec) is extra to the documented shape: seed_demo may use it.
        """
        return {
            "name": "DataHQ spec store (simulator)",
            "credentials": {"token": sign(DEMO_USERID), "owner": DEMO_OWNER, "ownerid": DEMO_USERID},
            "mappings": [
                {
                    "dataset": "Demo dataset",
                    "name": "Demo dataset on DataHQ",
                    "target": {"owner": DEMO_OWNER, "dataset": DEMO_DATASET},
                    "default_params": {"spec": demo_spec(outputs=[{"kind": "zip"}, {"kind": "report"}])},
                },
            ],
        }

    def reset(self) -> None:
        super().reset()
        self.datasets: dict[str, dict[str, Any]] = {}  # "<ownerid>/<dataset>" -> dataset
        self.users: dict[str, str] = {DEMO_USERID: DEMO_OWNER}  # userid -> owner name, from /_sim/token
        self.requests: list[dict[str, Any]] = []
        # /_sim/config "state_words": {"INPROGRESS": "RUNNING"} plays a server with other state names.
        self.state_words: dict[str, str] = {}
        self._seed()

    def _word(self, state: str) -> str:
        return self.state_words.get(state, state)

    async def _control_config(self, request: Request) -> Response:
        """The base options plus ``state_words``: other names for the flow states."""
        body = await request.json()  # Starlette caches it: the base class reads it again
        if isinstance(body.get("state_words"), dict):
            self.state_words = {str(k): str(v) for k, v in body["state_words"].items()}
        return await super()._control_config(request)

    def _seed(self) -> None:
        """The demo owner's dataset, whose revision 1 finished well long ago."""
        spec = demo_spec()
        dataset = self._save_dataset(DEMO_USERID, DEMO_DATASET, spec)
        self._new_revision(dataset, spec, failing=None, started=time.monotonic() - 10**6)

    def state(self) -> dict[str, Any]:
        return {
            "datasets": {
                key: {"owner": d["owner"], "revisions": [self._describe(d, r)["state"] for r in d["revisions"]]}
                for key, d in self.datasets.items()
            },
            "users": self.users,
            "requests": self.requests[-50:],
        }

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/_sim/token", self.token, methods=["GET"]),
            Route("/source/upload", self.upload, methods=["POST"]),
            Route("/source/{owner}/{dataset}/{revision}", self.status, methods=["GET"]),
            # Anything else under /source/ gets werkzeug's pages, as from Flask.
            Route("/source/{rest:path}", self.other, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]),
        ]

    # Control

    async def token(self, request: Request) -> Response:
        """``GET /_sim/token?userid=&owner=&max_dataset_num=&service=&expires_in=``: a fresh token."""
        query = request.query_params
        userid = query.get("userid", DEMO_USERID)
        try:
            max_datasets = int(query.get("max_dataset_num", DEFAULT_MAX_DATASETS))
            expires_in = float(query["expires_in"]) if "expires_in" in query else None
        except ValueError:
            return JSONResponse({"message": "max_dataset_num and expires_in must be numbers"}, status_code=400)
        service = query.get("service", "source")
        with self.lock:
            if query.get("owner"):
                self.users[userid] = query["owner"]
        token = sign(userid, max_dataset_num=max_datasets, service=service, expires_in=expires_in)
        # The shape of the auth server's /auth/authorize answer.
        return JSONResponse(
            {
                "userid": userid,
                "owner": self.users.get(userid),
                "service": service,
                "permissions": {"max_dataset_num": max_datasets},
                "token": token,
            }
        )

    # Upload

    async def upload(self, request: Request) -> Response:
        # Flask: request.headers.get('auth-token') or request.values.get('jwt').
        token, auth = request.headers.get("auth-token"), "header"
        if not token and request.query_params.get("jwt"):
            token, auth = request.query_params["jwt"], "query"
        mimetype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        contents: Any = None
        if mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json")):
            try:
                contents = json.loads(await request.body())
            except ValueError:
                return html_error(400)  # Flask's get_json on a broken body
        elif mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            async with request.form() as form:
                form_jwt = form.get("jwt")
                if not token and isinstance(form_jwt, str):
                    token, auth = form_jwt, "form"
        # Old Flask's get_json() gives None for any other content type.
        answer = self._upload(request, token, contents)
        with self.lock:
            self.requests.append(
                {
                    "path": "/source/upload",
                    "content_type": mimetype,
                    "auth": auth if token else None,
                    "success": answer["success"],
                    "errors": answer["errors"],
                }
            )
        return self._reply(request, answer)

    def _claims(self, token: str | None) -> dict[str, Any] | None:
        if not token:
            return None
        try:
            claims = jwt.decode(token, SIGNING_KEY, algorithms=["HS256"])
        except jwt.PyJWTError:  # bad signature, expired, not a JWT
            return None
        return claims if claims.get("service") == "source" else None

    def _upload(self, request: Request, token: str | None, contents: Any) -> dict[str, Any]:
        """flowmanager.controllers.upload: the same checks in the same order."""
        errors: list[str] = []
        dataset_id = flow_id = None
        meta = contents.get("meta") if isinstance(contents, dict) else None
        if not isinstance(meta, dict):
            meta = {}
        ownerid = meta.get("ownerid")
        claims = self._claims(token)
        if contents is None:
            errors.append(EMPTY)
        elif not ownerid:
            errors.append(NO_OWNER)
        elif not claims or claims.get("userid") != ownerid:
            errors.append(NOT_AUTHORISED)
        else:
            name = meta.get("dataset")
            max_datasets = int((claims.get("permissions") or {}).get("max_dataset_num", 0))
            with self.lock:
                owned = sum(1 for d in self.datasets.values() if d["owner"] == ownerid)
                dataset_id = f"{ownerid}/{name}"
                if owned < max_datasets or dataset_id in self.datasets:
                    flow_id = self._internal_upload(request, ownerid, name, contents, errors)
                else:
                    errors.append(MAX_DATASETS % max_datasets)
        return {"success": not errors, "dataset_id": dataset_id, "flow_id": flow_id, "errors": errors}

    def _internal_upload(self, request: Request, ownerid: str, name: Any, spec: dict, errors: list[str]) -> str | None:
        """Store the spec, then plan and start a revision (called under the lock)."""
        if not isinstance(name, str) or not name:
            errors.append(INVALID)  # chosen: the server would file it under "<ownerid>/None"
            return None
        # As on the server, the dataset is stored before the schedule and plan are checked.
        dataset = self._save_dataset(ownerid, name, spec)
        schedule_errors = parse_schedule(spec)
        if schedule_errors:
            errors.extend(schedule_errors)
            return None
        outputs = spec.get("outputs") or []
        kinds = [o.get("kind") for o in outputs if isinstance(o, dict)] if isinstance(outputs, list) else None
        if (
            kinds is None
            or len(kinds) != len(outputs)
            or any(k not in BASE_PIPELINES and k not in EXTRA_PIPELINES for k in kinds)
        ):
            errors.append(INVALID)  # the planner's ValueError
            return None
        fault = self.take_fault("pipeline_failed", request)
        failing = (fault.message or DEFAULT_FAILURE) if fault else None
        revision = self._new_revision(dataset, spec, failing=failing, extras=[k for k in kinds if k in EXTRA_PIPELINES])
        return revision["flow_id"]

    def _save_dataset(self, ownerid: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        now = datetime.datetime.now()
        key = f"{ownerid}/{name}"
        dataset = self.datasets.get(key)
        if dataset is None:
            dataset = self.datasets[key] = {"owner": ownerid, "name": name, "created_at": now, "revisions": []}
        spec["meta"]["update_time"] = now.isoformat()
        spec["meta"]["create_time"] = dataset["created_at"].isoformat()
        dataset.update(spec=spec, updated_at=now)
        return dataset

    def _new_revision(
        self,
        dataset: dict[str, Any],
        spec: dict[str, Any],
        *,
        failing: str | None,
        extras: list[str] | None = None,
        started: float | None = None,
    ) -> dict[str, Any]:
        """Plan the revision's pipelines and lay out when each runs, in ``delay`` periods.

        A pipeline starts once its dependencies ended (the first at period 1) and runs
        one period. The failing one (CSV) fails; those depending on a failed pipeline
        fail at that moment with the server's "Dependency unsuccessful" error.
        """
        number = len(dataset["revisions"]) + 1
        flow_id = f"{dataset['owner']}/{dataset['name']}/{number}"
        kinds = list(BASE_PIPELINES) + [k for k in EXTRA_PIPELINES if k in (extras or [])]
        digest = hashlib.md5(f"{flow_id}:{json.dumps(spec, sort_keys=True)}".encode()).hexdigest()
        rows = 100 + int(digest[:4], 16) % 9900
        stats = {"bytes": rows * 48, "count_of_rows": rows, "dataset_name": dataset["name"], "hash": digest}
        pipelines: dict[str, dict[str, Any]] = {}
        for kind in kinds:
            title, deps = BASE_PIPELINES.get(kind) or EXTRA_PIPELINES[kind]
            pid = f"{flow_id}:{kind}"
            failed_deps = [
                pipelines[f"{flow_id}:{d}"] for d in deps if pipelines[f"{flow_id}:{d}"]["outcome"] == "FAILED"
            ]
            if failed_deps:
                cause = min(failed_deps, key=lambda p: p["end"])
                entry = {
                    "start": None,
                    "end": cause["end"],
                    "outcome": "FAILED",
                    "errors": [DEPENDENCY.format(cause["id"])],
                }
            else:
                start = max((pipelines[f"{flow_id}:{d}"]["end"] for d in deps), default=1)
                fails = failing is not None and kind == "csv"
                entry = {
                    "start": start,
                    "end": start + 1,
                    "outcome": "FAILED" if fails else "SUCCEEDED",
                    "errors": [failing] if fails else [],
                }
            pipelines[pid] = {"id": pid, "title": title, "cascaded": entry["start"] is None, **entry}
        revision = {
            "revision": number,
            "flow_id": flow_id,
            "started": time.monotonic() if started is None else started,
            "pipelines": list(pipelines.values()),
            "stats": stats,
        }
        dataset["revisions"].append(revision)
        return revision

    # Status

    @staticmethod
    def _pipeline_status(pipeline: dict[str, Any], stage: int) -> str:
        if pipeline["start"] is None:  # failed by a dependency, at that dependency's end
            return "FAILED" if stage >= pipeline["end"] else "QUEUED"
        if stage < pipeline["start"]:
            return "QUEUED"
        return "INPROGRESS" if stage < pipeline["end"] else pipeline["outcome"]

    def _describe(self, dataset: dict[str, Any], revision: dict[str, Any]) -> dict[str, Any]:
        """flowmanager.controllers.info for one revision, at this moment."""
        stages = max(p["end"] for p in revision["pipelines"])
        stage = self.stage(revision["started"], stages)
        statuses = [(p, self._pipeline_status(p, stage)) for p in revision["pipelines"]]
        # A pipeline shows once it reported (started or failed): queued ones never report.
        shown = {
            p["id"]: {
                "title": p["title"],
                "status": status,
                "stats": revision["stats"] if status == "SUCCEEDED" else {},
                "error_log": p["errors"] if status == "FAILED" else [],
            }
            for p, status in sorted(statuses, key=lambda ps: ps[0]["start"] or ps[0]["end"])
            if status != "QUEUED"
        }
        finished = [p for p, status in statuses if status == "SUCCEEDED"]
        causes = [p for p, status in statuses if status == "FAILED" and not p["cascaded"]]
        return {
            "id": revision["flow_id"],
            "spec_contents": dataset["spec"],
            "modified": dataset["updated_at"].isoformat(),
            "state": self._word(flow_state([status for _, status in statuses])),
            "error_log": [e for p in causes for e in p["errors"]],
            "logs": [],
            # The server keeps the stats of the last pipeline that reported some.
            "stats": revision["stats"] if finished else None,
            "pipelines": shown,
            "certified": False,
        }

    async def status(self, request: Request) -> Response:
        owner, name, wanted = (request.path_params[k] for k in ("owner", "dataset", "revision"))
        with self.lock:
            dataset = self.datasets.get(f"{owner}/{name}")
            if dataset is None:
                return html_error(404)
            revisions = dataset["revisions"]
            found: dict[str, Any] | None = None
            if wanted == "latest":
                found = self._describe(dataset, revisions[-1]) if revisions else None
            elif wanted == "successful":
                for revision in reversed(revisions):
                    described = self._describe(dataset, revision)
                    if described["state"] == "SUCCEEDED":
                        found = described
                        break
            elif wanted.isdigit() and 1 <= int(wanted) <= len(revisions):
                found = self._describe(dataset, revisions[int(wanted) - 1])
        if found is None:
            return html_error(404)
        return self._reply(request, found)

    async def other(self, request: Request) -> Response:
        # Known paths with the wrong method are 405 in Flask; the rest 404.
        rest = request.path_params["rest"]
        if rest == "upload" or rest.count("/") == 2:
            return html_error(405)
        return html_error(404)

    @staticmethod
    def _reply(request: Request, data: dict[str, Any]) -> Response:
        """jsonpify: JSON, or JSONP when the query has ``callback``."""
        callback = request.query_params.get("callback")
        if callback:
            return Response(f"{callback}({json.dumps(data)});", media_type="application/javascript")
        return JSONResponse(data)
