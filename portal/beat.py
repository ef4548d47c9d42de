"""Celery beat's scheduler, with a heartbeat: every tick of its loop is recorded in Redis."""

from __future__ import annotations

import logging
from typing import Any

from django_celery_beat.schedulers import DatabaseScheduler

from . import alerts, heartbeats

log = logging.getLogger(__name__)


class PortalScheduler(DatabaseScheduler):
    """django-celery-beat's database scheduler; ``tick`` also says beat is alive."""

    def tick(self, *args: Any, **kwargs: Any) -> float:
        try:
            heartbeats.beat_tick()
            # The scheduled check needs a worker; with none running it for a while, beat runs it,
            # so "no worker" is still reported.
            if alerts.check_is_stale():
                alerts.alerts_check()
        except Exception:  # Redis or the database away: beat keeps scheduling
            log.warning("beat heartbeat or alerts check failed", exc_info=True)
        return float(super().tick(*args, **kwargs))
