"""Creating, retrying and cancelling releases; the engine runs their steps."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from connectors.base import Schema
from portal import jobs
from portal.engine.core import dispatch, event, step_resolve
from portal.exceptions import ApplicationError
from portal.models import Mapping, ObjectState, Release, ReleaseStatus, ReleaseStep, StepStatus, Upload
from portal.services.audit import audit


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
            f"{connector_class.label} takes {', '.join('.' + e for e in connector_class.file_extensions)} files, "
            f"not .{upload.extension}."
        )


def release_create(
    *,
    mapping: Mapping,
    upload: Upload | None,
    params: Schema,
    actor: User | None,
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
            event(release, f"Release queued with {len(plan)} step{'s' if len(plan) != 1 else ''}")
            audit(
                actor=actor,
                action="release-created",
                obj=release,
                changes={"mapping": mapping.pk, "upload": upload.pk if upload else None},
            )
            dispatch(release.pk)
    except IntegrityError:
        # The same key raced in from a second submission: return the first release.
        existing = Release.objects.filter(team=mapping.team, idempotency_key=idempotency_key).first()
        if idempotency_key and existing:
            return existing
        raise
    return release


def release_retry(*, release: Release, params: Schema | None = None, actor: User, trigger: str = "retry") -> Release:
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
        event(retry, f"Retry of release #{release.pk}: {rerun} step{'s' if rerun != 1 else ''} to run again")
        event(release, f"Retried as release #{retry.pk}")
        audit(actor=actor, action="release-retried", obj=retry, changes={"retry_of": release.pk})
        dispatch(retry.pk)
    return retry


@transaction.atomic
def release_cancel(*, release: Release, actor: User) -> Release:
    if release.is_terminal:
        raise ApplicationError(f"This release already {release.get_status_display().lower()}.")
    Release.objects.filter(pk=release.pk).update(cancel_requested=True)
    event(release, f"Cancel requested by {actor.get_username()}", level="warning")
    audit(actor=actor, action="release-cancel", obj=release)
    jobs.release_cancel(release.pk)
    release.refresh_from_db()
    return release


@transaction.atomic
def release_step_resolve(*, release: Release, step: ReleaseStep, happened: bool, actor: User) -> Release:
    """A person's answer for a step that needs attention (its outcome is unknown and the
    platform cannot say): ``happened`` continues from there, else the step is sent again."""
    if step.release_id != release.pk or step.status != StepStatus.ATTENTION:
        raise ApplicationError("This step does not need attention (any more).")
    if release.cancel_requested:
        raise ApplicationError("This release is being cancelled.")
    step_resolve(release=release, step=step, happened=happened, who=actor.get_username())
    audit(
        actor=actor,
        action="release-step-happened" if happened else "release-step-send-again",
        obj=release,
        changes={"step": step.name},
    )
    release.refresh_from_db()
    return release
