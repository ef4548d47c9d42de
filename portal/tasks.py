"""Thin Celery entry points: take ids, load rows, call the engine or a service."""

from __future__ import annotations

from celery import shared_task

from portal.automation.credential_health import connection_health_check, connections_due
from portal.automation.notifications import deliver, release_finished
from portal.automation.schedules import scheduled_release
from portal.engine.core import release_advance, release_cancel_now, release_sweep
from portal.models import ActionRun, Connection, NotificationDelivery, Release
from portal.operations.alerts import alerts_check  # alerts imports notifications, which imports this module
from portal.selectors.rollups import release_rollup_days
from portal.services.actions import action_perform
from portal.services.connections import connection_test
from portal.uploads.services import tus_expire


@shared_task(name="portal.tasks.release_advance_task", acks_late=True)
def release_advance_task(release_id: int) -> None:
    release_advance(release_id)


@shared_task(name="portal.tasks.release_cancel_task", acks_late=True)
def release_cancel_task(release_id: int) -> None:
    release = Release.objects.filter(pk=release_id).first()
    if release is not None and not release.is_terminal:
        release_cancel_now(release)


@shared_task(name="portal.tasks.release_sweep_task", ignore_result=True)
def release_sweep_task() -> int:
    return release_sweep()


@shared_task(name="portal.tasks.connection_test_task", acks_late=True)
def connection_test_task(connection_id: int) -> None:
    connection = Connection.objects.filter(pk=connection_id).first()
    if connection is not None:
        connection_test(connection=connection)


@shared_task(name="portal.tasks.action_run_task", acks_late=True)
def action_run_task(run_id: int) -> None:
    run = (
        ActionRun.objects.select_related("connection", "mapping")
        .filter(pk=run_id, status=ActionRun.Status.QUEUED)
        .first()
    )
    if run is not None:
        action_perform(run=run)


@shared_task(name="portal.tasks.scheduled_release_task")
def scheduled_release_task(mapping_id: int) -> None:
    scheduled_release(mapping_id=mapping_id)


@shared_task(name="portal.tasks.notify_release_task", acks_late=True)
def notify_release_task(release_id: int) -> None:
    release = Release.objects.select_related("mapping", "dataset").filter(pk=release_id).first()
    if release is not None:
        release_finished(release)


@shared_task(name="portal.tasks.notification_deliver_task", acks_late=True)
def notification_deliver_task(delivery_id: int) -> None:
    delivery = (
        NotificationDelivery.objects.select_related("channel", "release__dataset", "release__mapping")
        .filter(pk=delivery_id, status=NotificationDelivery.Status.PENDING)
        .first()
    )
    if delivery is not None:
        deliver(delivery)


@shared_task(name="portal.tasks.alerts_check_task", ignore_result=True)
def alerts_check_task() -> int:
    return alerts_check()


@shared_task(name="portal.tasks.upload_expire_task", ignore_result=True)
def upload_expire_task() -> int:
    """Beat: delete unfinished tus uploads past PORTAL_UPLOAD_EXPIRE_SECONDS (portal.uploads)."""
    return tus_expire()


@shared_task(name="portal.tasks.release_rollup_task", ignore_result=True)
def release_rollup_task(days: int = 2) -> int:
    """Refresh the daily roll-ups the charts read (today and yesterday by default)."""
    return release_rollup_days(days=days)


@shared_task(name="portal.tasks.connection_health_sweep_task", ignore_result=True)
def connection_health_sweep_task() -> int:
    """Daily (beat): one health check task per enabled connection that is due."""
    due = connections_due()
    for pk in due:
        connection_health_task.delay(pk)
    return len(due)


@shared_task(name="portal.tasks.connection_health_task", acks_late=True)
def connection_health_task(connection_id: int) -> None:
    connection = Connection.objects.filter(pk=connection_id, state="enabled").first()
    if connection is not None:
        connection_health_check(connection=connection)
