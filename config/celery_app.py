import logging.config
import os
from typing import Any

from celery import Celery
from celery.signals import setup_logging
from django.conf import settings

from portal.operations.worker_steps import HeartbeatStep, StructlogWorkerStep

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("portal")
# All Celery settings live in Django settings, prefixed CELERY_.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# django-structlog: the web request's context (request_id, user_id...) travels into its tasks.
app.steps["worker"].add(StructlogWorkerStep)
# Each worker's main process records a heartbeat (the operations page and alerts read it).
app.steps["worker"].add(HeartbeatStep)


@setup_logging.connect
def _structured_logging(**kwargs: Any) -> None:
    """Celery logs through Django's LOGGING (structlog), as django-structlog documents."""
    logging.config.dictConfig(settings.LOGGING)
