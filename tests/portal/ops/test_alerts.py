"""Alerts through the team's channels: fired once, resolved once, for a stopped worker (a real process),
a stopped beat (real beat and worker processes, the webhook received here), an overdue step, a platform
failing its calls, and a connection failing its test."""

from __future__ import annotations

from datetime import timedelta

import pytest
import structlog
from django.core import mail
from django.utils import timezone

from connectors.http import Exchange
from portal.automation.notifications import channel_create
from portal.models import Alert, Connection, ReleaseStep, StepStatus
from portal.operations.alerts import alerts_check
from portal.operations.heartbeats import last_beat_tick, worker_heartbeats
from portal.operations.metrics import ALERT_FAILURES_KEY, record_http_answer, redis_client
from tests.factories import ReleaseFactory
from tests.helpers import wait_for
from tests.simulator import free_port


@pytest.fixture
def email_channel(team):
    return channel_create(team=team, kind="email", target="oncall@example.com", on_failure=True)


def subjects() -> list[str]:
    return [message.subject for message in mail.outbox]


def heartbeat_of(prefix: str):
    return next((when for host, when in worker_heartbeats().items() if host.startswith(prefix)), None)


@pytest.mark.django_db(transaction=True)
def test_a_stopped_worker_fires_once_and_resolves_when_it_returns(ops_processes, email_channel):
    worker = ops_processes.worker("opsalert")
    wait_for(lambda: heartbeat_of("opsalert@"), timeout=15, message="the worker's heartbeat")
    alerts_check()
    assert not Alert.objects.filter(kind=Alert.Kind.WORKER_SILENT).exists()

    worker.stop(kill=True)  # as when it dies
    stopped_at = heartbeat_of("opsalert@")
    wait_for(lambda: (timezone.now() - stopped_at).total_seconds() > 3.5, timeout=10, message="the heartbeat to age")
    alerts_check()
    alerts_check()  # still silent: no second message
    alert = Alert.objects.get(kind=Alert.Kind.WORKER_SILENT)
    assert alert.is_open and alert.key.startswith("worker:opsalert@")
    assert len([s for s in subjects() if "opsalert@" in s]) == 1
    assert subjects()[0].startswith("[portal] Alert: Worker opsalert@")
    assert mail.outbox[0].to == ["oncall@example.com"]

    ops_processes.worker("opsalert")  # the same node comes back
    wait_for(lambda: (timezone.now() - heartbeat_of("opsalert@")).total_seconds() < 2, timeout=15, message="a new beat")
    alerts_check()
    alerts_check()
    alert.refresh_from_db()
    assert not alert.is_open
    assert [s.split(":")[0] for s in subjects() if "opsalert@" in s] == ["[portal] Alert", "[portal] Resolved"]


@pytest.mark.django_db(transaction=True)
def test_a_stopped_beat_is_reported_by_a_worker_and_resolved_by_beat(ops_processes, receiver, team):
    """Beat schedules the check on a worker; with beat stopped the worker asks for the check itself."""
    channel_create(team=team, kind="webhook", target=receiver.url, on_failure=True)
    fast = {"PORTAL_ALERT_CHECK_SECONDS": "1"}
    ops_processes.worker("opsbeat", **fast)
    beat = ops_processes.beat(**fast)
    wait_for(last_beat_tick, timeout=30, message="beat's first tick")
    wait_for(lambda: redis_client().get("portal:alerts:last_check"), timeout=30, message="a scheduled check")
    assert receiver.events("beat_silent") == []

    beat.stop()
    wait_for(lambda: receiver.events("beat_silent"), timeout=30, message="the beat alert")
    assert receiver.events("beat_silent") == [("alert.fired", "beat")]

    ops_processes.beat(**fast)
    wait_for(lambda: len(receiver.events("beat_silent")) == 2, timeout=30, message="the resolved message")
    assert receiver.events("beat_silent") == [("alert.fired", "beat"), ("alert.resolved", "beat")]
    assert Alert.objects.get(key="beat").resolved_at is not None


@pytest.mark.django_db
def test_an_overdue_step_alerts_its_team_until_it_moves(toucan_mapping, alice, email_channel, settings):
    release = ReleaseFactory(mapping=toucan_mapping, created_by=alice, status="running", started_at=timezone.now())
    step = ReleaseStep.objects.create(
        release=release,
        position=0,
        name="operation:release",
        label="Release",
        status=StepStatus.WAITING,
        next_check_at=timezone.now() - timedelta(minutes=30),
    )
    alerts_check()
    alerts_check()
    alert = Alert.objects.get(kind=Alert.Kind.STEP_OVERDUE)
    assert (alert.release_id, alert.team_id, alert.key) == (release.pk, release.team_id, f"step:{step.pk}")
    assert len(mail.outbox) == 1
    assert f"Release #{release.pk}" in mail.outbox[0].subject and "30 min overdue" in mail.outbox[0].subject
    assert release.get_absolute_url() in mail.outbox[0].body

    ReleaseStep.objects.filter(pk=step.pk).update(next_check_at=timezone.now() + timedelta(seconds=5))
    alerts_check()
    assert Alert.objects.get(pk=alert.pk).resolved_at is not None
    assert mail.outbox[1].subject.startswith("[portal] Resolved: Release #")


