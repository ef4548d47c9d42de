"""The release engine, driven step by step in the test process against the Toucan simulator.

``dispatch`` is replaced by a recorder: these tests call ``release_advance`` themselves,
as a worker would when the countdown ends (the real worker is in tests/integration)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from portal import jobs
from portal.engine.core import (
    _write,
    backoff,
    max_countdown,
    poll_delay,
    release_advance,
    release_cancel_now,
    release_sweep,
)
from portal.exceptions import ApplicationError
from portal.models import AuditEvent, Release, ReleaseStatus, ReleaseStep, StepStatus
from portal.services.mappings import params_validate
from portal.services.releases import release_cancel, release_create, release_step_resolve
from tests.helpers import drive_release as drive

pytestmark = pytest.mark.django_db


@pytest.fixture
def dispatched(monkeypatch):
    calls: list[tuple[int, float]] = []
    monkeypatch.setattr(jobs, "release_advance", lambda release_id, countdown=0: calls.append((release_id, countdown)))
    return calls


def make_release(mapping, upload, user, **params):
    form_params = params_validate(
        mapping=mapping, data=params or {"operations": ["preprocess_data_sources", "release"]}
    )
    return release_create(mapping=mapping, upload=upload, params=form_params, actor=user)


def test_it_runs_every_step_to_success(toucan_mapping, csv_upload, alice, dispatched, sim):
    release = drive(make_release(toucan_mapping, csv_upload, alice))
    assert release.status == ReleaseStatus.SUCCEEDED
    steps = list(release.steps.all())
    assert [s.name for s in steps] == ["upload", "operation:preprocess_data_sources", "operation:release"]
    assert all(s.status == StepStatus.SUCCEEDED for s in steps)
    assert all(s.remote_ref for s in steps[1:]), "operation ids are kept"
    assert release.started_at and release.finished_at
    assert sim.state("toucan")["sources"]["demo-app/staging/sales.csv"]["size"] == csv_upload.size
    messages = list(release.events.values_list("message", flat=True))
    assert messages[0].startswith("Release queued") and messages[-1] == "Release succeeded"


def test_a_waiting_step_is_rescheduled_not_slept_on(toucan_mapping, csv_upload, alice, dispatched, sim):
    sim.config("toucan", delay=5)
    release = make_release(toucan_mapping, csv_upload, alice, operations=["release"])
    started = time.monotonic()
    release_advance(release.pk)
    assert time.monotonic() - started < 3, "the engine returned instead of waiting for the platform"
    step = release.steps.get(name="operation:release")
    assert step.status == StepStatus.WAITING
    assert step.remote_ref, "the operation id was stored at once"
    assert step.next_check_at > timezone.now()
    assert dispatched[-1][0] == release.pk and dispatched[-1][1] > 0


def test_a_server_error_is_retried_with_backoff_then_succeeds(toucan_mapping, csv_upload, alice, dispatched, sim):
    sim.fail("toucan", "500", match="/operations", times=2)
    release = drive(make_release(toucan_mapping, csv_upload, alice, operations=["release"]))
    assert release.status == ReleaseStatus.SUCCEEDED
    step = release.steps.get(name="operation:release")
    assert step.attempts == 3
    warnings = release.events.filter(level="warning").values_list("message", flat=True)
    assert len(warnings) == 2 and all("retry" in w for w in warnings)


def test_it_gives_up_after_the_attempt_limit(toucan_mapping, csv_upload, alice, dispatched, sim, settings):
    settings.PORTAL_ENGINE = {**settings.PORTAL_ENGINE, "MAX_ATTEMPTS": 3}
    sim.fail("toucan", "503", match="/operations", times=10)
    release = drive(make_release(toucan_mapping, csv_upload, alice, operations=["release"]))
    assert release.status == ReleaseStatus.FAILED
    step = release.steps.get(name="operation:release")
    assert step.error.startswith("Gave up after 3 attempts")
    assert "503" in step.error


def test_a_rate_limit_honours_retry_after(toucan_mapping, csv_upload, alice, dispatched, sim):
    sim.fail("toucan", "429", match="/operations", retry_after=7)
    release = make_release(toucan_mapping, csv_upload, alice, operations=["release"])
    release_advance(release.pk)
    step = release.steps.get(name="operation:release")
    assert step.status == StepStatus.PENDING
    assert step.next_check_at - timezone.now() > timedelta(seconds=6)
    assert dispatched[-1][1] >= 6.5


def test_a_refused_login_fails_at_once_without_retry(toucan_mapping, csv_upload, alice, dispatched, sim):
    sim.fail("toucan", "401", match="/data/sources")
    release = drive(make_release(toucan_mapping, csv_upload, alice))
    assert release.status == ReleaseStatus.FAILED
    upload = release.steps.get(name="upload")
    assert upload.attempts == 1
    assert "401" in upload.error
    assert set(release.steps.exclude(name="upload").values_list("status", flat=True)) == {StepStatus.SKIPPED}


def test_a_timeout_of_a_mutating_call_is_never_retried_blindly(toucan_mapping, csv_upload, alice, dispatched, sim):
    # The request went out and no answer came: Toucan cannot be asked about an operation
    # whose id it never sent back, so a person decides.
    sim.fail("toucan", "hang", match="/operations", hang_seconds=3)
    release = make_release(toucan_mapping, csv_upload, alice, operations=["release"])
    ReleaseStep.objects.filter(release=release, name="upload").update(status=StepStatus.SUCCEEDED)
    release_advance(release.pk)
    step = release.steps.get(name="operation:release")
    assert step.status == StepStatus.ATTENTION and step.attempts == 1
    release.refresh_from_db()
    assert release.status == ReleaseStatus.ATTENTION
    assert release.events.filter(message__contains="timed out").exists()


def test_a_timeout_of_a_check_is_transient(toucan_mapping, csv_upload, alice, dispatched, sim):
    sim.config("toucan", delay=2)
    release = make_release(toucan_mapping, csv_upload, alice, operations=["release"])
    ReleaseStep.objects.filter(release=release, name="upload").update(status=StepStatus.SUCCEEDED)
    release_advance(release.pk)
    sim.fail("toucan", "hang", match="/operations/", hang_seconds=3)
    ReleaseStep.objects.filter(release=release).update(next_check_at=timezone.now())
    release_advance(release.pk)
    step = release.steps.get(name="operation:release")
    assert step.status == StepStatus.WAITING and step.transient_failures == 1
    assert "timed out" in step.message


def test_a_remote_failure_shows_the_platforms_message(toucan_mapping, csv_upload, alice, dispatched, sim):
    sim.fail("toucan", "operation_failed", message="Preprocess failed: column amount missing")
    release = drive(make_release(toucan_mapping, csv_upload, alice, operations=["preprocess_data_sources", "release"]))
    assert release.status == ReleaseStatus.FAILED
    assert (
        release.steps.get(name="operation:preprocess_data_sources").error == "Preprocess failed: column amount missing"
    )
    assert release.steps.get(name="operation:release").status == StepStatus.SKIPPED
    assert "column amount missing" in release.error


def test_a_claimed_step_is_not_run_twice(toucan_mapping, csv_upload, alice, dispatched, sim):
    release = make_release(toucan_mapping, csv_upload, alice, operations=["release"])
    # Another worker holds the upload step (its lease has not run out).
    ReleaseStep.objects.filter(release=release, name="upload").update(
        status=StepStatus.RUNNING, attempts=1, lease_until=timezone.now() + timedelta(minutes=1)
    )
    release_advance(release.pk)
    assert release.steps.get(name="upload").attempts == 1
    assert sim.state("toucan")["sources"] == {}


def test_an_interrupted_idempotent_step_runs_again(toucan_mapping, csv_upload, alice, dispatched, sim):
    release = make_release(toucan_mapping, csv_upload, alice, operations=["release"])
    ReleaseStep.objects.filter(release=release, name="upload").update(
        status=StepStatus.RUNNING, attempts=1, lease_until=timezone.now() - timedelta(seconds=1)
    )
    release = drive(release)
    assert release.status == ReleaseStatus.SUCCEEDED
    assert release.events.filter(message__contains="interrupted, running it again").exists()


def test_an_interrupted_mutating_step_is_never_repeated_blindly(toucan_mapping, csv_upload, alice, dispatched, sim):
    release = make_release(toucan_mapping, csv_upload, alice, operations=["release"])
    ReleaseStep.objects.filter(release=release, name="upload").update(status=StepStatus.SUCCEEDED)
    ReleaseStep.objects.filter(release=release, name="operation:release").update(
        status=StepStatus.RUNNING, attempts=1, lease_until=timezone.now() - timedelta(seconds=1)
    )
    release_advance(release.pk)
    release.refresh_from_db()
    assert release.status == ReleaseStatus.ATTENTION
    step = release.steps.get(name="operation:release")
    assert step.attempts == 1 and step.status == StepStatus.ATTENTION
    assert "Needs attention" in step.message
    assert sim.state("toucan")["operations"] == {}


def test_an_interrupted_step_whose_answer_came_back_continues_from_the_platform(
    toucan_mapping, csv_upload, alice, dispatched, sim
):
    # The worker stored the operation id, then died: the lookup shows it happened.
    release = make_release(toucan_mapping, csv_upload, alice, operations=["release"])
    ReleaseStep.objects.filter(release=release, name="upload").update(status=StepStatus.SUCCEEDED)
    release_advance(release.pk)
    step = release.steps.get(name="operation:release")
    ReleaseStep.objects.filter(pk=step.pk).update(
        status=StepStatus.RUNNING, lease_until=timezone.now() - timedelta(seconds=1)
    )
    release = drive(release)
    assert release.status == ReleaseStatus.SUCCEEDED
    assert len(sim.state("toucan")["operations"]) == 1
    assert release.events.filter(message__contains="shows it happened").exists()


@pytest.mark.parametrize("decision", ["happened", "send-again"])
def test_a_person_decides_a_step_that_needs_attention(toucan_mapping, csv_upload, alice, dispatched, sim, decision):
    release = make_release(toucan_mapping, csv_upload, alice, operations=["release"])
    ReleaseStep.objects.filter(release=release, name="upload").update(status=StepStatus.SUCCEEDED)
    ReleaseStep.objects.filter(release=release, name="operation:release").update(
        status=StepStatus.RUNNING, attempts=1, lease_until=timezone.now() - timedelta(seconds=1)
    )
    release_advance(release.pk)
    step = release.steps.get(name="operation:release")
    release.refresh_from_db()
    release_step_resolve(release=release, step=step, happened=decision == "happened", actor=alice)
    release = drive(release)
    assert release.status == ReleaseStatus.SUCCEEDED
    sent = len(sim.state("toucan")["operations"])
    assert sent == (0 if decision == "happened" else 1)
    action = "release-step-happened" if decision == "happened" else "release-step-send-again"
    assert AuditEvent.objects.filter(action=action, object_id=str(release.pk), actor=alice).exists()
    with pytest.raises(ApplicationError):
        release_step_resolve(release=release, step=step, happened=True, actor=alice)


def test_a_stale_workers_late_write_is_discarded(toucan_mapping, csv_upload, alice, dispatched, sim):
    release = make_release(toucan_mapping, csv_upload, alice, operations=["release"])
    step = release.steps.get(name="upload")
    stale = ReleaseStep.objects.get(pk=step.pk)
    stale.fence = step.fence
    # Another worker claimed the step since (the fence moved on) and finished it.
    ReleaseStep.objects.filter(pk=step.pk).update(fence=step.fence + 1, status=StepStatus.SUCCEEDED)
    assert not _write(stale, status=StepStatus.FAILED, error="late")
    assert release.steps.get(pk=step.pk).status == StepStatus.SUCCEEDED


def test_a_long_wait_stays_in_the_database(toucan_mapping, csv_upload, alice, dispatched, sim, settings):
    settings.PORTAL_ENGINE = {**settings.PORTAL_ENGINE, "MAX_COUNTDOWN_SECONDS": 3.0}
    sim.fail("toucan", "429", match="/operations", retry_after=3000)
    release = make_release(toucan_mapping, csv_upload, alice, operations=["release"])
    ReleaseStep.objects.filter(release=release, name="upload").update(status=StepStatus.SUCCEEDED)
    release_advance(release.pk)
    step = release.steps.get(name="operation:release")
    assert step.status == StepStatus.PENDING
    assert step.next_check_at > timezone.now() + timedelta(seconds=max_countdown())
    assert all(countdown <= max_countdown() for _, countdown in dispatched)
    # Once due, the sweeper's scan picks it up.
    ReleaseStep.objects.filter(pk=step.pk).update(next_check_at=timezone.now())
    dispatched.clear()
    assert release_sweep() == 1 and dispatched == [(release.pk, 0)]


def test_a_waiting_step_fails_past_its_deadline(toucan_mapping, csv_upload, alice, dispatched, sim):
    sim.config("toucan", delay=30)
    toucan_mapping.wait_deadlines = {"operation": 1}
    toucan_mapping.save()
    release = make_release(toucan_mapping, csv_upload, alice, operations=["release"])
    ReleaseStep.objects.filter(release=release, name="upload").update(status=StepStatus.SUCCEEDED)
    release = drive(release)
    assert release.status == ReleaseStatus.FAILED
    step = release.steps.get(name="operation:release")
    assert "deadline" in step.error and step.remote_ref in step.error


def test_polling_follows_a_fifth_of_the_elapsed_time(settings):
    settings.PORTAL_ENGINE = {**settings.PORTAL_ENGINE, "POLL_INITIAL_SECONDS": 2.0, "POLL_MAX_SECONDS": 60.0}
    assert poll_delay(1, elapsed=1) == 2.0
    assert poll_delay(5, elapsed=50) == 10.0
    assert poll_delay(9, elapsed=1000) == 60.0
    assert poll_delay(2, elapsed=8, expected=9) == 1.0


def test_the_sweeper_redispatches_overdue_releases_only(toucan_mapping, csv_upload, alice, dispatched, sim):
    overdue = make_release(toucan_mapping, csv_upload, alice, operations=["release"])
    on_time = make_release(toucan_mapping, csv_upload, alice, operations=["release"])
    finished = make_release(toucan_mapping, csv_upload, alice, operations=["release"])
    Release.objects.filter(pk=finished.pk).update(status=ReleaseStatus.SUCCEEDED)
    past = timezone.now() - timedelta(minutes=5)
    # Their tasks were due long ago and never ran (lost): the engine recorded when each was due.
    Release.objects.filter(pk__in=[overdue.pk, finished.pk]).update(created_at=past, dispatch_due_at=past)
    ReleaseStep.objects.filter(release=overdue, name="upload").update(status=StepStatus.WAITING, next_check_at=past)
    ReleaseStep.objects.filter(release=on_time, name="upload").update(
        status=StepStatus.WAITING, next_check_at=timezone.now() + timedelta(minutes=1)
    )
    dispatched.clear()
    assert release_sweep() == 1
    assert dispatched == [(overdue.pk, 0)]


def test_cancel_stops_pending_steps(toucan_mapping, csv_upload, alice, dispatched, sim):
    sim.config("toucan", delay=5)
    release = make_release(toucan_mapping, csv_upload, alice, operations=["preprocess_data_sources", "release"])
    release_advance(release.pk)  # upload done, preprocess waiting on the platform
    release_cancel(release=release, actor=alice)
    release_cancel_now(Release.objects.get(pk=release.pk))
    release.refresh_from_db()
    assert release.status == ReleaseStatus.CANCELLED
    statuses = dict(release.steps.values_list("name", "status"))
    assert statuses == {
        "upload": "succeeded",
        "operation:preprocess_data_sources": "cancelled",
        "operation:release": "cancelled",
    }
    waiting = release.steps.get(name="operation:preprocess_data_sources")
    assert "no longer followed" in waiting.error, "Toucan has no cancel API: the reason says so"


def test_backoff_is_capped_and_jittered():
    delays = {backoff(10, base=1, cap=8) for _ in range(50)}
    assert max(delays) <= 8 and min(delays) >= 0.5 and len(delays) > 1
    assert backoff(1, base=1, cap=8, retry_after=30) == 30


def test_a_target_that_no_longer_validates_fails_the_step_readably(toucan_mapping, csv_upload, alice, dispatched, sim):
    release = make_release(toucan_mapping, csv_upload, alice, operations=["release"])
    type(toucan_mapping).objects.filter(pk=toucan_mapping.pk).update(
        target={"small_app": "demo app!", "data_source": "sales.csv"}
    )
    release = drive(release)
    assert release.status == ReleaseStatus.FAILED
    error = release.steps.get(name="upload").error
    assert (
        error.startswith("The mapping's target or this release's parameters no longer validate")
        and "small_app" in error
    )


def test_a_file_missing_from_the_workers_storage_fails_the_step_with_the_cause(
    toucan_mapping, csv_upload, alice, dispatched, sim
):
    # The worker reads another storage than the web wrote to: here, the file is gone from it.
    release = make_release(toucan_mapping, csv_upload, alice, operations=["release"])
    csv_upload.file.storage.delete(csv_upload.file.name)
    release = drive(release)
    assert release.status == ReleaseStatus.FAILED
    error = release.steps.get(name="upload").error
    assert error.startswith("The release's file is not in the file storage this worker reads"), error
    assert "demo-app/staging/sales.csv" not in sim.state("toucan")["sources"], "nothing reached the platform"
