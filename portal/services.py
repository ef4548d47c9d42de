"""Every write of the portal: keyword-only functions named ``<entity>_<action>``.

Views and the REST API validate input, then call one of these. They check nothing
about roles (``portal.permissions`` did), raise ``ApplicationError`` or
``ValidationError`` on bad input, and enqueue tasks only after the transaction commits.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone
from pydantic import SecretStr
from pydantic import ValidationError as SchemaError

from connectors.base import Action, ActionResult, ConnectorError, Schema, TargetState
from connectors.outbound import destination
from connectors.registry import get_connector_class

from . import engine
from .crypto import UNREADABLE_CREDENTIALS, InvalidToken, decrypt_json, encrypt_json
from .models import (
    ActionRun,
    AuditEvent,
    ChunkedUpload,
    Connection,
    Dataset,
    Mapping,
    Membership,
    ObjectState,
    ParamsVersion,
    Release,
    ReleaseStatus,
    ReleaseStep,
    Role,
    StepStatus,
    Team,
    TusUpload,
    Upload,
)
from .outbound import url_check

log = logging.getLogger(__name__)


class ApplicationError(Exception):
    """A request that cannot be done, with a message for the user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


# AUDIT


def audit(*, actor, action: str, obj: Any, changes: dict[str, Any] | None = None, team: Team | None = None) -> None:  # type: ignore[no-untyped-def]
    """Record who did what. ``changes`` must never hold a secret value: callers pass names only."""
    AuditEvent.objects.create(
        team=team or getattr(obj, "team", None),
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        action=action,
        object_type=obj._meta.model_name,
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        changes=changes or {},
    )


# TEAMS


@transaction.atomic
def membership_set(*, team: Team, user, role: str, actor) -> Membership:  # type: ignore[no-untyped-def]
    membership, created = Membership.objects.update_or_create(team=team, user=user, defaults={"role": Role(role)})
    audit(
        actor=actor,
        action="member-added" if created else "member-role-changed",
        obj=membership,
        changes={"user": user.get_username(), "role": role},
        team=team,
    )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor) -> None:  # type: ignore[no-untyped-def]
    team = membership.team
    if (
        membership.role == Role.ADMIN
        and not team.memberships.filter(role=Role.ADMIN).exclude(pk=membership.pk).exists()
    ):
        raise ApplicationError("A team needs at least one admin: make someone else admin first.")
    audit(
        actor=actor,
        action="member-removed",
        obj=membership,
        changes={"user": membership.user.get_username()},
        team=team,
    )
    membership.delete()


# CONNECTIONS


def _merge_secrets(connector_class, new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """A secret left blank keeps its stored value (the form never shows it)."""
    merged = dict(new)
    for name in connector_class.secret_fields():
        value = merged.get(name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if not value and old and old.get(name):
            value = old[name]
        merged[name] = value
    return merged


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.get_secret_value() if isinstance(v, SecretStr) else v) for k, v in values.items()}


def credentials_validate(*, platform: str, data: dict[str, Any], old: dict[str, Any] | None = None) -> Schema:
    """Validate credentials through the connector's schema, keeping blank secrets."""
    connector_class = get_connector_class(platform)
    return connector_class.Credentials.model_validate(_merge_secrets(connector_class, data, old))


@transaction.atomic
def connection_create(
    *, team: Team, platform: str, name: str, base_url: str, credentials: dict[str, Any], actor
) -> Connection:  # type: ignore[no-untyped-def]
    url_check(base_url, field="base_url")
    validated = credentials_validate(platform=platform, data=credentials)
    connection = Connection(
        team=team,
        platform=platform,
        name=name,
        base_url=base_url,
        created_by=actor,
        credentials_encrypted=encrypt_json(_plain(validated.model_dump())),
    )
    connection.full_clean()
    connection.save()
    audit(
        actor=actor, action="connection-created", obj=connection, changes={"platform": platform, "base_url": base_url}
    )
    return connection


DESTINATION_CHANGED = "The base URL now points to another scheme, host or port: the stored secrets are not sent there."


