"""Cron schedules of mappings, fired by Celery beat through django-celery-beat."""

from __future__ import annotations

import json
from datetime import datetime

from celery.schedules import crontab
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from portal.exceptions import ApplicationError
from portal.models import Mapping, MappingSchedule, ObjectState, Release
from portal.services.audit import audit
from portal.services.mappings import params_validate
from portal.services.releases import release_create

TASK = "portal.tasks.scheduled_release_task"


def parse_cron(expression: str) -> dict[str, str]:
    """The five fields of a cron expression; ValueError with a readable message otherwise."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError("A schedule has five fields: minute hour day-of-month month day-of-week (e.g. 0 6 * * 1-5)")
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    try:
        crontab(
            minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year, day_of_week=day_of_week
        )
    except (ValueError, TypeError) as exc:
        raise ValueError(f"Not a valid schedule: {exc}") from None
    return {
        "minute": minute,
        "hour": hour,
        "day_of_month": day_of_month,
        "month_of_year": month_of_year,
        "day_of_week": day_of_week,
    }


@transaction.atomic
def schedule_set(*, mapping: Mapping, cron: str, enabled: bool, actor: User) -> MappingSchedule:
    fields = parse_cron(cron)
    crontab_row, _ = CrontabSchedule.objects.get_or_create(timezone="UTC", **fields)
    schedule, _ = MappingSchedule.objects.get_or_create(mapping=mapping, defaults={"cron": cron, "created_by": actor})
    task = schedule.periodic_task or PeriodicTask(name=f"Release mapping {mapping.pk}", task=TASK)
    task.crontab, task.args, task.enabled = crontab_row, json.dumps([mapping.pk]), enabled
    task.save()
    schedule.cron, schedule.enabled, schedule.periodic_task = " ".join(cron.split()), enabled, task
    schedule.save()
    audit(actor=actor, action="schedule-set", obj=mapping, changes={"cron": schedule.cron, "enabled": enabled})
    return schedule


@transaction.atomic
def schedule_delete(*, schedule: MappingSchedule, actor: User) -> None:
    audit(actor=actor, action="schedule-deleted", obj=schedule.mapping, changes={"cron": schedule.cron})
    if schedule.periodic_task:
        schedule.periodic_task.delete()
    schedule.delete()


def next_run(schedule: MappingSchedule, *, now: datetime | None = None) -> datetime | None:
    if not schedule.enabled:
        return None
    now = now or timezone.now()
    fields = parse_cron(schedule.cron)
    return now + crontab(**fields, nowfun=lambda: now).remaining_estimate(now)


def scheduled_release(*, mapping_id: int) -> Release | None:
    """What beat fires: release the mapping with its newest upload and saved parameters,
    or record why not (disabled mapping, no file)."""

    schedule = (
        MappingSchedule.objects.select_related("mapping__connection", "mapping__dataset")
        .filter(mapping_id=mapping_id)
        .first()
    )
    if schedule is None or not schedule.enabled:
        return None
    mapping = schedule.mapping
    reason = ""
    upload = mapping.dataset.uploads.order_by("-created_at", "-id").first()
    if mapping.state != ObjectState.ENABLED:
        reason = f"Not run: the mapping is {mapping.state}."
    elif mapping.connection.state != ObjectState.ENABLED:
        reason = f"Not run: the connection {mapping.connection.name} is {mapping.connection.state}."
    elif mapping.connection.connector_class.needs_file and upload is None:
        reason = "Not run: no file has been uploaded for this dataset."
    release = None
    if not reason:
        try:
            params = params_validate(mapping=mapping, data=mapping.default_params or {})
            release = release_create(
                mapping=mapping, upload=upload, params=params, actor=None, trigger="schedule", schedule=schedule
            )
            reason = f"Started release #{release.pk}."
        except ApplicationError as exc:
            reason = f"Not run: {exc.message}"
        except Exception as exc:  # pydantic: the saved parameters no longer validate
            reason = f"Not run: the saved parameters are invalid ({type(exc).__name__})."
    MappingSchedule.objects.filter(pk=schedule.pk).update(last_run_at=timezone.now(), last_outcome=reason[:300])
    if release is None:
        audit(actor=None, action="schedule-skipped", obj=mapping, changes={"reason": reason})
    return release
