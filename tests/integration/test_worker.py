"""The release flow with a real Celery worker process, real Redis and real PostgreSQL:
serialization, on_commit, countdowns and retries as they happen in production."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from portal import jobs
from portal.models import Connection, Release, ReleaseStatus, ReleaseStep, StepStatus
from portal.services.connections import connection_request_test
from portal.services.mappings import params_validate
from portal.services.releases import release_create
from portal.services.uploads import upload_create
from tests.helpers import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


@pytest.fixture
def setup(celery_worker_process, toucan_mapping, alice):
    upload = upload_create(
        dataset=toucan_mapping.dataset,
        file=SimpleUploadedFile("sales.csv", b"region,amount\nnorth,1\n" * 50),
        actor=alice,
    )
    return toucan_mapping, upload, alice


def start(mapping, file, user, **params):
    return release_create(
        mapping=mapping, upload=file, params=params_validate(mapping=mapping, data=params), actor=user
    )


def finished(release: Release):
    release.refresh_from_db()
    return release if release.is_terminal else None


def test_a_worker_runs_a_release_to_success(setup, sim):
    mapping, upload, user = setup
    release = start(mapping, upload, user)
    wait_for(lambda: finished(release), timeout=30, message="the release to finish")
    assert release.status == ReleaseStatus.SUCCEEDED, release.error
    assert list(release.steps.values_list("status", flat=True)) == [StepStatus.SUCCEEDED] * 6
    assert sim.state("toucan")["sources"]["demo-app/staging/sales.csv"]["sha256"] == upload.sha256


def test_transient_failures_are_retried_by_rescheduled_tasks(setup, sim):
    mapping, upload, user = setup
    sim.fail("toucan", "500", match="/operations", times=2)
    release = start(mapping, upload, user, operations=["release"])
    wait_for(lambda: finished(release), timeout=30, message="the release to finish")
    assert release.status == ReleaseStatus.SUCCEEDED
    assert release.steps.get(name="operation:release").attempts == 3


def test_the_connection_test_runs_in_the_worker(setup):
    mapping, _, user = setup
    connection = mapping.connection
    connection_request_test(connection=connection, actor=user)
    wait_for(lambda: Connection.objects.get(pk=connection.pk).last_test_at, timeout=20, message="the test result")
    connection.refresh_from_db()
    assert connection.last_test_ok is True
    assert "contributor@demo.example" in connection.last_test_message


def test_many_releases_are_followed_at_once_by_two_worker_processes(setup, sim):
    """Waiting never blocks a worker: 30 releases waiting on slow operations all finish."""
    mapping, upload, user = setup
    sim.config("toucan", delay=1.0)
    releases = [start(mapping, upload, user, operations=["release"], upload=False) for _ in range(30)]
    wait_for(lambda: all(finished(r) for r in releases), timeout=45, message="30 releases to finish")
    assert {r.status for r in releases} == {ReleaseStatus.SUCCEEDED}


def test_a_lost_task_is_recovered_by_the_sweeper(setup, sim, monkeypatch):
    """The engine task is never sent (as if Redis lost it); the beat sweeper finds the release."""
    from portal import tasks

    mapping, upload, user = setup
    monkeypatch.setattr(jobs, "release_advance", lambda release_id, countdown=0: None)
    release = start(mapping, upload, user, operations=["release"])
    monkeypatch.undo()
    lost = release.created_at.replace(year=2020)
    # The task was due long ago and never ran: the engine recorded when it was due.
    Release.objects.filter(pk=release.pk).update(created_at=lost, dispatch_due_at=lost)
    ReleaseStep.objects.filter(release=release).update(next_check_at=None)
    assert release.steps.filter(status=StepStatus.PENDING).count() == 2
    tasks.release_sweep_task.delay()
    wait_for(lambda: finished(release), timeout=30, message="the swept release to finish")
    assert release.status == ReleaseStatus.SUCCEEDED