def connection_destination_changed(*, connection: Connection, base_url: str) -> bool:
    return destination(base_url) != destination(connection.base_url)


@transaction.atomic
def connection_update(
    *, connection: Connection, name: str, base_url: str, credentials: dict[str, Any], actor
) -> Connection:  # type: ignore[no-untyped-def]
    url_check(base_url, field="base_url")
    try:
        old: dict[str, Any] | None = decrypt_json(connection.credentials_encrypted)
    except InvalidToken:  # unreadable with the current keys: every secret must be entered again
        old = None
    moved = connection_destination_changed(connection=connection, base_url=base_url)
    if moved:
        # Secrets are bound to their destination (scheme, host, port): a new one gets none of the
        # stored secrets, so an admin cannot redirect a connection to a listener and read them.
        missing = sorted(
            name
            for name in connection.connector_class.secret_fields()
            if (old or {}).get(name) and not _plain({name: credentials.get(name)}).get(name)
        )
        if missing:
            raise ValidationError(
                {"base_url": f"{DESTINATION_CHANGED} Enter {', '.join(missing)} again in the same submission."}
            )
        old = None
    validated = credentials_validate(platform=connection.platform, data=credentials, old=old)
    new = _plain(validated.model_dump())
    changed = sorted(k for k in new if new.get(k) != (old or {}).get(k))  # names only: never values
    connection.name, connection.base_url = name, base_url
    connection.credentials_encrypted = encrypt_json(new)
    connection.full_clean()
    connection.save()
    audit(
        actor=actor,
        action="connection-updated",
        obj=connection,
        changes={"fields": changed, "base_url": base_url, "secrets_cleared": moved},
    )
    return connection


@transaction.atomic
def connection_request_test(*, connection: Connection, actor) -> Connection:  # type: ignore[no-untyped-def]
    """Ask a worker to test the connection; the page polls the result."""
    from .tasks import connection_test_task

    connection.test_requested_at = timezone.now()
    connection.save(update_fields=["test_requested_at"])
    transaction.on_commit(lambda: connection_test_task.delay(connection.pk))
    return connection


def connection_test(*, connection: Connection) -> Connection:
    """Run the connector's test and store the outcome (runs in a worker)."""
    try:
        message, ok = connection.connector().test_connection(), True
    except ConnectorError as exc:
        message, ok = exc.message, False
    except SchemaError:
        message, ok = "The stored credentials no longer fit this platform: edit the connection.", False
    except InvalidToken:
        message, ok = UNREADABLE_CREDENTIALS, False
    Connection.objects.filter(pk=connection.pk).update(
        last_test_at=timezone.now(), last_test_ok=ok, last_test_message=message[:500]
    )
    connection.refresh_from_db()
    return connection


@transaction.atomic
def connection_set_state(*, connection: Connection, state: str, actor) -> Connection:  # type: ignore[no-untyped-def]
    if state == ObjectState.ARCHIVED and connection.mappings.exclude(state=ObjectState.ARCHIVED).exists():
        raise ApplicationError("Archive or move this connection's mappings first.")
    old = connection.state
    connection.state = ObjectState(state)
    connection.save(update_fields=["state", "updated_at"])
    audit(actor=actor, action="connection-state", obj=connection, changes={"from": old, "to": state})
    return connection


# DATASETS AND MAPPINGS


@transaction.atomic
def dataset_create(*, team: Team, name: str, description: str = "", actor) -> Dataset:  # type: ignore[no-untyped-def]
    dataset = Dataset(team=team, name=name, description=description)
    dataset.full_clean()
    dataset.save()
    audit(actor=actor, action="dataset-created", obj=dataset)
    return dataset


@transaction.atomic
def dataset_update(*, dataset: Dataset, name: str, description: str, actor) -> Dataset:  # type: ignore[no-untyped-def]
    dataset.name, dataset.description = name, description
    dataset.full_clean()
    dataset.save()
    audit(actor=actor, action="dataset-updated", obj=dataset, changes={"name": name})
    return dataset


