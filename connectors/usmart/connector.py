"""The uSmart connector: reads, browse, actions and the release steps.

See the package's docstring for the API, and docs/platforms/usmart.md for our choices.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from ..base import (
    Action,
    ActionResult,
    AuthenticationError,
    Choice,
    Connector,
    ConnectorError,
    Done,
    Failed,
    FilePayload,
    InvalidResponse,
    NoParams,
    NotFound,
    NotSent,
    NotSupported,
    PermanentError,
    ReconcileOutcome,
    StepContext,
    StepOutcome,
    StepSpec,
    Table,
    Waiting,
    since_start,
)
from ..http import HttpClient, iter_file
from ..statuses import known_status, unknown_status
from .client import DCAT, DCAT_PATH, READS, first, pipeline, s3_error_message, text
from .parameters import (
    GUID_RE,
    base_name,
    canonical_guid,
    format_pipeline_names,
    guid_arg,
    parse_pipeline_names,
    split_guids,
)
from .presentation import bytes_text, pipeline_table
from .schemas import CreatePipelineParams, UsmartCredentials, UsmartTarget

#: PUT attempts per upload step: a signed URL that expired before the PUT started is
#: replaced by a fresh one, at most twice.
PUT_ATTEMPTS = 3
#: Pipeline run states, as the platform (our simulator) reports them.
#: The docs name no final status: "processed" is the simulator's, and the plausible synonyms
#: a real server may answer are accepted too (docs/platforms/usmart.md). Any other word is
#: unknown: shown as it came, and failed after MAX_UNKNOWN_STATUSES answers in a row.
PIPELINE_DONE = {"processed", "complete", "completed", "success", "succeeded", "done"}
PIPELINE_FAILED = {"failed", "failure", "error", "errored"}
PIPELINE_RUNNING = {"queued", "pending", "waiting", "started", "running", "processing", "in progress", "in_progress"}


class _ExpiredUrl(Exception):
    """The signed URL had expired when the PUT reached the storage."""


class _ShortFile(Exception):
    """The stored file held fewer bytes than its recorded size."""


class UsmartConnector(Connector[UsmartCredentials, UsmartTarget, NoParams]):
    slug = "usmart"
    label = "uSmart"
    Credentials = UsmartCredentials
    Target = UsmartTarget
    Params = NoParams
    needs_file = True
    actions = (
        Action(
            "dataset",
            "Dataset on uSmart",
            auto=True,
            description="The dataset's files and output pipelines as uSmart reports them (dataset:view),"
            " refreshed every 10 s.",
        ),
        Action(
            "create_pipeline",
            "Add an output pipeline",
            role="manage",
            mutating=True,
            params=CreatePipelineParams,
            description="resourceContainer:create adds an output pipeline to the dataset on uSmart. To have"
            " releases process it, edit the mapping and pick it with Browse.",
        ),
    )

    def __init__(self, credentials: UsmartCredentials, *, base_url: str, timeout: float = 30.0):
        super().__init__(credentials, base_url=base_url, timeout=timeout)
        self.http = self._own(
            HttpClient(
                f"{self.base_url}/org/{credentials.organisation_guid}",
                timeout=timeout,
                headers={
                    "api-key-id": credentials.api_key_id,
                    "api-key-secret": credentials.api_key_secret.get_secret_value(),
                    "Content-Type": "application/json",
                },
            )
        )
        # The signed PUT goes to storage, not to the API: a client of its own, without
        # the API key headers, whose errors are read as S3's XML.
        self.storage = self._own(HttpClient("", timeout=timeout, error_parser=s3_error_message))

    # Calls

    @staticmethod
    def _platform_says(exc: ConnectorError) -> str:
        """The platform's own words in an error from HttpClient, without the method and URL."""
        return re.sub(r"^.*? answered \d{3}: ", "", exc.message, count=1, flags=re.S)

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        """One API request; its decoded JSON. Refused keys get a clear message."""
        try:
            return self.http.json(method, path, **kwargs)
        except AuthenticationError as exc:
            if exc.status_code == 403:
                # Any role may read (CONTRACTS.md); writes need Provider or higher.
                role = "" if what in READS else " (it needs the Provider role or higher)"
                raise AuthenticationError(
                    f"uSmart refused {what} for this API key{role}: {exc.message}", status_code=403
                ) from None
            raise AuthenticationError(
                f"uSmart refused the API key id or secret: {exc.message}", status_code=exc.status_code
            ) from None

    def _action(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST one action; its ``result`` object."""
        answer = self._call("POST", f"/{action}", action, json=body)
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
        """Names where Browse recorded them, GUIDs otherwise, e.g. "Air quality sensors:
        new revision of readings.csv, then CSV download, Data API"."""
        dataset = target.dataset_title or f"Dataset {target.dataset_guid}"
        if target.file_guid:
            what = f"new revision of {target.file_name or 'file ' + target.file_guid}"
        else:
            what = "a new file" + (f" as {target.file_name}" if target.file_name else "")
        pipelines = ", ".join(target.pipeline_label(g) for g in target.pipeline_guids)
        return f"{dataset}: {what}" + (f", then {pipelines}" if pipelines else "")

    def check_target(self, target: UsmartTarget) -> list[str]:  # type: ignore[override]  # narrower, as describe_target
        """The dataset must exist, and hold the file to revise and the output pipelines to
        process (one read: ``dataset:view``); otherwise each release would fail at that step."""
        try:
            dataset = self.view_dataset(target.dataset_guid)
        except NotFound as exc:
            return [exc.message]
        title = dataset["title"] or target.dataset_guid
        problems = []
        files = {str(f["guid"]).lower(): f["name"] for f in dataset["files"]}
        if target.file_guid and target.file_guid.lower() not in files:
            names = ", ".join(sorted(str(n) for n in files.values())) or "none"
            problems.append(f"Dataset {title} has no file {target.file_guid}; its files: {names}")
        pipelines = {str(p["guid"]).lower(): p["name"] for p in dataset["pipelines"]}
        missing = [g for g in target.pipeline_guids if g.lower() not in pipelines]
        if missing:
            names = ", ".join(sorted(str(n) for n in pipelines.values())) or "none"
            problems.append(f"Dataset {title} has no output pipeline {', '.join(missing)}; its pipelines: {names}")
        return problems

    # Reads

    def list_datasets(self) -> list[dict[str, str]]:
        """Every dataset of the organisation, from its private DCAT catalogue, by title::

            [{"guid", "title", "description", "modified"}]

        The catalogue is DCAT-US 1.1 JSON (``dataset[]`` with ``identifier`` and ``title``);
        JSON-LD prefixed keys (``dcat:dataset``, ``dct:title``) are read too. Entries
        without a GUID in their identifier are skipped; of several, the last one counts.
        """
        try:
            answer = self._call("GET", DCAT_PATH, DCAT)
        except NotFound as exc:
            said = self._platform_says(exc)
            if re.search(r"organi[sz]ation", said, re.I):
                # The platform itself blames the organisation: then the GUID is the thing to check.
                raise NotFound(
                    f"uSmart has no DCAT catalogue for organisation {self.credentials.organisation_guid}"
                    f" (uSmart said: {said}): check the connection's Organisation GUID",
                    status_code=404,
                ) from None
            raise self._no_listing(404) from None
        except PermanentError as exc:
            if exc.status_code != 405:
                raise
            raise self._no_listing(405) from None
        entries = None
        if isinstance(answer, dict):
            entries = next((answer[k] for k in ("dataset", "dcat:dataset") if k in answer), None)
        if not isinstance(entries, list):
            raise InvalidResponse("uSmart's DCAT catalogue has no dataset list")
        datasets = []
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            # The last GUID of the identifier (or URL): a dataset URL names the organisation first.
            guid = next(
                (
                    found[-1].lower()
                    for key in ("identifier", "dct:identifier", "@id", "landingPage", "dcat:landingPage")
                    if (found := GUID_RE.findall(text(entry.get(key))))
                ),
                None,
            )
            if guid is None:
                continue
            datasets.append(
                {
                    "guid": guid,
                    "title": text(first(entry, "title", "dct:title")) or guid,
                    "description": text(first(entry, "description", "dct:description")),
                    "modified": text(first(entry, "modified", "dct:modified")),
                }
            )
        return sorted(datasets, key=lambda d: d["title"].casefold())

    def _no_listing(self, status: int) -> NotSupported:
        return NotSupported(
            f"This uSmart server does not offer a dataset listing (GET …/org/<GUID>{DCAT_PATH} answered {status}):"
            " type the dataset GUID instead (it is in the dataset's page address on uSmart)",
            status_code=status,
        )

    def view_dataset(self, dataset_guid: str) -> dict[str, Any]:
        """The dataset's title, files and output pipelines, normalised::

            {"guid", "title", "files": [{"guid", "name", "size", "revision", "updated_at"}],
             "pipelines": [{"guid", "name", "pipeline_id", "status", "status_message",
                            "process_id", "processed_at"}]}

        Raises NotFound, saying so plainly, for a dataset the organisation does not hold.
        """
        guid = guid_arg(dataset_guid)
        try:
            data = self._action("dataset:view", {"datasetGUID": guid})
        except NotFound as exc:
            raise NotFound(
                f"uSmart does not know dataset {guid} (uSmart said: {self._platform_says(exc)}):"
                " choose the dataset again with Browse on the mapping",
                status_code=404,
            ) from None
        files = [
            {
                "guid": f.get("fileGUID"),
                "name": f.get("fileName"),
                "size": f.get("fileSize"),
                "revision": f.get("revision"),
                "updated_at": f.get("updatedAt") or "",
            }
            for f in data.get("files") or []
            if isinstance(f, dict) and f.get("fileGUID")
        ]
        pipelines = [
            pipeline(p)
            for p in data.get("resourceContainers") or []
            if isinstance(p, dict) and p.get("resourceContainerGUID")
        ]
        return {
            "guid": data.get("datasetGUID", guid),
            "title": data.get("title") or "",
            "files": files,
            "pipelines": pipelines,
        }

    def create_pipeline(self, dataset_guid: str, pipeline_id: str) -> dict[str, Any]:
        """Add an output pipeline (``resourceContainer:create``); the new pipeline, normalised
        as in ``view_dataset``. The platform refuses unknown or unsupported pipeline ids, and
        a second pipeline of the same id (PermanentError with its reason)."""
        body = {"datasetGUID": guid_arg(dataset_guid), "pipelineId": pipeline_id}
        try:
            container = self._action("resourceContainer:create", body)
        except PermanentError as exc:
            if isinstance(exc, AuthenticationError):
                raise
            raise type(exc)(
                f"uSmart did not add a {pipeline_id} output pipeline to dataset {body['datasetGUID']}:"
                f" {self._platform_says(exc)}",
                status_code=exc.status_code,
            ) from None
        if not container.get("resourceContainerGUID"):
            raise InvalidResponse("uSmart's resourceContainer:create answered without a resourceContainerGUID")
        return pipeline(container)

    # Browse

    def browse(self, field: str, *, query: str = "", values: Mapping[str, Any] | None = None) -> list[Choice]:
        """Choices for the target's GUID fields, with their names.

        - ``dataset_guid``: the organisation's datasets (DCAT), filtered by ``query`` unless
          it is a whole GUID; choosing another dataset also fills its title and empties
          the file and pipeline names.
        - ``file_guid``: the files of ``values["dataset_guid"]``, each filling ``file_name``
          with its current name, then "a new file" (empty GUID and name).
        - ``pipeline_guids``: the dataset's output pipelines, each filling ``pipeline_names``.

        Raises PermanentError when the dataset is not chosen yet; ConnectorError otherwise.
        """
        values = values or {}
        if field == "dataset_guid":
            return self._browse_datasets(query, values)
        if field not in ("file_guid", "pipeline_guids"):
            return super().browse(field, query=query, values=values)
        try:
            dataset_guid = canonical_guid(str(values.get("dataset_guid") or ""))
        except ValueError:
            raise PermanentError("Choose the dataset first (Browse next to Dataset GUID)") from None
        dataset = self.view_dataset(dataset_guid)
        if field == "file_guid":
            choices = [
                Choice(
                    value=f["guid"],
                    label=f["name"] or f["guid"],
                    detail=" · ".join(
                        x
                        for x in (
                            bytes_text(f["size"]),
                            f"revision {f['revision']}" if f["revision"] else "",
                            f["guid"],
                        )
                        if x
                    ),
                    fill={"file_name": base_name(f["name"] or "")},
                )
                for f in dataset["files"]
            ]
            choices.append(
                Choice(
                    value="",
                    label="A new file at each release",
                    detail="file:create adds the uploaded file to the dataset, under its own name",
                    fill={"file_name": ""},
                )
            )
            return choices
        chosen = [g.lower() for g in split_guids(str(values.get("pipeline_guids") or "")) if GUID_RE.fullmatch(g)]
        names = {
            **parse_pipeline_names(str(values.get("pipeline_names") or ""), strict=False),
            **{p["guid"]: p["name"] for p in dataset["pipelines"]},
        }
        return [
            Choice(
                value=p["guid"],
                label=p["name"] or p["guid"],
                detail=" · ".join(x for x in (p["pipeline_id"], p["status"], p["guid"]) if x),
                fill={"pipeline_names": format_pipeline_names(list(dict.fromkeys([*chosen, p["guid"]])), names)},
            )
            for p in dataset["pipelines"]
        ]

    def _browse_datasets(self, query: str, values: Mapping[str, Any]) -> list[Choice]:
        current = str(values.get("dataset_guid") or "").strip().lower()
        datasets = self.list_datasets()
        needle = query.strip().casefold()
        if needle and not GUID_RE.fullmatch(needle):
            datasets = [d for d in datasets if needle in d["title"].casefold() or needle in d["guid"]]
        choices = []
        for d in datasets:
            fill: dict[str, Any] = {"dataset_title": d["title"]}
            if d["guid"] != current:
                # Another dataset: the file and pipeline names of the previous one no longer apply.
                fill.update(file_guid="", file_name="", pipeline_names="")
            detail = " · ".join(x for x in (d["guid"], d["description"][:100]) if x)
            choices.append(Choice(value=d["guid"], label=d["title"], detail=detail, fill=fill))
        return choices

    # Platform actions

    def action_dataset(self, *, target: UsmartTarget, params: None) -> ActionResult:
        """The dataset's files and pipelines, marking those this mapping uses."""
        dataset = self.view_dataset(target.dataset_guid)
        files = Table(
            "Files",
            ["File", "GUID", "Size", "Revision", "Updated", "This mapping"],
            [
                [
                    f["name"],
                    f["guid"],
                    bytes_text(f["size"]),
                    f["revision"],
                    f["updated_at"],
                    "replaced by each release" if f["guid"] == target.file_guid else "",
                ]
                for f in dataset["files"]
            ],
        )
        order = {guid: i for i, guid in enumerate(target.pipeline_guids, 1)}
        pipelines = Table(
            "Output pipelines",
            ["Output pipeline", "Type", "GUID", "Status", "Last processed", "Message", "This mapping"],
            [
                [
                    p["name"],
                    p["pipeline_id"],
                    p["guid"],
                    p["status"] or "—",
                    p["processed_at"],
                    p["status_message"],
                    f"processed after each release (#{order[p['guid']]})" if p["guid"] in order else "",
                ]
                for p in dataset["pipelines"]
            ],
            status_column="Status",
        )
        message = (
            f"{dataset['title']}: {len(dataset['files'])} file(s), {len(dataset['pipelines'])} output pipeline(s)."
        )
        problems = []
        if target.file_guid and target.file_guid not in {f["guid"] for f in dataset["files"]}:
            problems.append(f"the mapped file {target.file_guid} is no longer in the dataset")
        if missing := [g for g in target.pipeline_guids if g not in {p["guid"] for p in dataset["pipelines"]}]:
            problems.append(f"the mapped pipeline(s) {', '.join(missing)} are no longer in the dataset")
        if problems:
            message += f" Warning: {'; '.join(problems)}. Releases fail until the mapping is edited."
        return ActionResult(message=message, tables=[files, pipelines])

    def action_create_pipeline(self, *, target: UsmartTarget, params: CreatePipelineParams) -> ActionResult:
        pipeline = self.create_pipeline(target.dataset_guid, params.pipeline_id)
        return ActionResult(
            message=f"Added output pipeline {pipeline['name']} ({pipeline['guid']})"
            f" to {target.dataset_title or target.dataset_guid}. To process it after each release,"
            " edit the mapping and pick it with Browse.",
            tables=[pipeline_table(pipeline, title="New output pipeline")],
        )

    @classmethod
    def step_tables(cls, step_name: str, output: Mapping[str, Any]) -> list[Table]:
        """The upload (bytes, ETag), the file's new revision, or a pipeline's status."""
        if step_name == "put_request" and output.get("reference"):
            renewed = int(output.get("attempts") or 1) - 1
            return [
                Table(
                    "Upload to uSmart's storage",
                    ["Name on uSmart", "Size", "Content type", "ETag (MD5)", "Signed URL renewed"],
                    [
                        [
                            output.get("file_name"),
                            bytes_text(output.get("bytes")),
                            output.get("content_type"),
                            output.get("etag"),
                            f"{renewed}×" if renewed else "no",
                        ]
                    ],
                )
            ]
        if step_name == "revision" and output.get("file_guid"):
            return [
                Table(
                    "File on uSmart",
                    ["File", "GUID", "Revision", "Size", "Change"],
                    [
                        [
                            output.get("file_name"),
                            output.get("file_guid"),
                            output.get("revision"),
                            bytes_text(output.get("file_size")),
                            "added to the dataset" if output.get("created") else "new revision",
                        ]
                    ],
                )
            ]
        if step_name.startswith("pipeline:") and output.get("status"):
            return [pipeline_table(output, title="Output pipeline")]
        return []

    # Releases

    @classmethod
    def plan(cls, target: UsmartTarget, params: NoParams) -> list[StepSpec]:
        steps = [
            StepSpec("put_request", "Upload the file to uSmart's storage", idempotent=True, sends_file=True),
            StepSpec(
                "revision",
                f"Replace {target.file_name or 'the file'} with a new revision"
                if target.file_guid
                else "Add the file to the dataset",
            ),
        ]
        steps += [
            StepSpec(f"pipeline:{guid}", f"Process output pipeline {target.pipeline_label(guid)}")
            for guid in target.pipeline_guids
        ]
        return steps

    def run_step(self, step: StepSpec, ctx: StepContext[UsmartTarget, NoParams]) -> StepOutcome:
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
            pipeline({"resourceContainerGUID": guid, **container}), container.get("processId") or guid
        )

    def check_step(self, step: StepSpec, ctx: StepContext[UsmartTarget, NoParams]) -> StepOutcome:
        """A pipeline's status as ``dataset:view`` shows it."""
        if not step.name.startswith("pipeline:"):
            return super().check_step(step, ctx)
        guid = step.name.split(":", 1)[1]
        dataset = self.view_dataset(ctx.target.dataset_guid)
        pipeline = next((p for p in dataset["pipelines"] if p["guid"] == guid), None)
        if pipeline is None:
            raise NotFound(
                f"Output pipeline {ctx.target.pipeline_label(guid)} is no longer in dataset"
                f" '{dataset['title'] or ctx.target.dataset_guid}'"
            )
        return self._pipeline_outcome(pipeline, ctx.remote_ref, ctx.output)

    def _pipeline_outcome(
        self, pipeline: dict[str, Any], ref: str, previous: Mapping[str, Any] | None = None
    ) -> StepOutcome:
        status = pipeline["status"]
        message = status
        if pipeline["process_id"] and ref not in (pipeline["process_id"], pipeline["guid"]):
            # Someone queued a newer run: it processes at least our data, so follow it.
            message = f"{status} (a newer run {pipeline['process_id']} replaced ours)"
        output = {
            "pipeline": pipeline["guid"],
            "name": pipeline["name"],
            "pipeline_id": pipeline["pipeline_id"],
            "status": status,
            "status_message": pipeline["status_message"],
            "process_id": pipeline["process_id"],
        }
        if status in PIPELINE_DONE:
            return Done(message=f"{pipeline['name']} processed", remote_ref=ref, remote_status=status, output=output)
        if status in PIPELINE_FAILED:
            # The pipeline's own words (its message or error log), else a plain sentence.
            return Failed(
                pipeline["status_message"] or f"{pipeline['name']} failed",
                remote_ref=ref,
                remote_status=status,
                output=output,
            )
        if status in PIPELINE_RUNNING:
            output = known_status(output, previous)
            return Waiting(remote_ref=ref, message=message, remote_status=status, output=output)
        return unknown_status(
            platform="uSmart",
            word=pipeline["raw_status"],
            what=f"output pipeline {pipeline['name']}",
            remote_ref=ref,
            output={**(previous or {}), **output},
        )

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
        """Refuse unknown GUIDs before sending a possibly large file (NotFound, saying what to do)."""
        dataset = self.view_dataset(target.dataset_guid)
        fix = "nothing was uploaded: edit the mapping (Browse lists what uSmart has), then release the same file again"
        if target.file_guid and target.file_guid not in {f["guid"] for f in dataset["files"]}:
            name = f" ({target.file_name})" if target.file_name else ""
            raise NotFound(f"Dataset '{dataset['title']}' has no file {target.file_guid}{name}; {fix}")
        missing = [g for g in target.pipeline_guids if g not in {p["guid"] for p in dataset["pipelines"]}]
        if missing:
            labels = ", ".join(
                g if target.pipeline_label(g) == g else f"{target.pipeline_label(g)} ({g})" for g in missing
            )
            raise NotFound(f"Dataset '{dataset['title']}' has no output pipeline {labels}; {fix}")

    def _upload(self, target: UsmartTarget, ctx: StepContext[UsmartTarget, NoParams]) -> StepOutcome:
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
        # Transient: the engine runs this idempotent step again later, with fresh URLs.
        raise ConnectorError(
            f"uSmart's signed upload URL had expired each of {PUT_ATTEMPTS} times"
            " before the upload started; trying again with fresh URLs (if it persists, check this server's clock)"
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

    def _revision(self, target: UsmartTarget, ctx: StepContext[UsmartTarget, NoParams]) -> StepOutcome:
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
        except NotFound as exc:
            what = f"file {target.file_guid}" if target.file_guid else f"dataset {target.dataset_guid}"
            raise NotFound(
                f"uSmart no longer knows {what} (uSmart said: {self._platform_says(exc)}); the upload is kept:"
                " edit the mapping, then release the same file again",
                status_code=404,
            ) from None
        except PermanentError as exc:
            if isinstance(exc, AuthenticationError) or "filesize" not in exc.message.lower():
                raise
            raise PermanentError(
                f"uSmart refused {action}: the declared size ({ctx.file.size:,} bytes) differs from the bytes"
                f" it stored ({self._platform_says(exc)}). The portal keeps the upload: release again to send it anew,"
                " or upload the file again if the portal's copy is damaged",
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

    # RECONCILE (issue 14): after a lost answer, ask uSmart what happened. Kept in one
    # block at the end of the class so it moves as one piece when the module is split.

    def reconcile_step(self, step: StepSpec, ctx: StepContext) -> ReconcileOutcome:
        """The dataset's files and pipelines tell.

        The revision: the file (the target's, or the one of our name) updated since the
        step started is our revision; else it was not made. A pipeline: a run queued or
        processing now is followed (ours, or a newer one that processes our data too); one
        processed since the step started is done; else the run was not requested.
        """
        target: UsmartTarget = ctx.target
        dataset = self.view_dataset(target.dataset_guid)
        if step.name == "revision":
            upload = ctx.results.get("put_request") or {}
            name = upload.get("file_name") or (self._file_name(target, ctx.file) if ctx.file else "")
            files = [
                f
                for f in dataset["files"]
                if (f["guid"] == target.file_guid if target.file_guid else f["name"] == name)
            ]
            verdicts = [since_start(f["updated_at"], ctx.started_at) for f in files]
            for found, recent in zip(files, verdicts, strict=True):
                if recent:
                    return Done(
                        message=f"uSmart shows {found['name']} at revision {found['revision']}",
                        remote_ref=str(found["guid"]),
                        output={
                            "file_guid": found["guid"],
                            "revision": found["revision"],
                            "file_name": found["name"],
                            "file_size": found["size"],
                            "created": not target.file_guid,
                        },
                    )
            if any(recent is None for recent in verdicts):
                raise NotSupported("uSmart's file has no readable update time")
            return NotSent("no file of the dataset was updated since")
        if step.name.startswith("pipeline:"):
            guid = step.name.split(":", 1)[1]
            pipeline = next((p for p in dataset["pipelines"] if p["guid"] == guid), None)
            if pipeline is None:
                raise NotFound(f"Output pipeline {target.pipeline_label(guid)} is no longer in the dataset")
            status = pipeline["status"]
            if status in PIPELINE_DONE:
                recent = since_start(pipeline["processed_at"], ctx.started_at)
                if recent is None:
                    raise NotSupported("uSmart's pipeline has no readable processing time")
                if not recent:
                    return NotSent("the pipeline last processed before the release")
            elif status in PIPELINE_FAILED:
                raise NotSupported(f"the pipeline shows a failure ({status}) that may be ours or older")
            return self._pipeline_outcome(pipeline, pipeline["process_id"] or guid)
        raise NotSupported(f"uSmart step {step.name} is not reconciled")
