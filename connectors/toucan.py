"""Toucan Toco: data source upload and preprocess / populate / release operations.

Docs: shared/platforms/toucan-toco.txt; CONTRACTS.md section 1 (chunk semantics from
Dropzone). The operation status endpoint is not documented: we follow
``GET /{app}/operations/{operation_id}``, as docs/simulators.md explains.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from .base import (
    Connector,
    Done,
    Failed,
    InvalidResponse,
    NotFound,
    NotSupported,
    Schema,
    StepContext,
    StepOutcome,
    StepSpec,
    Waiting,
)
from .errortext import error_sentence
from .http import HttpClient
from .statuses import known_status, unknown_status

#: Operation statuses (undocumented: the simulator's words, and plausible synonyms). Others are unknown.
OPERATION_DONE = {"success", "succeeded", "done", "complete", "completed"}
OPERATION_FAILED = {"failed", "failure", "error"}
OPERATION_RUNNING = {"pending", "queued", "started", "running", "in progress"}
Operation = Literal[
    "preprocess_data_sources", "populate_basemaps", "populate_reports", "populate_dashboards", "release"
]
OPERATIONS: tuple[Operation, ...] = (
    "preprocess_data_sources",
    "populate_basemaps",
    "populate_reports",
    "populate_dashboards",
    "release",
)
Stage = Literal["staging", "production"]
#: Dropzone's default chunk size (CONTRACTS.md): each chunk is one POST.
CHUNK_SIZE = 2_000_000

PARTIAL_PATHS = {
    # partial kind -> (path, extra query flag, label)
    "preprocess": ("data/preprocess", None, "Partial preprocess"),
    "populate": ("populate", None, "Partial populate"),
    "populate_release": ("populate", "release", "Partial populate and release"),
}


class ChunkReader(io.RawIOBase):
    """A read-only window ``[start, start + length)`` of a seekable binary stream.

    httpx's multipart encoder asks its length (``seek(0, 2)``/``tell()``), rewinds it
    (``seek(0)``) and reads it in blocks, so each Dropzone chunk streams from the stored file."""

    def __init__(self, stream: Any, *, start: int, length: int):
        super().__init__()
        self._stream, self._start, self._length, self._pos = stream, start, length, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = max(0, min(self._length, base + offset))
        return self._pos

    def read(self, size: int = -1) -> bytes:
        left = self._length - self._pos
        size = left if size is None or size < 0 else min(size, left)
        if size <= 0:
            return b""
        self._stream.seek(self._start + self._pos)
        block: bytes = self._stream.read(size)
        self._pos += len(block)
        return block

    def readinto(self, buffer: Any) -> int:
        block = self.read(len(buffer))
        buffer[: len(block)] = block
        return len(block)


class ToucanCredentials(Schema):
    login: str = Field(title="Login", description="A user with the contributor right on the small app")
    password: SecretStr = Field(title="Password")


class ToucanTarget(Schema):
    small_app: str = Field(title="Small app", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$", max_length=100)
    data_source: str = Field(
        title="Data source file name",
        description="The file name as defined in the small app's etl_config, e.g. sales.csv",
        max_length=255,
    )
    stage: Stage = Field(default="staging", title="Stage")

    @field_validator("data_source")
    @classmethod
    def _plain_file_name(cls, value: str) -> str:
        if "/" in value or "\\" in value or value in (".", ".."):
            raise ValueError("a file name, not a path")
        return value


class ToucanParams(Schema):
    mode: Literal["operations", "partial"] = Field(
        default="operations", title="Run", description="Whole operations, or a partial run by input domains"
    )
    operations: list[Operation] = Field(default_factory=lambda: list(OPERATIONS), title="Operations")
    # None for whole operations: a release records only what it ran.
    partial_kind: Literal["preprocess", "populate", "populate_release"] | None = Field(
        default=None, title="Partial run", description="For a partial run; preprocess when left blank"
    )
    input_domains: list[str] = Field(
        default_factory=list, title="Input domains", description="For a partial run: one domain name per line"
    )
    stage: Stage | None = Field(default=None, title="Stage", description="Defaults to the mapping's stage")
    notify: bool = Field(default=False, title="Notify users")
    upload: bool = Field(default=True, title="Upload the file first")

    @field_validator("input_domains")
    @classmethod
    def _clean_domains(cls, value: list[str]) -> list[str]:
        return [d.strip() for d in value if d.strip()]

    @model_validator(mode="after")
    def _complete(self) -> ToucanParams:
        if self.mode == "operations":
            # Keep the platform's order whatever order they were ticked in.
            ordered = [op for op in OPERATIONS if op in self.operations]
            object.__setattr__(self, "operations", ordered)
            object.__setattr__(self, "partial_kind", None)
        elif self.partial_kind is None:
            object.__setattr__(self, "partial_kind", "preprocess")
        if self.mode == "partial" and not self.input_domains:
            raise ValueError("a partial run needs at least one input domain")
        if not self.upload and self.mode == "operations" and not self.operations:
            raise ValueError("choose at least one operation, or upload the file")
        return self


class ToucanConnector(Connector[ToucanCredentials, ToucanTarget, ToucanParams]):
    slug = "toucan"
    label = "Toucan Toco"
    Credentials = ToucanCredentials
    Target = ToucanTarget
    Params = ToucanParams
    needs_file = True
    file_extensions = ("csv", "xlsx", "xls", "json", "txt", "tsv", "parquet")

    def __init__(self, credentials: ToucanCredentials, *, base_url: str, timeout: float = 30.0):
        super().__init__(credentials, base_url=base_url, timeout=timeout)
        self.http = self._own(
            HttpClient(
                self.base_url,
                timeout=timeout,
                auth=(credentials.login, credentials.password.get_secret_value()),
            )
        )

    # Connection

    def test_connection(self) -> str:
        """The documented token login proves the login and password without side effects."""
        answer = self.http.json(
            "POST",
            "/login",
            json={"username": self.credentials.login, "password": self.credentials.password.get_secret_value()},
        )
        if not isinstance(answer, dict) or not answer.get("token"):
            raise InvalidResponse("Toucan's login answered without a token")
        return f"Logged in to Toucan as {self.credentials.login}"

    @classmethod
    def describe_target(cls, target: ToucanTarget) -> str:
        return f"{target.small_app} / {target.data_source} ({target.stage})"

    def check_target(self, target: ToucanTarget) -> list[str]:  # type: ignore[override]  # narrower, as describe_target
        """The data source must be declared in the small app's etl_config (GET config/etl,
        as toucan-data-sdk reads it): an undeclared one is refused only at upload otherwise."""
        try:
            config = self.http.json("GET", f"/{target.small_app}/config/etl", params={"stage": target.stage})
        except NotFound:
            return [f"Toucan has no small app {target.small_app!r}"]
        sources = config.get("DATA_SOURCES", []) if isinstance(config, dict) else []
        files = [str(s.get("file")) for s in sources if isinstance(s, dict) and s.get("file")]
        if target.data_source not in files:
            declared = ", ".join(files) or "none"
            return [
                f"{target.data_source} is not declared in the etl_config of {target.small_app} "
                f"({target.stage}); declared: {declared}"
            ]
        return []

    # Releases

    @classmethod
    def plan(cls, target: ToucanTarget, params: ToucanParams) -> list[StepSpec]:
        steps = []
        if params.upload:
            steps.append(StepSpec("upload", f"Upload {target.data_source}", idempotent=True, sends_file=True))
        if params.mode == "partial":
            kind = params.partial_kind or "preprocess"
            steps.append(StepSpec(f"partial:{kind}", PARTIAL_PATHS[kind][2]))
        else:
            steps += [StepSpec(f"operation:{op}", op.replace("_", " ").capitalize()) for op in params.operations]
        return steps

    def run_step(self, step: StepSpec, ctx: StepContext[ToucanTarget, ToucanParams]) -> StepOutcome:
        target: ToucanTarget = ctx.target
        params: ToucanParams = ctx.params
        stage = params.stage or target.stage
        if step.name == "upload":
            return self._upload(target, stage, ctx)
        query: dict[str, Any] = {"stage": stage}
        if step.name.startswith("operation:"):
            query["notify"] = str(params.notify).lower()
            body = {"origin": "autofeed", "operations": [step.name.split(":", 1)[1]], "async": True}
            path = f"/{target.small_app}/operations"
        else:
            path_tail, flag, _label = PARTIAL_PATHS[step.name.split(":", 1)[1]]
            path = f"/{target.small_app}/{path_tail}"
            body = {"input_domains": params.input_domains, "async": True}
            if flag:
                query["notify"] = str(params.notify).lower()
        # `release` is a flag without a value: build the query by hand to keep it bare.
        query_string = "&".join(f"{k}={v}" for k, v in query.items())
        if step.name == "partial:populate_release":
            query_string += "&release"
        operation = self.http.json("POST", f"{path}?{query_string}", json=body)
        return self._outcome(operation)

    def check_step(self, step: StepSpec, ctx: StepContext[ToucanTarget, ToucanParams]) -> StepOutcome:
        target: ToucanTarget = ctx.target
        stage = ctx.params.stage or target.stage
        operation = self.http.json("GET", f"/{target.small_app}/operations/{ctx.remote_ref}", params={"stage": stage})
        return self._outcome(operation, ctx.output)

    # RECONCILE (issue 14): after a lost answer, ask Toucan what happened.

    def reconcile_step(self, step: StepSpec, ctx: StepContext[ToucanTarget, ToucanParams]) -> StepOutcome:
        """Toucan can look an operation up by id only, and has no list of operations: with
        the id stored (the answer came back before the worker died) it says where the
        operation is; without one it cannot say, and a person decides."""
        if step.name == "upload":
            raise NotSupported("the upload is sent again safely")  # idempotent: never reconciled
        if ctx.remote_ref:
            return self.check_step(step, ctx)
        raise NotSupported("Toucan has no way to find an operation whose id never came back")

    def _outcome(self, operation: Any, previous: Mapping[str, Any] | None = None) -> StepOutcome:
        """Done, Failed or Waiting from an operation; a status word not known here is ``unknown_status``."""
        previous = previous or {}
        if not isinstance(operation, dict) or not operation.get("operation_id"):
            raise InvalidResponse("Toucan answered an operation without an operation_id")
        ref = str(operation["operation_id"])
        word = str(operation.get("status") or "")
        status = " ".join(word.lower().split())
        output = {"operations": operation.get("operations", [])}
        if status in OPERATION_DONE:
            return Done(message="Operation succeeded", remote_ref=ref, remote_status=status, output=output)
        if status in OPERATION_FAILED:
            # The platform's words, however it nests them: never a Python repr of its JSON.
            reason = error_sentence(operation.get("error")) or "The operation failed"
            return Failed(reason, remote_ref=ref, remote_status=status, output=output)
        if status in OPERATION_RUNNING:
            current = operation.get("current_operation")
            message = f"{status}: {current}" if current else status
            output = known_status(output, previous)
            return Waiting(remote_ref=ref, message=message, remote_status=status, output=output)
        return unknown_status(
            platform="Toucan", word=word, what=f"operation {ref}", remote_ref=ref, output={**previous, **output}
        )

    def _upload(self, target: ToucanTarget, stage: str, ctx: StepContext[ToucanTarget, ToucanParams]) -> StepOutcome:
        payload = ctx.file
        if payload is None:
            from .base import PermanentError

            raise PermanentError("This release has no file to upload")
        count = max(1, math.ceil(payload.size / CHUNK_SIZE))
        data = json.dumps({"filename": target.data_source})
        answer: Any = None
        with payload.open() as stream:
            for index in range(count):
                offset = index * CHUNK_SIZE
                length = min(CHUNK_SIZE, payload.size - offset)
                # httpx reads the window in 64 KiB blocks as it sends: the chunk is never in memory.
                chunk = ChunkReader(stream, start=offset, length=length)
                fields = {
                    "data": (None, data),
                    "file": (target.data_source, chunk, "application/octet-stream"),
                    # Dropzone's fields, sent as text/plain like the documented curl.
                    "dzuuid": (None, ctx.release_key, "text/plain"),
                    "dztotalfilesize": (None, str(payload.size), "text/plain"),
                    "dztotalchunkcount": (None, str(count), "text/plain"),
                    "dzchunkbyteoffset": (None, str(offset), "text/plain"),
                    "dzchunkindex": (None, str(index), "text/plain"),
                    "dzchunksize": (None, str(CHUNK_SIZE), "text/plain"),
                }
                answer = self.http.json(
                    "POST",
                    f"/{target.small_app}/data/sources",
                    params={"validation": "false", "stage": stage},
                    files=fields,
                )
        size = answer.get("size") if isinstance(answer, dict) else None
        return Done(
            message=f"Uploaded {payload.size} bytes in {count} chunk{'s' if count > 1 else ''}",
            output={"chunks": count, "bytes": payload.size, "platform_size": size},
        )