@transaction.atomic
def dataset_set_state(*, dataset: Dataset, state: str, actor) -> Dataset:  # type: ignore[no-untyped-def]
    old = dataset.state
    dataset.state = ObjectState(state)
    dataset.save(update_fields=["state"])
    audit(actor=actor, action="dataset-state", obj=dataset, changes={"from": old, "to": state})
    return dataset


def target_validate(*, connection: Connection, data: dict[str, Any]) -> Schema:
    return connection.connector_class.Target.model_validate(data)


@transaction.atomic
def mapping_create(*, dataset: Dataset, connection: Connection, name: str, target: Schema, actor) -> Mapping:  # type: ignore[no-untyped-def]
    if connection.team_id != dataset.team_id:
        raise ApplicationError("The connection belongs to another team.")
    if connection.state != ObjectState.ENABLED:
        raise ApplicationError(f"The connection {connection.name} is {connection.state}.")
    mapping = Mapping(
        team=dataset.team, dataset=dataset, connection=connection, name=name, target=target.model_dump(mode="json")
    )
    mapping.full_clean()
    mapping.save()
    audit(actor=actor, action="mapping-created", obj=mapping, changes={"target": mapping.target})
    return mapping


@transaction.atomic
def mapping_update(*, mapping: Mapping, name: str, target: Schema, actor) -> Mapping:  # type: ignore[no-untyped-def]
    mapping.name, mapping.target = name, target.model_dump(mode="json")
    mapping.full_clean()
    mapping.save()
    audit(actor=actor, action="mapping-updated", obj=mapping, changes={"target": mapping.target})
    return mapping


def mapping_set_state(*, mapping: Mapping, state: TargetState, actor) -> Mapping:  # type: ignore[no-untyped-def]
    """Change a mapping's state. Where the platform has toggles, it changes there first:
    the local state moves only when the platform said ok."""
    connector_class = mapping.connection.connector_class
    remote_message = ""
    if connector_class.remote_toggles:
        try:
            remote_message = mapping.connection.connector().set_target_state(mapping.target_schema(), state)
        except ConnectorError as exc:
            raise ApplicationError(f"{connector_class.label} refused: {exc.message}. Nothing was changed.") from None
    with transaction.atomic():
        old = mapping.state
        mapping.state = ObjectState(state)
        fields = ["state", "updated_at"]
        if connector_class.remote_toggles:
            mapping.remote_state, mapping.remote_state_at = mapping.state, timezone.now()
            fields += ["remote_state", "remote_state_at"]
        mapping.save(update_fields=fields)
        audit(
            actor=actor,
            action="mapping-state",
            obj=mapping,
            changes={"from": old, "to": state, "remote": remote_message},
        )
    return mapping


@transaction.atomic
def params_version_save(*, mapping: Mapping, params: Schema, note: str = "", actor) -> ParamsVersion:  # type: ignore[no-untyped-def]
    """Save the mapping's default parameters as a new version; every version is kept."""
    data = params.model_dump(mode="json")
    last = mapping.params_versions.order_by("-number").first()
    if last is not None and last.params == data:
        raise ApplicationError(f"Nothing changed since version {last.number}.")
    version = ParamsVersion.objects.create(
        mapping=mapping, number=(last.number + 1 if last else 1), params=data, note=note[:200], created_by=actor
    )
    Mapping.objects.filter(pk=mapping.pk).update(default_params=data)
    mapping.default_params = data
    audit(actor=actor, action="params-saved", obj=mapping, changes={"version": version.number, "note": note[:200]})
    return version


# PLATFORM ACTIONS


def tables_as_json(tables: Any) -> list[dict[str, Any]]:
    return [
        {
            "title": t.title,
            "columns": list(t.columns),
            "rows": [list(r) for r in t.rows],
            "status_column": t.status_column,
        }
        for t in tables
    ]


def action_read(
    *, connection: Connection, mapping: Mapping | None, action: Action, params: Schema | None
) -> ActionResult:
    """Run a read-only action now, in the caller's process (short timeout). Raises ConnectorError."""
    if action.mutating:
        raise ApplicationError("This action changes the platform: it runs in a worker.")
    target = mapping.target_schema() if mapping else None
    return connection.connector().run_action(action, target=target, params=params)


