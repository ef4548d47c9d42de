"""A Celery worker bootstep: the worker's main process records a heartbeat on a timer.

Imported by ``config/celery_app.py`` before Django is set up, so at module level it imports
only ``heartbeats`` (which reads settings when called, not when imported)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from celery import bootsteps
from celery.signals import (
    task_failure,
    task_prerun,
    task_rejected,
    task_retry,
    task_revoked,
    task_success,
    task_unknown,
)
from django.conf import settings
from django_structlog.celery.receivers import CeleryReceiver

from portal.operations.heartbeats import last_beat_tick, worker_heartbeat

log = logging.getLogger(__name__)


class StructlogWorkerStep(bootsteps.Step):
    """django-structlog's worker step (``DjangoStructLogInitStep``) minus its publish receivers:
    the app config already connects those in every process (DJANGO_STRUCTLOG_CELERY_ENABLED), and
    with both, every task a task enqueues is logged twice."""

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        receiver = self.receiver = CeleryReceiver()
        task_prerun.connect(receiver.receiver_task_prerun)
        task_retry.connect(receiver.receiver_task_retry)
        task_success.connect(receiver.receiver_task_success)
        task_failure.connect(receiver.receiver_task_failure)
        task_revoked.connect(receiver.receiver_task_revoked)
        task_unknown.connect(receiver.receiver_task_unknown)
        task_rejected.connect(receiver.receiver_task_rejected)


class HeartbeatStep(bootsteps.StartStopStep):
    """Calls ``heartbeats.worker_heartbeat(hostname)`` now and every PORTAL_HEARTBEAT_SECONDS."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.tref: Any = None

    def start(self, worker: Any) -> None:
        self.beat(worker)
        self.tref = worker.timer.call_repeatedly(settings.PORTAL_HEARTBEAT_SECONDS, self.beat, (worker,), priority=10)

    def stop(self, worker: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    def beat(self, worker: Any) -> None:
        try:
            worker_heartbeat(worker.hostname)
            if _beat_went_silent():
                # Beat schedules the alerts check; without beat, a worker asks for it (the check's
                # Redis lock and "last check" time keep several workers from piling them up).
                worker.app.send_task("portal.tasks.alerts_check_task")
        except Exception:  # Redis away: the worker goes on, its heartbeat just ages
            log.warning("worker heartbeat not recorded", exc_info=True)


def _beat_went_silent() -> bool:
    """Beat ticked once (so it is deployed) but not lately, and no alerts check ran lately."""
    tick = last_beat_tick()
    if tick is None:
        return False
    silent = (datetime.now(UTC) - tick).total_seconds() > settings.PORTAL_ALERTS["BEAT_SILENT_SECONDS"]
    return silent and _check_is_stale()


def _check_is_stale() -> bool:
    from portal.operations.alerts import check_is_stale  # alerts needs the models, loaded after this module is imported

    return check_is_stale()
