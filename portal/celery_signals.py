"""Worker signal handlers: the heartbeat timer. Imported by config/celery_app.py, so every worker has them."""

from __future__ import annotations

import threading
from typing import Any

from celery.signals import worker_ready, worker_shutdown
from django.conf import settings

from . import heartbeats

_stop: threading.Event | None = None


@worker_ready.connect
def _start_heartbeat(sender: Any = None, **kwargs: Any) -> None:
    global _stop
    _stop = heartbeats.worker_heartbeat_start(sender.hostname, settings.PORTAL_HEARTBEAT_SECONDS)


@worker_shutdown.connect
def _stop_heartbeat(sender: Any = None, **kwargs: Any) -> None:
    if _stop is not None:
        _stop.set()