@transaction.atomic
def action_request(
    *, connection: Connection, mapping: Mapping | None, action: Action, params: Schema | None, actor
) -> ActionRun:  # type: ignore[no-untyped-def]
    """Record a mutating action and hand it to a worker."""
    from .tasks import action_run_task

    if connection.state != ObjectState.ENABLED:
        raise ApplicationError(f"The connection {connection.name} is {connection.state}.")
    run = ActionRun.objects.create(
        team=connection.team,
        connection=connection,
        mapping=mapping,
        action=action.name,
        label=action.label,
        params=params.model_dump(mode="json") if params is not None else {},
        requested_by=actor,
    )
    audit(actor=actor, action=f"action-{action.name}", obj=mapping or connection, changes={"params": run.params})
    transaction.on_commit(lambda: action_run_task.delay(run.pk))
    return run


def action_perform(*, run: ActionRun) -> ActionRun:
    """Perform a recorded action (in the worker) and store its outcome."""
    connector_class = run.connection.connector_class
    action = connector_class.action(run.action)
    try:
        params = action.params.model_validate(run.params) if action.params else None
        target = run.mapping.target_schema() if run.mapping else None
        result = run.connection.connector().run_action(action, target=target, params=params)
        status, message, tables = ActionRun.Status.SUCCEEDED, result.message, tables_as_json(result.tables)
    except ConnectorError as exc:
        status, message, tables = ActionRun.Status.FAILED, exc.message, []
    except SchemaError:
        status, message, tables = ActionRun.Status.FAILED, "The saved settings no longer fit this platform.", []
    ActionRun.objects.filter(pk=run.pk).update(
        status=status, message=message, tables=tables, finished_at=timezone.now()
    )
    run.refresh_from_db()
    return run


# UPLOADS


def upload_validate(*, name: str, size: int) -> None:
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    allowed = settings.PORTAL_UPLOAD_EXTENSIONS
    if size == 0:
        raise ValidationError("The file is empty.", code="empty")
    if size > settings.PORTAL_UPLOAD_MAX_BYTES:
        raise ValidationError(
            f"The file is {size:,} bytes; the limit is {settings.PORTAL_UPLOAD_MAX_BYTES:,} bytes.", code="too_large"
        )
    if extension not in allowed:
        raise ValidationError(
            f"Files of type .{extension or '(none)'} are not accepted. Accepted: {', '.join('.' + e for e in allowed)}.",
            code="type",
        )


def upload_quota_check(*, team: Team, size: int) -> None:
    """Refuse ``size`` more bytes if the team's uploads, finished and in flight, would pass its quota."""
    quota = settings.PORTAL_UPLOAD_TEAM_QUOTA_BYTES
    if not quota:
        return
    stored = Upload.objects.filter(team=team).aggregate(total=Sum("size"))["total"] or 0
    in_flight = TusUpload.objects.filter(team=team, upload__isnull=True).aggregate(total=Sum("length"))["total"] or 0
    if stored + in_flight + size > quota:
        raise ValidationError(
            f"This upload of {size:,} bytes would pass the team's quota of {quota:,} bytes "
            f"({stored + in_flight:,} bytes are used).",
            code="quota",
        )


@transaction.atomic
def upload_register(
    *, dataset: Dataset, name: str, stored_name: str, size: int, sha256: str, content_type: str, actor: Any
) -> Upload:
    """The ``Upload`` row (and its audit line) of a file already in storage under ``stored_name``."""
    upload = Upload(
        team=dataset.team,
        dataset=dataset,
        original_name=name,
        size=size,
        sha256=sha256,
        content_type=content_type[:100],
        uploaded_by=actor,
    )
    upload.file.name = stored_name
    upload.save()
    audit(actor=actor, action="upload-created", obj=upload, changes={"name": name, "size": size, "sha256": sha256})
    return upload


def upload_storage_name(*, dataset: Dataset, name: str) -> str:
    """A fresh server-generated storage name for a file of ``dataset`` (the original name is never used)."""
    return Upload._meta.get_field("file").generate_filename(Upload(team=dataset.team), name)


