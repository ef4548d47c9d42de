"""Wiring of logs and metrics into the signals of Celery, django-structlog and the HTTP choke point.

Called once per process from ``PortalConfig.ready()``: web, worker and beat processes all count.
"""

from __future__ import annotations

from celery.signals import task_postrun
from django_structlog.celery.signals import bind_extra_task_metadata

from connectors import http

from . import log_context, metrics


def connect() -> None:
    bind_extra_task_metadata.connect(log_context.bind_task_context, weak=False)
    task_postrun.connect(metrics.on_task_postrun, weak=False)
    http.add_observer(metrics.record_http_answer)
