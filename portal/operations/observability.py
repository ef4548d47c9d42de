"""Wiring of logs and metrics into the signals of Celery, django-structlog and the HTTP choke point.

Called once per process from ``PortalConfig.ready()``: web, worker and beat processes all count."""

from __future__ import annotations

from celery.signals import task_postrun
from django_structlog.celery.signals import bind_extra_task_metadata

from connectors import http
from portal.operations.log_context import bind_task_context
from portal.operations.metrics import on_task_postrun, record_http_answer


def connect() -> None:
    bind_extra_task_metadata.connect(bind_task_context, weak=False)
    task_postrun.connect(on_task_postrun, weak=False)
    http.add_observer(record_http_answer)