def upload_create(*, dataset: Dataset, file: File, actor) -> Upload:  # type: ignore[no-untyped-def]
    """Store a file under a server-generated name through Django storage, hashing it on the way.

    The hashing and storing happen before, not inside, the transaction that records the row."""
    name = (file.name or "upload").replace("\\", "/").rsplit("/", 1)[-1][:255]
    upload_validate(name=name, size=file.size or 0)
    upload_quota_check(team=dataset.team, size=file.size or 0)
    digest = hashlib.sha256()
    for chunk in file.chunks():
        digest.update(chunk)
    file.seek(0)
    storage = Upload._meta.get_field("file").storage
    stored_name = storage.save(upload_storage_name(dataset=dataset, name=name), file)
    try:
        return upload_register(
            dataset=dataset,
            name=name,
            stored_name=stored_name,
            size=file.size or 0,
            sha256=digest.hexdigest(),
            content_type=getattr(file, "content_type", "") or "",
            actor=actor,
        )
    except BaseException:
        storage.delete(stored_name)
        raise


def chunked_upload_start(*, dataset: Dataset, filename: str, size: int, actor) -> ChunkedUpload:  # type: ignore[no-untyped-def]
    name = filename.replace("\\", "/").rsplit("/", 1)[-1][:255]
    upload_validate(name=name, size=size)
    return ChunkedUpload.objects.create(team=dataset.team, dataset=dataset, user=actor, filename=name, size=size)


def chunked_upload_append(*, chunked: ChunkedUpload, offset: int, data: File) -> ChunkedUpload:
    """Store the piece that starts at ``offset``. The client asks for ``offset`` after a cut
    and sends the rest; a piece at any other offset is refused, so nothing is written twice."""
    length = data.size or 0
    if chunked.upload_id:
        raise ApplicationError("This upload is already complete.")
    if offset != chunked.offset:
        raise ApplicationError(f"Expected the piece at offset {chunked.offset}, got {offset}.")
    if length == 0:
        raise ApplicationError("The piece is empty.")
    if offset + length > chunked.size:
        raise ApplicationError(f"The piece ends at {offset + length}, past the declared size {chunked.size}.")
    name = default_storage.save(f"chunked/{chunked.pk}/{offset:015d}", data)
    # Advance only if nobody else did meanwhile (a retried request): otherwise drop our copy.
    updated = ChunkedUpload.objects.filter(pk=chunked.pk, offset=offset).update(
        offset=offset + length, parts=chunked.parts + [name]
    )
    if not updated:
        default_storage.delete(name)
        raise ApplicationError("Another request stored this piece first; ask for the offset again.")
    chunked.refresh_from_db()
    return chunked


class _Concatenated(File):
    """The pieces of a chunked upload read one after the other, never all in memory."""

    def __init__(self, names: list[str], size: int, name: str):
        super().__init__(None, name=name)
        self._names, self.size = names, size
        self._reader: Iterator[bytes] | None = None
        self._buffer = b""

    def chunks(self, chunk_size: int | None = None):  # type: ignore[no-untyped-def]
        for part in self._names:
            with default_storage.open(part, "rb") as f:
                while block := f.read(chunk_size or 1024 * 1024):
                    yield block

    def read(self, size: int = -1) -> bytes:
        """A file-like read, for storages that stream with ``read()`` (S3's multipart upload), not ``chunks()``."""
        if self._reader is None:
            self._reader = self.chunks()
        while size < 0 or len(self._buffer) < size:
            block = next(self._reader, b"")
            if not block:
                break
            self._buffer += block
        if size < 0:
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out

    def seek(self, offset: int = 0, whence: int = 0, /) -> int:  # chunks() and read() start again at the start
        self._reader, self._buffer = None, b""
        return 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        return self.chunks()


