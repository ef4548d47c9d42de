"""uSmart simulator (docs: shared/platforms/usmart.txt, CONTRACTS.md section 3).

Documented: ``POST /org/<orgGUID>/<action>`` with the ``api-key-id`` / ``api-key-secret``
headers and a JSON body; ``s3:generatePutRequest`` answers
``{"result": {"signedRequest", "contentType", "reference"}}``; the file goes up with a
PUT of the raw bytes to the signed URL (no API key headers); ``file:updateRevision``
takes ``reference, fileName, fileGUID, fileSize, action``.

Not published, chosen here (docs/platforms/usmart.md): the ``dataset:view`` answer, the
bodies of ``file:create`` and the ``resourceContainer:*`` actions, every response body
other than generatePutRequest's, the error bodies (``{"success": false, "message"}``)
and the pipeline states (created → queued → processing → processed | failed).

The signed URLs point at this simulator itself (``/s3/put/<reference>``) and behave
like S3 presigned PUTs: HMAC-signed, expiring, bound to the Content-Type, answered with
S3's XML errors. Bodies are streamed to disk, never held in memory.

The organisation's DCAT catalogue, our choice of what the docs' "DCAT link" serves:
``GET /org/<orgGUID>/dcat/public`` (public datasets, no key) and ``.../dcat/private``
(every dataset; the ``api-key-id`` / ``api-key-secret`` headers of any role), a DCAT-US
1.1 ``data.json``-style document whose ``@id`` is the catalogue URL (the docs find the
organisation GUID in it, between ``/org/`` and ``/dcat/``).

Platform fault modes (``POST /_sim/fail``): ``pipeline_failed`` (the next processed
pipeline ends failed; ``message`` is the reason), ``url_expired`` (the next PUT is
refused as expired). ``POST /_sim/config`` also takes ``url_ttl`` (seconds a signed URL
lives, 900 by default) and, to play other plausible uSmart servers (the real one is not
published): ``final_status`` (the word a finished run reports, "processed" by default),
``dcat`` (``"404"`` or ``"405"``: the catalogue path does not exist), ``error_style``
(``"nested"``: errors as ``{"success": false, "error": {"status", "message"}}`` and a failed
pipeline's reason in ``errorLog`` instead of ``statusMessage``).
"""

from __future__ import annotations

import hashlib
import hmac
import mimetypes
import secrets
import tempfile
import time
import uuid
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from .core import Simulator

ORG_GUID = "28ccd497-7acd-4470-bd17-721d5cbbd6ef"  # the example GUID of the public docs
#: key id -> (secret, role). Mutating actions need the Provider role (CONTRACTS.md).
API_KEYS = {
    "usmart-demo-key-id": ("usmart-demo-key-secret", "provider"),
    "usmart-viewer-key-id": ("usmart-viewer-key-secret", "viewer"),
}
READ_ACTIONS = {"dataset:view"}

DEMO_DATASET = "5f0c2a4e-8b1d-4c3a-9e6f-1a2b3c4d5e6f"
EMPTY_DATASET = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
SENSORS_FILE = "b3e1c6a0-2d4f-4e8a-9b1c-000000000001"
READINGS_FILE = "b3e1c6a0-2d4f-4e8a-9b1c-000000000002"
CSV_PIPELINE = "d7a41f2e-3c5b-4a69-8e0d-00000000000a"
API_PIPELINE = "d7a41f2e-3c5b-4a69-8e0d-00000000000b"

#: Output pipelines a dataset may have (pipelineId -> name). The docs list them in a
#: table no stored copy shows; "realtime-api" is the one they say is not supported.
PIPELINE_IDS = {
    "csv": "CSV download",
    "json": "JSON download",
    "geojson": "GeoJSON download",
    "xlsx": "Excel download",
    "api": "Data API",
}
UNSUPPORTED_PIPELINE_IDS = {"realtime-api"}

DEFAULT_URL_TTL = 900.0  # seconds a signed URL lives, unless /_sim/config says otherwise


#: How errors are written: "flat" ({"success": false, "message"}) or "nested" (set by /_sim/config).
ERROR_STYLE = {"style": "flat"}


