import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("portal")
# All Celery settings live in Django settings, prefixed CELERY_.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Worker heartbeats for /readyz (portal/heartbeats.py); signal handlers only, no models at import.
import portal.celery_signals  # noqa: E402, F401