def chunked_upload_complete(*, chunked: ChunkedUpload, actor) -> Upload:  # type: ignore[no-untyped-def]
    if chunked.upload_id:
        return chunked.upload  # type: ignore[return-value]
    if chunked.offset != chunked.size:
        raise ApplicationError(f"Only {chunked.offset} of {chunked.size} bytes arrived; send the rest first.")
    # No transaction around this: upload_create hashes and stores before it records the row.
    upload = upload_create(
        dataset=chunked.dataset, file=_Concatenated(chunked.parts, chunked.size, chunked.filename), actor=actor
    )
    chunked.upload = upload
    chunked.save(update_fields=["upload"])
    for part in chunked.parts:
        default_storage.delete(part)
    return upload


# RELEASES


def release_check(*, mapping: Mapping, upload: Upload | None) -> None:
    """Refuse a release that cannot run, before anything is created."""
    connector_class = mapping.connection.connector_class
    if mapping.state != ObjectState.ENABLED:
        raise ApplicationError(f"The mapping {mapping.name} is {mapping.state}: enable it to release.")
    if mapping.connection.state != ObjectState.ENABLED:
        raise ApplicationError(f"The connection {mapping.connection.name} is {mapping.connection.state}.")
    if upload is not None and upload.dataset_id != mapping.dataset_id:
        raise ApplicationError("That upload belongs to another dataset.")
    if (refusal := connector_class.release_refusal(mapping.target_schema())) is not None:
        raise ApplicationError(refusal[0].upper() + refusal[1:] + ".")
    if (
        connector_class.file_extensions
        and upload is not None
        and upload.extension not in connector_class.file_extensions
    ):
        raise ApplicationError(
            f"{connector_class.label} takes {', '.join('.' + e for e in connector_class.file_extensions)} files, not .{upload.extension}."
        )


def params_validate(*, mapping: Mapping, data: dict[str, Any]) -> Schema:
    connector_class = mapping.connection.connector_class
    return connector_class.Params.model_validate(data, context={"target": mapping.target_schema()})


def release_create(
    *,
    mapping: Mapping,
    upload: Upload | None,
    params: Schema,
    actor,  # type: ignore[no-untyped-def]
    idempotency_key: str = "",
    trigger: str = "manual",
    schedule: Any = None,
    release_set: Any = None,
    request_fingerprint: str = "",
) -> Release:
    """Create a release and its planned steps, then start it once committed.

    The same ``idempotency_key`` (a form's token, an API header) returns the release
    it created the first time instead of a second one.
    """
    if idempotency_key:
        existing = Release.objects.filter(team=mapping.team, idempotency_key=idempotency_key).first()
        if existing:
            return existing
    release_check(mapping=mapping, upload=upload)
    connector_class = mapping.connection.connector_class
    target = mapping.target_schema()
    plan = connector_class.plan(target, params)
    if upload is None and any(step.sends_file for step in plan):
        raise ApplicationError("Choose a file to release: this platform's release sends one.")
    try:
        with transaction.atomic():
            release = Release.objects.create(
                team=mapping.team,
                mapping=mapping,
                dataset=mapping.dataset,
                platform=mapping.connection.platform,
                upload=upload,
                params=params.model_dump(mode="json"),
                created_by=actor if getattr(actor, "is_authenticated", False) else None,
                idempotency_key=idempotency_key,
                trigger=trigger,
                schedule=schedule,
                release_set=release_set,
                request_fingerprint=request_fingerprint,
            )
            ReleaseStep.objects.bulk_create(
                ReleaseStep(release=release, position=i, name=s.name, label=s.label, idempotent=s.idempotent)
                for i, s in enumerate(plan)
            )
            engine.event(release, f"Release queued with {len(plan)} step{'s' if len(plan) != 1 else ''}")
            audit(
                actor=actor,
                action="release-created",
                obj=release,
                changes={"mapping": mapping.pk, "upload": upload.pk if upload else None},
            )
            engine.dispatch(release.pk)
    except IntegrityError:
        # The same key raced in from a second submission: return the first release.
        existing = Release.objects.filter(team=mapping.team, idempotency_key=idempotency_key).first()
        if idempotency_key and existing:
            return existing
        raise
    return release


