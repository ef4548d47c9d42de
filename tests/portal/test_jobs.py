"""portal.jobs sends tasks by name: every name it sends must be a task the worker has."""

from __future__ import annotations

from config.celery_app import app
from portal import jobs, tasks


def test_every_job_names_a_registered_task():
    names = {value for key, value in vars(jobs).items() if key.isupper() and isinstance(value, str)}
    assert tasks.__name__ == "portal.tasks"  # imported: its tasks are registered
    assert names, "jobs declares its task names"
    missing = names - set(app.tasks.keys())
    assert not missing, f"jobs sends tasks nobody defines: {sorted(missing)}"