def error(status: int, message: str) -> JSONResponse:
    if ERROR_STYLE["style"] == "nested":
        return JSONResponse({"success": False, "error": {"status": status, "message": message}}, status_code=status)
    return JSONResponse({"success": False, "message": message}, status_code=status)


def ok(result: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"success": True, "result": result})


def s3_error(status: int, code: str, message: str, **extra: str) -> Response:
    """An S3-style XML error. Like S3, SignatureDoesNotMatch quotes the signature it got:
    the connector must not pass the body through to users."""
    fields = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in extra.items())
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{escape(message)}</Message>{fields}"
        f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId></Error>"
    )
    return Response(body, status_code=status, media_type="application/xml")


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class UsmartSimulator(Simulator):
    slug = "usmart"
    default_delay = 1.0

    @classmethod
    def demo(cls, base_url: str) -> dict[str, Any]:
        """The demo organisation's provider key, and its readings file with the CSV pipeline."""
        key_id = "usmart-demo-key-id"
        return {
            "name": "uSmart (simulator)",
            "credentials": {"organisation_guid": ORG_GUID, "api_key_id": key_id, "api_key_secret": API_KEYS[key_id][0]},
            "mappings": [
                {
                    "dataset": "Air quality sensors",
                    "name": "Sensor readings on uSmart",
                    "target": {
                        "dataset_guid": DEMO_DATASET,
                        "dataset_title": "Air quality sensors",
                        "file_guid": READINGS_FILE,
                        "file_name": "readings.csv",
                        "pipeline_guids": [CSV_PIPELINE],
                        "pipeline_names": f"{CSV_PIPELINE}: {PIPELINE_IDS['csv']}",
                    },
                },
            ],
        }

    def reset(self) -> None:
        super().reset()
        # Stored bytes live in anonymous temporary files (already unlinked): closing one
        # frees its disk space, and nothing is left behind when the process is killed
        # (uvicorn re-raises SIGTERM, so atexit handlers never run).
        for upload in getattr(self, "uploads", {}).values():
            self._discard(upload)
        for dataset in getattr(self, "datasets", {}).values():
            for record in dataset["files"].values():
                self._discard(record)
        self._signing_key = secrets.token_bytes(32)
        self.url_ttl = DEFAULT_URL_TTL
        self.final_status = "processed"
        self.dcat_answer = ""  # "404" or "405": a server without the catalogue
        ERROR_STYLE["style"] = "flat"
        self.uploads: dict[str, dict[str, Any]] = {}  # reference -> signed upload
        self.requests: list[dict[str, Any]] = []
        self.datasets: dict[str, dict[str, Any]] = {
            DEMO_DATASET: {
                "org": ORG_GUID,
                "public": True,
                "title": "Air quality sensors",
                "description": "Sensor locations and hourly readings",
                "files": {
                    SENSORS_FILE: self._file_record(SENSORS_FILE, "sensors.csv", 2048),
                    READINGS_FILE: self._file_record(READINGS_FILE, "readings-2025.csv", 1_048_576),
                },
                "pipelines": {
                    CSV_PIPELINE: self._pipeline_record(CSV_PIPELINE, "csv", "processed"),
                    API_PIPELINE: self._pipeline_record(API_PIPELINE, "api", "processed"),
                },
            },
            EMPTY_DATASET: {
                "org": ORG_GUID,
                "public": False,
                "title": "Parking occupancy",
                "description": "A dataset waiting for its first file",
                "files": {},
                "pipelines": {},
            },
        }

    @staticmethod
    def _file_record(guid: str, name: str, size: int) -> dict[str, Any]:
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return {
            "fileGUID": guid,
            "fileName": name,
            "fileSize": size,
            "contentType": content_type,
            "revision": 1,
            "md5": None,
            "data": None,
            "updatedAt": now_iso(),
        }

    @staticmethod
    def _discard(record: dict[str, Any]) -> None:
        """Close (and so delete) the stored bytes of an upload or file record."""
        data = record.get("data")
        if data is not None:
            data.close()
            record["data"] = None

    @staticmethod
    def _pipeline_record(guid: str, pipeline_id: str, status: str) -> dict[str, Any]:
        return {
            "resourceContainerGUID": guid,
            "pipelineId": pipeline_id,
            "name": PIPELINE_IDS[pipeline_id],
            "status": status,  # the status before any run through this simulator
            "processId": None,
            "started": None,  # monotonic time of the current run
            "fail": None,  # the reason the current run will fail with
            "processedAt": now_iso() if status == "processed" else None,
            "runs": 0,
        }

    def state(self) -> dict[str, Any]:
        return {
            "url_ttl": self.url_ttl,
            "datasets": {guid: self._view(ds, guid) for guid, ds in self.datasets.items()},
            "uploads": {ref: {k: v for k, v in up.items() if k != "data"} for ref, up in self.uploads.items()},
            "requests": self.requests[-50:],
        }

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/org/{org}/dcat/{visibility}", self.dcat, methods=["GET"]),
            Route("/org/{org}/{action}", self.action, methods=["POST"]),
            Route("/s3/put/{reference:path}", self.put_object, methods=["PUT"]),
        ]

    async def _control_config(self, request: Request) -> Response:
        """The base options plus ``url_ttl``, the lifetime of new signed URLs in seconds."""
        body = await request.json()  # Starlette caches it: the base class reads it again
        if "url_ttl" in body:
            self.url_ttl = float(body["url_ttl"])
        if "final_status" in body:
            self.final_status = str(body["final_status"])
        if "dcat" in body:
            self.dcat_answer = str(body["dcat"])
        if "error_style" in body:
            ERROR_STYLE["style"] = str(body["error_style"])
        await super()._control_config(request)
        return JSONResponse({"ok": True, "delay": self.delay, "url_ttl": self.url_ttl})

    # DCAT catalogue

    def _key_role(self, request: Request) -> str | Response:
        """The role of the request's API key, or the 401 to answer."""
        key_id = request.headers.get("api-key-id", "")
        secret = request.headers.get("api-key-secret", "")
        if not key_id or not secret:
            return error(401, "Missing api-key-id or api-key-secret header")
        known = API_KEYS.get(key_id)
        if known is None or not hmac.compare_digest(known[0], secret):
            return error(401, "Invalid API key")
        return known[1]

    async def dcat(self, request: Request) -> Response:
        """The organisation's catalogue: public datasets, or all of them with a key (private)."""
        org, visibility = request.path_params["org"], request.path_params["visibility"]
        if self.dcat_answer == "404":
            return PlainTextResponse("Not Found", status_code=404)
        if self.dcat_answer == "405":
            return PlainTextResponse("Method Not Allowed", status_code=405)
        if visibility not in ("public", "private"):
            return error(404, f"Unknown catalogue '{visibility}': public or private")
        if visibility == "private":
            role = self._key_role(request)
            if isinstance(role, Response):
                return role
        if org != ORG_GUID:
            return error(404, f"Organisation {org} not found")
        base = str(request.url.replace(query="")).rsplit(f"/org/{org}/", 1)[0]
        with self.lock:
            key_id = request.headers.get("api-key-id", "")
            self.requests.append({"action": f"dcat:{visibility}", "key_id": key_id, "body": {}})
            datasets = [
                self._dcat_dataset(guid, ds, base)
                for guid, ds in self.datasets.items()
                if ds["org"] == org and (visibility == "private" or ds["public"])
            ]
        return JSONResponse(
            {
                "@context": "https://project-open-data.cio.gov/v1.1/schema/catalog.jsonld",
                "@id": f"{base}/org/{org}/dcat/{visibility}",
                "@type": "dcat:Catalog",
                "conformsTo": "https://project-open-data.cio.gov/v1.1/schema",
                "dataset": datasets,
            },
            media_type="application/ld+json",
        )

    def _dcat_dataset(self, guid: str, dataset: dict[str, Any], base: str) -> dict[str, Any]:
        updated = [f["updatedAt"] for f in dataset["files"].values()]
        return {
            "@type": "dcat:Dataset",
            "identifier": guid,
            "title": dataset["title"],
            "description": dataset["description"],
            "accessLevel": "public" if dataset["public"] else "non-public",
            "modified": max(updated) if updated else "",
            "publisher": {"@type": "org:Organization", "name": "Demo organisation"},
            "distribution": [
                {"@type": "dcat:Distribution", "title": p["name"], "format": p["pipelineId"]}
                for p in dataset["pipelines"].values()
            ],
        }

    # Actions

    async def action(self, request: Request) -> Response:
        role = self._key_role(request)
        if isinstance(role, Response):
            return role
        key_id = request.headers["api-key-id"]
        org, action = request.path_params["org"], request.path_params["action"]
        if org != ORG_GUID:
            return error(404, f"Organisation {org} not found")
        handler = {
            "dataset:view": self.dataset_view,
            "s3:generatePutRequest": self.generate_put_request,
            "file:updateRevision": self.file_update_revision,
            "file:create": self.file_create,
            "resourceContainer:create": self.container_create,
            "resourceContainer:process": self.container_process,
        }.get(action)
        if handler is None:
            return error(404, f"Unknown action '{action}'")
        if not request.headers.get("content-type", "").startswith("application/json"):
            return error(400, "Content-Type must be application/json")
        try:
            body = await request.json()
        except ValueError:
            return error(400, "The body must be JSON")
        if not isinstance(body, dict):
            return error(400, "The body must be a JSON object")
        if body.get("action", action) != action:
            return error(400, f"Body action '{body['action']}' does not match the path action '{action}'")
        if action not in READ_ACTIONS and role != "provider":
            return error(403, f"{action} needs the Provider role or higher")
        with self.lock:
            self.requests.append({"action": action, "key_id": key_id, "body": body})
        return handler(request, org, body)

    def _dataset(self, org: str, guid: Any) -> dict[str, Any] | Response:
        dataset = self.datasets.get(str(guid))
        if dataset is None or dataset["org"] != org:
            return error(404, f"Dataset {guid} not found")
        return dataset

    def _view(self, dataset: dict[str, Any], guid: str) -> dict[str, Any]:
        """Our chosen dataset:view shape (the real one is not published)."""
        return {
            "datasetGUID": guid,
            "organisationGUID": dataset["org"],
            "title": dataset["title"],
            "description": dataset["description"],
            "files": [{k: v for k, v in f.items() if k != "data"} for f in dataset["files"].values()],
            "resourceContainers": [self._describe_pipeline(p) for p in dataset["pipelines"].values()],
        }

    def _describe_pipeline(self, pipeline: dict[str, Any]) -> dict[str, Any]:
        # A run is queued for one delay, processing for one delay, then processed or failed.
        status, message = pipeline["status"], ""
        if pipeline["started"] is not None:
            stage = self.stage(pipeline["started"], 2)
            status = ("queued", "processing", "failed" if pipeline["fail"] else self.final_status)[stage]
            if status == "failed":
                message = pipeline["fail"]
            if status == self.final_status and pipeline["processedAt"] is None:
                pipeline["processedAt"] = now_iso()
        reason: dict[str, Any] = {"statusMessage": message}
        if message and ERROR_STYLE["style"] == "nested":
            reason = {"statusMessage": "", "errorLog": [message]}  # the reason in a log instead
        return {
            **reason,
            "resourceContainerGUID": pipeline["resourceContainerGUID"],
            "pipelineId": pipeline["pipelineId"],
            "name": pipeline["name"],
            "status": status,
            "processId": pipeline["processId"],
            "processedAt": pipeline["processedAt"],
            "runs": pipeline["runs"],
        }

    def dataset_view(self, request: Request, org: str, body: dict[str, Any]) -> Response:
        dataset = self._dataset(org, body.get("datasetGUID"))
        if isinstance(dataset, Response):
            return dataset
        return ok(self._view(dataset, str(body["datasetGUID"])))

    def generate_put_request(self, request: Request, org: str, body: dict[str, Any]) -> Response:
        file_name = body.get("fileName")
        if not isinstance(file_name, str) or not file_name.strip():
            return error(400, "fileName is required")
        content_type = mimetypes.guess_type(file_name)[0] or "application/octet-stream"
        reference = f"uploads/{org}/{uuid.uuid4().hex}"
        expires = str(int(time.time() + self.url_ttl))
        # Our own base URL as the client reached it (".../usmart"): the request URL before
        # "/org/". (request.base_url is the outer app's root, without the mount prefix.)
        base = str(request.url.replace(query="")).rsplit(f"/org/{org}/", 1)[0]
        query = urlencode(
            {"expires": expires, "contentType": content_type, "signature": self._sign(reference, expires, content_type)}
        )
        with self.lock:
            self.uploads[reference] = {
                "reference": reference,
                "fileName": file_name,
                "contentType": content_type,
                "expires": int(expires),
                "stored": False,
                "size": None,
                "md5": None,
                "sha256": None,  # not in the platform's answers: the benchmark checks what arrived
                "data": None,
                "puts": 0,
                "api_key_headers": False,
            }
        return ok(
            {"signedRequest": f"{base}/s3/put/{reference}?{query}", "contentType": content_type, "reference": reference}
        )

    def _sign(self, reference: str, expires: str, content_type: str) -> str:
        return hmac.new(
            self._signing_key, f"PUT\n{reference}\n{expires}\n{content_type}".encode(), hashlib.sha256
        ).hexdigest()

    def _take_upload(self, body: dict[str, Any]) -> dict[str, Any] | Response:
        """The stored upload of ``body["reference"]`` if ``fileSize`` matches its bytes."""
        reference, size = body.get("reference"), body.get("fileSize")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            return error(400, "fileSize must be a non-negative integer")
        if not isinstance(body.get("fileName"), str) or not body["fileName"].strip():
            return error(400, "fileName is required")
        upload = self.uploads.get(str(reference))
        if upload is None:
            return error(400, f"Unknown upload reference '{reference}'")
        if not upload["stored"]:
            return error(400, f"Nothing was uploaded to reference '{reference}'")
        if upload["size"] != size:
            return error(
                400, f"fileSize {size} does not match the {upload['size']} bytes uploaded to reference '{reference}'"
            )
        return upload

    def _store_revision(self, record: dict[str, Any], upload: dict[str, Any], file_name: str) -> None:
        # The upload becomes the file's current revision; the previous one is dropped.
        self._discard(record)
        record.update(
            fileName=file_name,
            fileSize=upload["size"],
            md5=upload["md5"],
            sha256=upload.get("sha256"),
            contentType=upload["contentType"],
            data=upload["data"],
            updatedAt=now_iso(),
        )
        del self.uploads[upload["reference"]]

    def file_update_revision(self, request: Request, org: str, body: dict[str, Any]) -> Response:
        guid = str(body.get("fileGUID"))
        with self.lock:
            found = [(ds_guid, ds) for ds_guid, ds in self.datasets.items() if ds["org"] == org and guid in ds["files"]]
            if not found:
                return error(404, f"File {guid} not found")
            ds_guid, dataset = found[0]
            upload = self._take_upload(body)
            if isinstance(upload, Response):
                return upload
            record = dataset["files"][guid]
            self._store_revision(record, upload, body["fileName"])
            record["revision"] += 1
        return ok(
            {
                "fileGUID": guid,
                "datasetGUID": ds_guid,
                "fileName": record["fileName"],
                "fileSize": record["fileSize"],
                "revision": record["revision"],
            }
        )

    def file_create(self, request: Request, org: str, body: dict[str, Any]) -> Response:
        with self.lock:
            dataset = self._dataset(org, body.get("datasetGUID"))
            if isinstance(dataset, Response):
                return dataset
            upload = self._take_upload(body)
            if isinstance(upload, Response):
                return upload
            guid = str(uuid.uuid4())
            record = self._file_record(guid, body["fileName"], upload["size"])
            self._store_revision(record, upload, body["fileName"])
            dataset["files"][guid] = record
        return ok(
            {
                "fileGUID": guid,
                "datasetGUID": str(body["datasetGUID"]),
                "fileName": record["fileName"],
                "fileSize": record["fileSize"],
                "revision": 1,
            }
        )

    def container_create(self, request: Request, org: str, body: dict[str, Any]) -> Response:
        pipeline_id = body.get("pipelineId")
        if pipeline_id in UNSUPPORTED_PIPELINE_IDS:
            return error(400, f"Pipeline '{pipeline_id}' is not supported through the API")
        if pipeline_id not in PIPELINE_IDS:
            return error(400, f"Unknown pipelineId '{pipeline_id}'; expected one of {', '.join(PIPELINE_IDS)}")
        with self.lock:
            dataset = self._dataset(org, body.get("datasetGUID"))
            if isinstance(dataset, Response):
                return dataset
            if any(p["pipelineId"] == pipeline_id for p in dataset["pipelines"].values()):
                return error(409, f"The dataset already has a '{pipeline_id}' output pipeline")
            guid = str(uuid.uuid4())
            dataset["pipelines"][guid] = pipeline = self._pipeline_record(guid, pipeline_id, "created")
            return ok(self._describe_pipeline(pipeline))

    def container_process(self, request: Request, org: str, body: dict[str, Any]) -> Response:
        guid = str(body.get("resourceContainerGUID"))
        with self.lock:
            found = [ds for ds in self.datasets.values() if ds["org"] == org and guid in ds["pipelines"]]
            if not found:
                return error(404, f"Resource container {guid} not found")
            pipeline = found[0]["pipelines"][guid]
            fault = self.take_fault("pipeline_failed", request)
            if fault is not None:
                reason = fault.message or "Pipeline failed: column 'timestamp' could not be parsed as a date"
            elif not found[0]["files"]:
                reason = "The dataset has no files to process"
            else:
                reason = None
            # A new run replaces any run in progress, as a re-queued job would.
            pipeline.update(processId=uuid.uuid4().hex, started=time.monotonic(), fail=reason, processedAt=None)
            pipeline["runs"] += 1
            return ok(self._describe_pipeline(pipeline))

    # The signed PUT (plays S3)

    async def put_object(self, request: Request) -> Response:
        reference = request.path_params["reference"]
        query = request.query_params
        expires, signature, content_type = (
            query.get("expires", ""),
            query.get("signature", ""),
            query.get("contentType", ""),
        )
        upload = self.uploads.get(reference)
        refusal: Response | None = None
        if upload is None or not signature or not expires:
            refusal = s3_error(403, "AccessDenied", "Access Denied")
        elif not hmac.compare_digest(signature, self._sign(reference, expires, content_type)):
            refusal = s3_error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided."
                " Check your key and signing method.",
                SignatureProvided=signature,
            )
        elif request.headers.get("content-type", "") != content_type:
            # S3 signs the Content-Type: another one makes the signature wrong.
            refusal = s3_error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided"
                f" (Content-Type must be {content_type}).",
                SignatureProvided=signature,
            )
        elif self.take_fault("url_expired", request) is not None or time.time() > int(expires):
            refusal = s3_error(
                403,
                "AccessDenied",
                "Request has expired",
                Expires=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(expires))),
                ServerTime=now_iso(),
            )
        elif "content-length" not in request.headers:
            refusal = s3_error(411, "MissingContentLength", "You must provide the Content-Length HTTP header.")
        if refusal is not None:
            # Read the body away so the client sees the answer rather than a reset connection.
            try:
                async for _ in request.stream():
                    pass
            except ClientDisconnect:
                pass
            return refusal
        assert upload is not None  # a missing upload was refused above
        declared = int(request.headers["content-length"])
        out = tempfile.TemporaryFile(prefix="usmart-sim-")  # noqa: SIM115 - kept as the stored file, closed on discard
        digest = hashlib.md5(usedforsecurity=False)
        sha256 = hashlib.sha256()  # not in uSmart's API: for tests that compare the bytes received
        size = 0
        try:
            # Streamed chunk by chunk to disk: a 2 GiB PUT never sits in memory.
            async for block in request.stream():
                out.write(block)
                digest.update(block)
                sha256.update(block)
                size += len(block)
        except ClientDisconnect:
            size = -1
        if size != declared:
            out.close()
            return s3_error(
                400,
                "IncompleteBody",
                "You did not provide the number of bytes specified by the Content-Length HTTP header",
            )
        with self.lock:
            if self.uploads.get(reference) is not upload:  # consumed or reset meanwhile
                out.close()
                return s3_error(403, "AccessDenied", "Access Denied")
            self._discard(upload)  # a repeated PUT overwrites, as on S3
            has_keys = "api-key-id" in request.headers or "api-key-secret" in request.headers
            upload.update(
                stored=True,
                size=size,
                md5=digest.hexdigest(),
                sha256=sha256.hexdigest(),
                data=out,
                puts=upload["puts"] + 1,
                api_key_headers=upload["api_key_headers"] or has_keys,
            )
        return Response(status_code=200, headers={"ETag": f'"{digest.hexdigest()}"'})