@pytest.mark.django_db
def test_a_platform_failing_its_calls_alerts_the_teams_using_it(toucan_mapping, email_channel, settings):
    settings.PORTAL_ALERTS = {**settings.PORTAL_ALERTS, "ERROR_MIN_CALLS": 10, "ERROR_RATE": 0.5}
    with structlog.contextvars.bound_contextvars(platform="toucan"):
        for code in [503] * 8 + [200] * 2 + [None] * 2:
            record_http_answer(Exchange("GET", "http://x/", code, 0.1))
    alerts_check()
    alert = Alert.objects.get(kind=Alert.Kind.PLATFORM_ERRORS)
    assert alert.key == "platform:toucan" and "83% of 12 calls" in alert.message
    assert len(mail.outbox) == 1

    with structlog.contextvars.bound_contextvars(platform="toucan"):
        for _ in range(20):
            record_http_answer(Exchange("GET", "http://x/", 200, 0.1))
    alerts_check()
    assert Alert.objects.get(pk=alert.pk).resolved_at is not None
    assert len(mail.outbox) == 2


@pytest.mark.django_db
def test_a_connection_failing_its_test_alerts_once_then_resolves(toucan_mapping, email_channel, charlie):
    connection = toucan_mapping.connection
    Connection.objects.filter(pk=connection.pk).update(
        last_test_ok=False, last_test_message="POST /login answered 401: bad credentials"
    )
    alerts_check()
    alerts_check()
    alert = Alert.objects.get(kind=Alert.Kind.CONNECTION_FAILING)
    assert alert.team_id == connection.team_id
    assert len(mail.outbox) == 1 and "answered 401" in mail.outbox[0].body

    Connection.objects.filter(pk=connection.pk).update(last_test_ok=True)
    alerts_check()
    assert Alert.objects.get(pk=alert.pk).resolved_at is not None
    assert len(mail.outbox) == 2


@pytest.mark.django_db
def test_a_channel_that_fails_is_retried_at_the_next_check_only(toucan_mapping, receiver, team, email_channel):
    """A webhook that refuses the message gets it again at the next check; the email is not sent twice."""
    hook = channel_create(team=team, kind="webhook", target=f"http://127.0.0.1:{free_port()}/hook", on_failure=True)
    Connection.objects.filter(pk=toucan_mapping.connection_id).update(last_test_ok=False, last_test_message="401")
    alerts_check()
    alert = Alert.objects.get(kind=Alert.Kind.CONNECTION_FAILING)
    assert not alert.notify_done and alert.delivery_error
    assert redis_client().get(ALERT_FAILURES_KEY) == "1"
    hook.target = receiver.url
    hook.save()
    alerts_check()
    alert.refresh_from_db()
    assert alert.notify_done and alert.notified["fired"] == sorted([email_channel.pk, hook.pk])
    assert len(mail.outbox) == 1
    assert receiver.events() == [("alert.fired", f"connection:{toucan_mapping.connection_id}")]


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_connection_whose_scheduled_test_starts_failing_alerts_its_team(
    celery_worker_process, toucan_mapping, email_channel
):
    """Beat's daily credential-health sweep runs on the worker; a password changed on the platform's side fails it."""
    from portal.crypto import encrypt_json
    from portal.tasks import connection_health_sweep_task

    connection = toucan_mapping.connection
    connection_health_sweep_task.delay()
    wait_for(lambda: Connection.objects.get(pk=connection.pk).last_test_ok is True, timeout=30, message="a test")
    alerts_check()
    assert not Alert.objects.filter(kind=Alert.Kind.CONNECTION_FAILING).exists()

    Connection.objects.filter(pk=connection.pk).update(
        credentials_encrypted=encrypt_json({"login": "contributor@demo.example", "password": "changed-since"}),
        last_test_at=timezone.now() - timedelta(days=1),  # a day later: due again
    )
    connection_health_sweep_task.delay()
    wait_for(lambda: Connection.objects.get(pk=connection.pk).last_test_ok is False, timeout=30, message="a failure")
    alerts_check()
    alert = Alert.objects.get(kind=Alert.Kind.CONNECTION_FAILING, connection=connection)
    assert alert.is_open and "fails its test" in alert.message
    assert len(mail.outbox) == 1
