"""Release sets: one upload released to several mappings at once.

Each mapping gets an ordinary release, run independently by the engine (one platform's
slowness or failure never holds another back); the set only groups them. The upload
is stored once and each step reads it from storage."""

from __future__ import annotations

import dataclasses
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from connectors.base import Schema, StepSpec
from portal.exceptions import ApplicationError
from portal.models import Dataset, Mapping, ObjectState, Release, ReleaseSet, Upload
from portal.services.audit import audit
from portal.services.mappings import params_validate
from portal.services.releases import release_cancel, release_check, release_create, release_retry


@dataclasses.dataclass(frozen=True)
class PlannedRelease:
    """What will be sent where, shown before the user confirms."""

    mapping: Mapping
    params: Schema
    steps: list[StepSpec]

    @property
    def sends_file(self) -> bool:
        return any(step.sends_file for step in self.steps)


def release_set_plan(
    *, dataset: Dataset, mappings: list[Mapping], upload: Upload | None, params: dict[int, dict[str, Any]] | None = None
) -> list[PlannedRelease]:
    """Check every mapping and plan its steps, or refuse the whole set naming each problem."""
    if not mappings:
        raise ApplicationError("Tick at least one mapping.")
    problems, planned = [], []
    for mapping in mappings:
        if mapping.dataset_id != dataset.pk:
            problems.append(f"{mapping.name}: maps another dataset")
            continue
        try:
            release_check(mapping=mapping, upload=upload)
            connector_class = mapping.connection.connector_class
            data = (params or {}).get(mapping.pk, mapping.default_params or {})
            validated = params_validate(mapping=mapping, data=data)
            steps = connector_class.plan(mapping.target_schema(), validated)
            if upload is None and any(step.sends_file for step in steps):
                raise ApplicationError(f"{connector_class.label} sends a file; choose an upload")
            planned.append(PlannedRelease(mapping, validated, steps))
        except ApplicationError as exc:
            problems.append(f"{mapping.name}: {exc.message}")
        except Exception as exc:  # pydantic: saved parameters that no longer validate
            problems.append(f"{mapping.name}: its parameters are invalid ({exc.__class__.__name__}); edit them first")
    if problems:
        raise ApplicationError("Nothing was started. " + "; ".join(problems) + ".")
    return planned


def release_set_create(
    *,
    dataset: Dataset,
    mappings: list[Mapping],
    upload: Upload | None,
    actor: User,
    params: dict[int, dict[str, Any]] | None = None,
    idempotency_key: str = "",
) -> ReleaseSet:
    if idempotency_key:
        existing = ReleaseSet.objects.filter(team=dataset.team, idempotency_key=idempotency_key).first()
        if existing:
            return existing
    planned = release_set_plan(dataset=dataset, mappings=mappings, upload=upload, params=params)
    try:
        with transaction.atomic():
            release_set = ReleaseSet.objects.create(
                team=dataset.team, dataset=dataset, upload=upload, created_by=actor, idempotency_key=idempotency_key
            )
            for item in planned:
                # Only releases that send the file point at it (it is stored once either way).
                release_create(
                    mapping=item.mapping,
                    upload=upload if item.sends_file else None,
                    params=item.params,
                    actor=actor,
                    trigger="set",
                    release_set=release_set,
                )
            audit(
                actor=actor,
                action="release-set-created",
                obj=release_set,
                changes={"mappings": [m.pk for m in mappings]},
            )
    except IntegrityError:
        existing = ReleaseSet.objects.filter(team=dataset.team, idempotency_key=idempotency_key).first()
        if idempotency_key and existing:
            return existing
        raise
    return release_set


def release_set_retry(
    *,
    release_set: ReleaseSet,
    actor: User,
    params: dict[int, dict[str, Any]] | None = None,
    only: set[int] | None = None,
) -> list[Release]:
    """Retry the failed cells: the failed steps of each failed or cancelled mapping, as new
    attempts in the same set. Edited parameters are validated before anything is sent."""
    current = release_set.current_releases()
    if any(not r.is_terminal for r in current if only is None or r.mapping_id in only):
        raise ApplicationError("Some cells are still running: wait for them to end (or cancel) before retrying.")
    failed = [r for r in current if r.status in ("failed", "cancelled") and (only is None or r.mapping_id in only)]
    if not failed:
        raise ApplicationError(
            "Every release of this set succeeded: there is nothing to retry."
            if ReleaseSet.status_of(current) == "succeeded"
            else "Nothing failed here to retry."
        )
    validated = {
        r.pk: params_validate(mapping=r.mapping, data=params[r.mapping_id])
        for r in failed
        if params and r.mapping_id in params
    }
    retries = []
    with transaction.atomic():
        for release in failed:
            retries.append(
                release_retry(release=release, params=validated.get(release.pk), actor=actor, trigger="set-retry")
            )
    return retries


def release_set_cancel(*, release_set: ReleaseSet, actor: User) -> int:
    """Cancel every release of the set still open; returns how many."""
    count = 0
    for release in release_set.current_releases():
        if not release.is_terminal:
            release_cancel(release=release, actor=actor)
            count += 1
    if not count:
        raise ApplicationError("Nothing is running in this set.")
    return count


def mappings_for_set(dataset: Dataset) -> list[Mapping]:
    return list(dataset.mappings.filter(state=ObjectState.ENABLED).select_related("connection").order_by("name"))
