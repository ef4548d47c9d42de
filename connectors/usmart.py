"""uSmart: replace (or add) a dataset file through a signed S3 PUT, then refresh output pipelines.

Docs: shared/platforms/usmart.txt; CONTRACTS.md section 3. Every action is
``POST {base}/org/<orgGUID>/<action>`` with the ``api-key-id`` / ``api-key-secret``
headers. The upload is ``s3:generatePutRequest`` then a PUT of the raw bytes to the
signed URL, with the returned Content-Type and no API key headers.

Not published, chosen with the simulator (docs/platforms/usmart.md): the ``dataset:view``
answer (``result.files[]`` and ``result.resourceContainers[]``), the bodies of
``file:create`` and ``resourceContainer:*``, and following a pipeline run through the
``status`` of its resource container in ``dataset:view``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Annotated, Any

import httpx
from pydantic import AfterValidator, Field, SecretStr, field_validator

from .base import (
    AuthenticationError,
    Connector,
    ConnectorError,
    Done,
    Failed,
    FilePayload,
    InvalidResponse,
    NoParams,
    NotFound,
    PermanentError,
    Schema,
    StepContext,
    StepOutcome,
    StepSpec,
    Waiting,
)
from .http import HttpClient, iter_file

#: PUT attempts per upload step: a signed URL that expired before the PUT started is
#: replaced by a fresh one, at most twice.
PUT_ATTEMPTS = 3
#: Pipeline run states, as the platform (our simulator) reports them.
PIPELINE_DONE = {"processed"}
PIPELINE_FAILED = {"failed", "error"}


def _guid(value: str) -> str:
    """A GUID in its canonical lower-case form; ValueError otherwise."""
    try:
        return str(uuid.UUID(value.strip()))
    except (ValueError, AttributeError):
        raise ValueError("must be a GUID like 28ccd497-7acd-4470-bd17-721d5cbbd6ef") from None


def _optional_guid(value: str) -> str:
    return _guid(value) if value.strip() else ""


def _guid_arg(value: str) -> str:
    """``_guid`` for a method argument: a bad one is a PermanentError, like every connector error."""
    try:
        return _guid(value)
    except ValueError:
        raise PermanentError(f"{value!r} is not a GUID") from None


Guid = Annotated[str, AfterValidator(_guid)]
OptionalGuid = Annotated[str, AfterValidator(_optional_guid)]


def base_name(name: str) -> str:
    """The last component of a path, whichever separator it uses.

    The platform shows ``fileName`` as is, folders included (usmart.txt warns about it).
    """
    return re.split(r"[\\/]", name)[-1]


class UsmartCredentials(Schema):
    organisation_guid: Guid = Field(
        title="Organisation GUID",
        description="The GUID between …/org/ and /dcat/ in your organisation's DCAT URL",
    )
    api_key_id: str = Field(title="API key id", min_length=1, max_length=200)
    api_key_secret: SecretStr = Field(title="API key secret", json_schema_extra={"widget": "password"})
    test_dataset_guid: OptionalGuid = Field(
        default="",
        title="Dataset to test with",
        description="Optional: a dataset GUID the key can view. Without it the test asks for an upload URL.",
    )


class UsmartTarget(Schema):
    dataset_guid: Guid = Field(title="Dataset GUID")
    file_guid: OptionalGuid = Field(
        default="",
        title="File GUID",
        description="The file to replace with a new revision. Empty: each release adds a new file to the dataset.",
    )
    file_name: str = Field(
        default="",
        title="File name on uSmart",
        description="The name shown on the platform, e.g. readings.csv. Empty: the uploaded file's name.",
        max_length=255,
    )
    pipeline_guids: list[Guid] = Field(
        default_factory=list,
        title="Output pipelines to process",
        description="Resource container GUIDs of the dataset, processed after the upload in this order",
    )

    @field_validator("file_name")
    @classmethod
    def _plain_file_name(cls, value: str) -> str:
        if value and (base_name(value) != value or value in (".", "..")):
            raise ValueError("a file name, not a path")
        return value

    @field_validator("pipeline_guids")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


def s3_error_message(response: httpx.Response) -> str:
    """``Code: Message`` of an S3 XML error, never the raw body.

    S3's SignatureDoesNotMatch body quotes the signature and string to sign, which
    must not reach a message.
    """
    code = re.search(r"<Code>([^<]{1,100})</Code>", response.text)
    message = re.search(r"<Message>([^<]{1,300})</Message>", response.text)
    parts = [m.group(1) for m in (code, message) if m]
    return ": ".join(parts) or f"HTTP {response.status_code} {response.reason_phrase}"


class _ExpiredUrl(Exception):
    """The signed URL had expired when the PUT reached the storage."""


class _ShortFile(Exception):
    """The stored file held fewer bytes than its recorded size."""


class UsmartConnector(Connector):
    slug = "usmart"
    label = "uSmart"
    Credentials = UsmartCredentials
    Target = UsmartTarget
    Params = NoParams
    needs_file = True

    def __init__(self, credentials: UsmartCredentials, *, base_url: str, timeout: float = 30.0):
        super().__init__(credentials, base_url=base_url, timeout=timeout)
        self.http = HttpClient(
            f"{self.base_url}/org/{credentials.organisation_guid}",
            timeout=timeout,
            headers={
                "api-key-id": credentials.api_key_id,
                "api-key-secret": credentials.api_key_secret.get_secret_value(),
                "Content-Type": "application/json",
            },
        )
        # The signed PUT goes to storage, not to the API: a client of its own, without
        # the API key headers, whose errors are read as S3's XML.
        self.storage = HttpClient("", timeout=timeout, error_parser=s3_error_message)

    # Actions

    def _action(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST one action; its ``result`` object. Refused keys get a clear message."""
        try:
            answer = self.http.json("POST", f"/{action}", json=body)
        except AuthenticationError as exc:
            if exc.status_code == 403:
                raise AuthenticationError(
                    f"uSmart refused {action} for this API key (it needs the Provider role or higher): {exc.message}",
                    status_code=403,
                ) from None
            raise AuthenticationError(
                f"uSmart refused the API key id or secret: {exc.message}", status_code=exc.status_code
            ) from None
        result = answer.get("result") if isinstance(answer, dict) else None
        if not isinstance(result, dict):
            raise InvalidResponse(f"uSmart's {action} answered without a result object")
        return result

    def test_connection(self) -> str:
        """``dataset:view`` of the test dataset (any role may view), else ``s3:generatePutRequest``,
        which also proves the Provider role releases need and leaves nothing behind."""
        if self.credentials.test_dataset_guid:
            dataset = self.view_dataset(self.credentials.test_dataset_guid)
            return f"Connected to uSmart: the key can view dataset '{dataset['title']}'"
        self._put_request("connection-test.csv")
        return f"Connected to uSmart organisation {self.credentials.organisation_guid}: the key may upload files"

    @classmethod
    def describe_target(cls, target: UsmartTarget) -> str:
        what = f"file {target.file_guid}" if target.file_guid else "a new file"
        name = f" as {target.file_name}" if target.file_name else ""
        pipelines = f", then {len(target.pipeline_guids)} pipeline(s)" if target.pipeline_guids else ""
        return f"Dataset {target.dataset_guid}: {what}{name}{pipelines}"

    # Browse

    def view_dataset(self, dataset_guid: str) -> dict[str, Any]:
        """The dataset's title, files and output pipelines, normalised::

            {"guid", "title", "files": [{"guid", "name", "size", "revision"}],
             "pipelines": [{"guid", "name", "pipeline_id", "status", "status_message", "process_id"}]}

        Raises NotFound for a dataset the organisation does not hold.
        """
        data = self._action("dataset:view", {"datasetGUID": _guid_arg(dataset_guid)})
        files = [
            {
                "guid": f.get("fileGUID"),
                "name": f.get("fileName"),
                "size": f.get("fileSize"),
                "revision": f.get("revision"),
            }
            for f in data.get("files") or []
            if isinstance(f, dict) and f.get("fileGUID")
        ]
        pipelines = [
            self._pipeline(p)
            for p in data.get("resourceContainers") or []
            if isinstance(p, dict) and p.get("resourceContainerGUID")
        ]
        return {
            "guid": data.get("datasetGUID", dataset_guid),
            "title": data.get("title") or "",
            "files": files,
            "pipelines": pipelines,
        }

    @staticmethod
    def _pipeline(container: dict[str, Any]) -> dict[str, Any]:
        return {
            "guid": container.get("resourceContainerGUID"),
            "name": container.get("name") or container.get("pipelineId") or "",
            "pipeline_id": container.get("pipelineId") or "",
            "status": str(container.get("status") or "").lower(),
            "status_message": container.get("statusMessage") or "",
            "process_id": container.get("processId") or "",
        }

    def create_pipeline(self, dataset_guid: str, pipeline_id: str) -> dict[str, Any]:
        """Add an output pipeline (``resourceContainer:create``); the new pipeline, normalised
        as in ``view_dataset``. The platform refuses unknown or unsupported pipeline ids."""
        container = self._action(
            "resourceContainer:create", {"datasetGUID": _guid_arg(dataset_guid), "pipelineId": pipeline_id}
        )
        if not container.get("resourceContainerGUID"):
            raise InvalidResponse("uSmart's resourceContainer:create answered without a resourceContainerGUID")
        return self._pipeline(container)

    # Releases

    @classmethod
    def plan(cls, target: UsmartTarget, params: NoParams) -> list[StepSpec]:
        steps = [
            StepSpec("put_request", "Upload the file to uSmart's storage", idempotent=True),
            StepSpec(
                "revision",
                "Replace the file with a new revision" if target.file_guid else "Add the file to the dataset",
            ),
        ]
        steps += [StepSpec(f"pipeline:{guid}", f"Process output pipeline {guid}") for guid in target.pipeline_guids]
        return steps

    def run_step(self, step: StepSpec, ctx: StepContext) -> StepOutcome:
        target: UsmartTarget = ctx.target
        if step.name == "put_request":
            return self._upload(target, ctx)
        if step.name == "revision":
            return self._revision(target, ctx)
        if not step.name.startswith("pipeline:"):
            raise PermanentError(f"Unknown uSmart step {step.name!r}")
        guid = step.name.split(":", 1)[1]
        container = self._action("resourceContainer:process", {"resourceContainerGUID": guid})
        # The run's own id when the platform gives one, to tell it from a later run.
        return self._pipeline_outcome(
            self._pipeline({"resourceContainerGUID": guid, **container}), container.get("processId") or guid
        )

    def check_step(self, step: StepSpec, ctx: StepContext) -> StepOutcome:
        """A pipeline's status as ``dataset:view`` shows it."""
        if not step.name.startswith("pipeline:"):
            return super().check_step(step, ctx)
        guid = step.name.split(":", 1)[1]
        dataset = self.view_dataset(ctx.target.dataset_guid)
        pipeline = next((p for p in dataset["pipelines"] if p["guid"] == guid), None)
        if pipeline is None:
            raise NotFound(f"Output pipeline {guid} is no longer in dataset {ctx.target.dataset_guid}")
        return self._pipeline_outcome(pipeline, ctx.remote_ref)

    def _pipeline_outcome(self, pipeline: dict[str, Any], ref: str) -> StepOutcome:
        status = pipeline["status"]
        message = status
        if pipeline["process_id"] and ref not in (pipeline["process_id"], pipeline["guid"]):
            # Someone queued a newer run: it processes at least our data, so follow it.
            message = f"{status} (a newer run {pipeline['process_id']} replaced ours)"
        output = {"pipeline": pipeline["guid"], "process_id": pipeline["process_id"]}
        if status in PIPELINE_DONE:
            return Done(message=f"{pipeline['name']} processed", remote_ref=ref, remote_status=status, output=output)
        if status in PIPELINE_FAILED:
            return Failed(
                pipeline["status_message"] or f"{pipeline['name']} failed",
                remote_ref=ref,
                remote_status=status,
                output=output,
            )
        return Waiting(remote_ref=ref, message=message, remote_status=status, output=output)

    # Upload

    def _file_name(self, target: UsmartTarget, payload: FilePayload) -> str:
        return target.file_name or base_name(payload.name)

    def _put_request(self, file_name: str) -> dict[str, str]:
        result = self._action("s3:generatePutRequest", {"fileName": file_name})
        if not all(isinstance(result.get(k), str) and result[k] for k in ("signedRequest", "contentType", "reference")):
            raise InvalidResponse(
                "uSmart's s3:generatePutRequest answered without signedRequest, contentType and reference"
            )
        if not result["signedRequest"].startswith(("https://", "http://")):
            raise InvalidResponse("uSmart's s3:generatePutRequest answered a signedRequest that is not an HTTP URL")
        return result

    def _check_target(self, target: UsmartTarget) -> None:
        """Refuse unknown GUIDs before sending a possibly large file."""
        dataset = self.view_dataset(target.dataset_guid)
        if target.file_guid and target.file_guid not in {f["guid"] for f in dataset["files"]}:
            raise NotFound(f"Dataset '{dataset['title']}' has no file {target.file_guid}")
        missing = [g for g in target.pipeline_guids if g not in {p["guid"] for p in dataset["pipelines"]}]
        if missing:
            raise NotFound(f"Dataset '{dataset['title']}' has no output pipeline {', '.join(missing)}")

    def _upload(self, target: UsmartTarget, ctx: StepContext) -> StepOutcome:
        payload = ctx.file
        if payload is None:
            raise PermanentError("This release has no file to upload")
        self._check_target(target)
        file_name = self._file_name(target, payload)
        for attempt in range(1, PUT_ATTEMPTS + 1):
            put = self._put_request(file_name)
            try:
                etag = self._put(put, payload)
            except _ExpiredUrl:
                continue  # the URL lapsed before the PUT began: ask for a fresh one
            return Done(
                message=f"Uploaded {payload.size} bytes"
                + (f" (signed URL renewed {attempt - 1}×)" if attempt > 1 else ""),
                # Never the signed URL: its query string is a credential until it expires.
                output={
                    "reference": put["reference"],
                    "content_type": put["contentType"],
                    "bytes": payload.size,
                    "etag": etag,
                    "file_name": file_name,
                    "attempts": attempt,
                },
            )
        raise ConnectorError(
            f"uSmart's signed upload URL had expired each of {PUT_ATTEMPTS} times"
            " before the upload started (clock skew?)"
        )

    def _put(self, put: dict[str, str], payload: FilePayload) -> str:
        """PUT the file to the signed URL, streamed from disk; the ETag. Raises _ExpiredUrl."""
        with payload.open() as stream:
            body = self._counted(iter_file(stream, length=payload.size), payload.size)
            try:
                response = self.storage.request(
                    "PUT",
                    put["signedRequest"],
                    ok=(200, 201, 204),
                    content=body,
                    # An explicit length: httpx then sends the generator as is, not chunked
                    # (S3 refuses a PUT without Content-Length).
                    headers={"Content-Type": put["contentType"], "Content-Length": str(payload.size)},
                )
            except AuthenticationError as exc:
                if "expired" in exc.message.lower():
                    raise _ExpiredUrl from None
                # Not our credentials: a refused signature or Content-Type.
                raise PermanentError(
                    f"uSmart's storage refused the upload: {exc.message}", status_code=exc.status_code
                ) from None
            except _ShortFile as exc:
                raise PermanentError(
                    f"The stored file holds {exc.args[0]} bytes, not the {payload.size} recorded: upload it again"
                ) from None
        return response.headers.get("ETag", "").strip('"')

    @staticmethod
    def _counted(chunks: Iterator[bytes], expected: int) -> Iterator[bytes]:
        sent = 0
        for block in chunks:
            sent += len(block)
            yield block
        if sent != expected:
            raise _ShortFile(sent)

    # Revision

    def _revision(self, target: UsmartTarget, ctx: StepContext) -> StepOutcome:
        upload = ctx.results.get("put_request") or {}
        if not upload.get("reference") or ctx.file is None:
            raise PermanentError("Nothing was uploaded before the revision step")
        file_name = upload.get("file_name") or self._file_name(target, ctx.file)
        # The declared size is the size the portal recorded; the platform checks it
        # against the bytes it stored.
        body: dict[str, Any] = {"reference": upload["reference"], "fileName": file_name, "fileSize": ctx.file.size}
        if target.file_guid:
            action = "file:updateRevision"
            body["fileGUID"] = target.file_guid
        else:
            action = "file:create"
            body["datasetGUID"] = target.dataset_guid
        body["action"] = action
        try:
            result = self._action(action, body)
        except PermanentError as exc:
            if isinstance(exc, (AuthenticationError, NotFound)) or "filesize" not in exc.message.lower():
                raise
            raise PermanentError(
                f"uSmart refused {action}: the declared size ({ctx.file.size} bytes)"
                f" differs from the bytes it stored ({exc.message})",
                status_code=exc.status_code,
            ) from None
        file_guid = result.get("fileGUID") or target.file_guid
        revision = result.get("revision")
        verb = "Created file" if action == "file:create" else "Updated file"
        return Done(
            message=f"{verb} {file_name}" + (f", revision {revision}" if revision else ""),
            remote_ref=str(file_guid),
            output={
                "file_guid": file_guid,
                "revision": revision,
                "file_name": file_name,
                "file_size": ctx.file.size,
                "created": action == "file:create",
            },
        )
