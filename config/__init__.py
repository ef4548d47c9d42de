# Load the Celery app when Django starts so shared_task uses it (cookiecutter-django).
from config.celery_app import app as celery_app

__all__ = ("celery_app",)
