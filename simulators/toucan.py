"""Toucan Toco backend simulator (docs: shared/platforms/toucan-toco.txt, CONTRACTS.md section 1).

Documented: Basic auth; multipart data source upload with the Dropzone ``dz*`` chunk
fields; operations, partial preprocess, populate and populate-and-release.
Not documented, chosen here (docs/simulators.md): the response bodies, and
``GET /{app}/operations/{operation_id}`` to follow an asynchronous operation.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from .core import Simulator

OPERATIONS = ("preprocess_data_sources", "populate_basemaps", "populate_reports", "populate_dashboards", "release")
EXTRA_OPERATIONS = ("populate_permissions", "release_design")
STAGES = ("staging", "production")

#: Accounts and small apps the simulator knows. A data source must be declared in the
#: small app's etl_config, as on the real backend.
USERS = {"contributor@demo.example": "toucan-demo-password"}
SMALL_APPS: dict[str, dict[str, Any]] = {
    "demo-app": {
        "sources": ["sales.csv", "referential.csv", "targets.xlsx"],
        "domains": ["sales", "referential", "targets"],
    },
    "retail-kpis": {"sources": ["stores.csv", "weekly_sales.csv"], "domains": ["stores", "weekly_sales"]},
}
DZ_FIELDS = ("dzuuid", "dztotalfilesize", "dztotalchunkcount", "dzchunkbyteoffset", "dzchunkindex")


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"statusCode": status, "message": message}, status_code=status)


class ToucanSimulator(Simulator):
    slug = "toucan"
    default_delay = 1.0

    @classmethod
    def demo(cls, base_url: str) -> dict[str, Any]:
        login, password = next(iter(USERS.items()))
        return {
            "name": "Toucan (simulator)",
            "credentials": {"login": login, "password": password},
            "mappings": [
                {
                    "dataset": "Sales",
                    "name": "Sales on Toucan (staging)",
                    "target": {"small_app": "demo-app", "data_source": "sales.csv", "stage": "staging"},
                },
            ],
        }

    def reset(self) -> None:
        super().reset()
        workdir: str | None = getattr(self, "_workdir", None)
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        # Chunks and assembled files live on disk, never in memory.
        self._workdir: str = tempfile.mkdtemp(prefix="toucan-sim-")
        self.uploads: dict[str, dict[str, Any]] = {}  # dzuuid -> progress
        self.sources: dict[str, dict[str, Any]] = {}  # "app/stage/filename" -> stored file
        self.operations: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.final_status = "success"  # /_sim/config final_status: another server's word for it

    async def _control_config(self, request: Request) -> Response:
        """The base options plus ``final_status``, the word a finished operation reports."""
        body = await request.json()  # Starlette caches it: the base class reads it again
        if "final_status" in body:
            self.final_status = str(body["final_status"])
        return await super()._control_config(request)

    def state(self) -> dict[str, Any]:
        return {
            "sources": self.sources,
            "operations": {k: self._describe(v) for k, v in self.operations.items()},
            "requests": self.requests[-50:],
        }

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/{app}/data/sources", self.upload, methods=["POST"]),
            Route("/{app}/operations", self.run_operations, methods=["POST"]),
            Route("/{app}/operations/{operation_id}", self.get_operation, methods=["GET"]),
            Route("/{app}/data/preprocess", self.partial, methods=["POST"]),
            Route("/{app}/populate", self.partial, methods=["POST"]),
            Route("/{app}/config/etl", self.etl_config, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
        ]

    # Auth and lookups

    def _authenticate(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            return error(401, "Unauthorized")
        try:
            login, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return error(401, "Unauthorized")
        if USERS.get(login) != password:
            return PlainTextResponse("Login failed. Invalid username or password", status_code=401)
        return None

    async def login(self, request: Request) -> Response:
        """The public API's token login (CONTRACTS.md): JSON username and password."""
        try:
            body = await request.json()
        except ValueError:
            return error(400, "The body must be JSON")
        if not isinstance(body, dict) or USERS.get(str(body.get("username"))) != body.get("password"):
            return PlainTextResponse("Login failed. Invalid username or password", status_code=401)
        return JSONResponse({"token": uuid.uuid4().hex})

    def _app_and_stage(self, request: Request) -> tuple[str, str] | Response:
        app = request.path_params["app"]
        if app not in SMALL_APPS:
            return error(404, f"Small app '{app}' not found")
        stage = request.query_params.get("stage", "production")
        if stage not in STAGES:
            return error(400, f"Unknown stage '{stage}'")
        return app, stage

    async def etl_config(self, request: Request) -> Response:
        if (denied := self._authenticate(request)) is not None:
            return denied
        found = self._app_and_stage(request)
        if isinstance(found, Response):
            return found
        app, _stage = found
        return JSONResponse(
            {
                "DATA_SOURCES": [
                    {"domain": d, "file": f}
                    for d, f in zip(SMALL_APPS[app]["domains"], SMALL_APPS[app]["sources"], strict=False)
                ]
            }
        )

    # Upload

    async def upload(self, request: Request) -> Response:
        if (denied := self._authenticate(request)) is not None:
            return denied
        found = self._app_and_stage(request)
        if isinstance(found, Response):
            return found
        app, stage = found
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return error(400, "Expected a multipart/form-data body")
        async with request.form(max_part_size=64 * 1024 * 1024) as form:
            raw_data = form.get("data")
            upload = form.get("file")
            if raw_data is None or upload is None or isinstance(upload, str):
                return error(400, "Both 'data' and 'file' parts are required")
            try:
                data = json.loads(raw_data if isinstance(raw_data, str) else (await raw_data.read()).decode())
                filename = data["filename"]
            except (ValueError, KeyError, TypeError):
                return error(400, "'data' must be JSON with a 'filename'")
            if filename not in SMALL_APPS[app]["sources"]:
                return error(400, f"Data source '{filename}' is not defined in the etl_config of '{app}'")
            present = [f for f in DZ_FIELDS if f in form]
            if present and len(present) != len(DZ_FIELDS):
                return error(
                    400, f"Incomplete chunk fields: missing {', '.join(f for f in DZ_FIELDS if f not in form)}"
                )
            chunk_path = os.path.join(self._workdir, uuid.uuid4().hex)
            with open(chunk_path, "wb") as out:
                while block := await upload.read(1024 * 1024):
                    out.write(block)
            if not present:
                return self._store(app, stage, filename, [chunk_path])
            try:
                dz = {f: (str(form[f]) if f == "dzuuid" else int(str(form[f]))) for f in DZ_FIELDS}
            except ValueError:
                return error(400, "Chunk fields must be integers")
        return self._chunk(app, stage, filename, dz, chunk_path)

    def _chunk(self, app: str, stage: str, filename: str, dz: dict[str, Any], chunk_path: str) -> Response:
        size = os.path.getsize(chunk_path)
        index, count, offset, total = (
            dz["dzchunkindex"],
            dz["dztotalchunkcount"],
            dz["dzchunkbyteoffset"],
            dz["dztotalfilesize"],
        )
        if count < 1 or not 0 <= index < count:
            return error(400, f"dzchunkindex {index} out of range for {count} chunks")
        with self.lock:
            progress = self.uploads.setdefault(
                dz["dzuuid"], {"chunks": {}, "count": count, "total": total, "chunk_size": None}
            )
            if (progress["count"], progress["total"]) != (count, total):
                return error(400, "Chunk fields disagree with earlier chunks of this dzuuid")
            if index > 0:
                chunk_size = offset // index
                if offset % index or (progress["chunk_size"] not in (None, chunk_size)):
                    return error(400, f"dzchunkbyteoffset {offset} is not index x chunk size")
                progress["chunk_size"] = chunk_size
            elif offset != 0:
                return error(400, "The first chunk must have dzchunkbyteoffset 0")
            progress["chunks"][index] = chunk_path
            self.requests.append({"path": f"/{app}/data/sources", "chunk": index, "bytes": size})
            if index != count - 1:
                return JSONResponse({"status": "chunk received", "dzuuid": dz["dzuuid"], "dzchunkindex": index})
            missing = [i for i in range(count) if i not in progress["chunks"]]
            if missing:
                return error(400, f"Missing chunks {missing} for dzuuid {dz['dzuuid']}")
            del self.uploads[dz["dzuuid"]]
            paths = [progress["chunks"][i] for i in range(count)]
        assembled = sum(os.path.getsize(p) for p in paths)
        if assembled != total:
            return error(400, f"dztotalfilesize is {total} but {assembled} bytes arrived")
        return self._store(app, stage, filename, paths)

    def _store(self, app: str, stage: str, filename: str, paths: list[str]) -> Response:
        digest = hashlib.sha256()
        final = os.path.join(self._workdir, f"{app}-{stage}-{filename}")
        with open(final, "wb") as out:
            for path in paths:
                with open(path, "rb") as part:
                    while block := part.read(1024 * 1024):
                        digest.update(block)
                        out.write(block)
                os.remove(path)
        size = os.path.getsize(final)
        with self.lock:
            self.sources[f"{app}/{stage}/{filename}"] = {
                "size": size,
                "sha256": digest.hexdigest(),
                "chunks": len(paths),
            }
        return JSONResponse({"status": "uploaded", "filename": filename, "size": size, "sha256": digest.hexdigest()})

    # Operations

    async def _json_body(self, request: Request) -> dict[str, Any] | Response:
        try:
            body = await request.json()
        except ValueError:
            return error(400, "The body must be JSON")
        if not isinstance(body, dict):
            return error(400, "The body must be a JSON object")
        return body

    async def _prelude(self, request: Request) -> tuple[str, str, dict[str, Any]] | Response:
        """What every operation request checks first: auth, small app, stage, a JSON body."""
        if (denied := self._authenticate(request)) is not None:
            return denied
        found = self._app_and_stage(request)
        if isinstance(found, Response):
            return found
        body = await self._json_body(request)
        if isinstance(body, Response):
            return body
        return found[0], found[1], body

    async def run_operations(self, request: Request) -> Response:
        checked = await self._prelude(request)
        if isinstance(checked, Response):
            return checked
        app, stage, body = checked
        operations = body.get("operations")
        if not isinstance(operations, list) or not operations:
            return error(400, "'operations' must be a non-empty list")
        unknown = [op for op in operations if op not in OPERATIONS + EXTRA_OPERATIONS]
        if unknown:
            return error(400, f"Unknown operations: {', '.join(map(str, unknown))}")
        return self._start(request, (app, stage), operations, body)

    async def partial(self, request: Request) -> Response:
        checked = await self._prelude(request)
        if isinstance(checked, Response):
            return checked
        app, stage, body = checked
        domains = body.get("input_domains")
        if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
            return error(400, "'input_domains' must be a list of domain names")
        unknown = [d for d in domains if d not in SMALL_APPS[app]["domains"]]
        if unknown:
            return error(400, f"Unknown input domains: {', '.join(unknown)}")
        if request.url.path.endswith("/data/preprocess"):
            operations = ["preprocess_data_sources"]
        else:
            operations = ["populate_basemaps", "populate_reports", "populate_dashboards"]
            if "release" in request.query_params:
                operations.append("release")
        return self._start(request, (app, stage), operations, body)

    def _start(self, request: Request, found: tuple[str, str], operations: list[str], body: dict[str, Any]) -> Response:
        app, stage = found
        fault = self.take_fault("operation_failed", request)
        operation_id = str(uuid.uuid4())
        record = {
            "operation_id": operation_id,
            "app": app,
            "stage": stage,
            "operations": operations,
            "input_domains": body.get("input_domains"),
            "notify": request.query_params.get("notify", "true"),
            "started": time.monotonic(),
            "created_at": time.time(),
            "fail": (fault.message or "Preprocess failed: KeyError 'amount' in domain sales") if fault else None,
        }
        with self.lock:
            self.operations[operation_id] = record
            self.requests.append(
                {"path": request.url.path, "operations": operations, "query": str(request.query_params)}
            )
        return JSONResponse(self._describe(record), status_code=202 if body.get("async", False) else 200)

    def _describe(self, record: dict[str, Any]) -> dict[str, Any]:
        # pending for one delay, running for one delay per operation, then done.
        count = len(record["operations"])
        stage = self.stage(record["started"], count + 1)
        if stage == 0:
            status, current = "pending", None
        elif stage <= count:
            status, current = "running", record["operations"][stage - 1]
        else:
            status, current = ("failed" if record["fail"] else self.final_status), None
        steps = []
        for i, name in enumerate(record["operations"], start=1):
            if stage > i:
                s = "success"
            elif stage == i:
                s = "running"
            else:
                s = "pending"
            if status == "failed" and i == count:
                s = "failed"
            steps.append({"name": name, "status": s})
        return {
            "operation_id": record["operation_id"],
            "small_app": record["app"],
            "stage": record["stage"],
            "status": status,
            "current_operation": current,
            "operations": steps,
            "error": record["fail"] if status == "failed" else None,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record["created_at"])),
        }

    async def get_operation(self, request: Request) -> Response:
        if (denied := self._authenticate(request)) is not None:
            return denied
        found = self._app_and_stage(request)
        if isinstance(found, Response):
            return found
        record = self.operations.get(request.path_params["operation_id"])
        if record is None or record["app"] != found[0]:
            return error(404, "Operation not found")
        described = self._describe(record)
        if described["status"] != "success" and (odd := self.take_fault("unknown_status", request)):
            described["status"] = odd.message or "paused"  # a word the portal does not know
        return JSONResponse(described)