def release_retry(*, release: Release, params: Schema | None = None, actor, trigger: str = "retry") -> Release:  # type: ignore[no-untyped-def]
    """Run the failed (and skipped) steps again, as a new release linked to this one.

    Steps that succeeded are carried over with their outputs and remote references, so
    later steps see them; the failed attempt keeps its whole history.
    """
    if not release.is_terminal:
        raise ApplicationError("This release is still running: wait for it to end, or cancel it.")
    if release.status == ReleaseStatus.SUCCEEDED:
        raise ApplicationError("This release succeeded: there is nothing to retry.")
    mapping = release.mapping
    release_check(mapping=mapping, upload=release.upload)
    connector_class = mapping.connection.connector_class
    target = mapping.target_schema()
    params = params or connector_class.Params.model_validate(release.params, context={"target": target})
    done = {s.name: s for s in release.steps.filter(status=StepStatus.SUCCEEDED)}
    plan = connector_class.plan(target, params)
    with transaction.atomic():
        retry = Release.objects.create(
            team=release.team,
            mapping=mapping,
            dataset=release.dataset,
            platform=release.platform,
            upload=release.upload,
            params=params.model_dump(mode="json"),
            created_by=actor,
            trigger=trigger,
            retry_of=release,
            release_set_id=release.release_set_id,  # a retry stays in the release's set
        )
        now = timezone.now()
        steps = []
        for i, spec in enumerate(plan):
            old = done.get(spec.name)
            step = ReleaseStep(release=retry, position=i, name=spec.name, label=spec.label, idempotent=spec.idempotent)
            if old is not None:
                step.status, step.output, step.remote_ref, step.remote_status = (
                    StepStatus.SUCCEEDED,
                    old.output,
                    old.remote_ref,
                    old.remote_status,
                )
                step.message, step.started_at, step.finished_at = (
                    f"Done in release #{release.pk}",
                    old.started_at,
                    old.finished_at or now,
                )
            steps.append(step)
        ReleaseStep.objects.bulk_create(steps)
        rerun = sum(1 for s in steps if s.status != StepStatus.SUCCEEDED)
        engine.event(retry, f"Retry of release #{release.pk}: {rerun} step{'s' if rerun != 1 else ''} to run again")
        engine.event(release, f"Retried as release #{retry.pk}")
        audit(actor=actor, action="release-retried", obj=retry, changes={"retry_of": release.pk})
        engine.dispatch(retry.pk)
    return retry


@transaction.atomic
def release_cancel(*, release: Release, actor) -> Release:  # type: ignore[no-untyped-def]
    if release.is_terminal:
        raise ApplicationError(f"This release already {release.get_status_display().lower()}.")
    Release.objects.filter(pk=release.pk).update(cancel_requested=True)
    engine.event(release, f"Cancel requested by {actor.get_username()}", level="warning")
    audit(actor=actor, action="release-cancel", obj=release)
    from .tasks import release_cancel_task

    transaction.on_commit(lambda: engine.send_safely(release_cancel_task, release.pk))
    release.refresh_from_db()
    return release


@transaction.atomic
def release_step_resolve(*, release: Release, step: ReleaseStep, happened: bool, actor) -> Release:  # type: ignore[no-untyped-def]
    """A person's answer for a step that needs attention (its outcome is unknown and the
    platform cannot say): ``happened`` continues from there, else the step is sent again."""
    if step.release_id != release.pk or step.status != StepStatus.ATTENTION:
        raise ApplicationError("This step does not need attention (any more).")
    if release.cancel_requested:
        raise ApplicationError("This release is being cancelled.")
    engine.step_resolve(release=release, step=step, happened=happened, who=actor.get_username())
    audit(
        actor=actor,
        action="release-step-happened" if happened else "release-step-send-again",
        obj=release,
        changes={"step": step.name},
    )
    release.refresh_from_db()
    return release


__all__ = [
    "ApplicationError",
    "ReleaseStatus",
    "connection_create",
    "connection_request_test",
    "connection_set_state",
    "connection_test",
    "connection_update",
    "dataset_create",
    "mapping_create",
    "mapping_set_state",
    "release_cancel",
    "release_create",
    "upload_create",
]
