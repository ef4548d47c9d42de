"""Credential health: the daily re-test of enabled connections, the "last verified" badge,
and notices when a connection starts failing or a credential is about to lapse."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import jwt as pyjwt
import pytest
from django.conf import settings
from django.core import mail
from django.utils import timezone

from portal.automation.credential_health import connection_health_check, connections_due
from portal.automation.notifications import channel_create
from portal.crypto import encrypt_json
from portal.models import Alert, AuditEvent, Connection, NotificationChannel, ObjectState
from portal.operations.alerts import alerts_check
from tests.factories import ConnectionFactory
from tests.security.listener import listener
from tests.security.test_webhooks import verify

pytestmark = pytest.mark.django_db


@pytest.fixture
def team_email(team):
    return NotificationChannel.objects.create(team=team, kind="email", target="ops@example.org", on_failure=True)


def test_the_daily_task_is_scheduled_by_beat():
    entry = settings.CELERY_BEAT_SCHEDULE["connection-health"]
    assert entry["task"] == "portal.tasks.connection_health_sweep_task"
    assert entry["schedule"].hour == {settings.PORTAL_HEALTH_HOUR_UTC}


def test_only_enabled_connections_not_tested_lately_are_due(team):
    due = ConnectionFactory(team=team)
    ConnectionFactory(team=team, state=ObjectState.DISABLED)
    ConnectionFactory(team=team, last_test_at=timezone.now() - timedelta(hours=1), last_test_ok=True)
    stale = ConnectionFactory(team=team, last_test_at=timezone.now() - timedelta(days=2), last_test_ok=True)
    assert connections_due() == [due.pk, stale.pk]


def test_a_connection_that_starts_failing_tells_the_team_once(team, sim, team_email):
    """The sweep's failed test is announced once, by the CONNECTION_FAILING alert, not by a notice of its own."""
    connection = ConnectionFactory(
        team=team,
        base_url=sim.url("toucan"),
        last_test_ok=True,
        credentials_encrypted=encrypt_json({"login": "contributor@demo.example", "password": "changed-on-toucan"}),
    )
    result = connection_health_check(connection=connection)
    assert result.ok is False and result.started_failing and result.notified == 0
    assert mail.outbox == [], "credential health does not announce a failure: the alert does"
    alerts_check()  # other alerts (platform error rates counted by earlier tests) may fire too: not these mails
    told = [m for m in mail.outbox if connection.name in m.subject]
    assert len(told) == 1
    assert "fails its test" in told[0].body and "Invalid username or password" in told[0].body
    assert "changed-on-toucan" not in told[0].body
    assert Alert.objects.get(kind=Alert.Kind.CONNECTION_FAILING).connection_id == connection.pk
    assert AuditEvent.objects.filter(action="connection-health", object_id=str(connection.pk)).count() == 1
    again = connection_health_check(connection=Connection.objects.get(pk=connection.pk))
    assert again.ok is False and not again.started_failing and again.notified == 0
    alerts_check()
    told = [m for m in mail.outbox if connection.name in m.subject]
    assert len(told) == 1, "a connection that keeps failing is not announced every day"


def test_a_lapsing_credential_notice_is_a_signed_timestamped_webhook(team, sim) -> None:
    """Credential-health notices take release notifications' path: signed over a timestamp, under the policy."""
    token = pyjwt.encode({"exp": int(time.time()) + 3600, "sub": "x"}, "k" * 32, algorithm="HS256")
    connection = ConnectionFactory(
        team=team,
        platform="tailer",
        base_url=sim.url("tailer"),
        credentials_encrypted=encrypt_json({"auth_mode": "jwt", "jwt": token}),
    )
    with listener() as got:
        channel_create(team=team, kind="webhook", target=got.url + "/hook?token=abc", secret="s3cret")
        result = connection_health_check(connection=connection)
    assert result.notified == 1
    _method, path, headers, body = got.requests[0]
    assert path == "/hook?token=abc" and headers["X-Portal-Event"] == "connection.health"
    assert verify(b"s3cret", body, headers["X-Portal-Timestamp"], headers["X-Portal-Signature"])
    assert "expires in" in json.loads(body)["messages"][0] and token.encode() not in body


def test_a_lapsing_credential_notice_to_a_refused_receiver_is_not_sent(team, sim, settings) -> None:
    token = pyjwt.encode({"exp": int(time.time()) + 3600, "sub": "x"}, "k" * 32, algorithm="HS256")
    connection = ConnectionFactory(
        team=team,
        platform="tailer",
        base_url=sim.url("tailer"),
        credentials_encrypted=encrypt_json({"auth_mode": "jwt", "jwt": token}),
    )
    with listener() as got:
        channel_create(team=team, kind="webhook", target=got.url + "/hook")
        settings.PORTAL_OUTBOUND_ALLOW = []  # loopback is refused now (the connection's own test too)
        result = connection_health_check(connection=connection)
    assert result.warnings and result.notified == 0 and got.requests == []


def test_a_healthy_connection_sends_nothing_and_shows_verified(client, bob, toucan_mapping, team_email):
    result = connection_health_check(connection=toucan_mapping.connection)
    assert result.ok is True and result.notified == 0 and mail.outbox == []
    client.force_login(bob)
    for url in ("/", "/connections/", toucan_mapping.connection.get_absolute_url(), toucan_mapping.get_absolute_url()):
        html = client.get(url).content.decode()
        assert 'data-verified="ok"' in html and "verified" in html, url


def test_a_pasted_jwt_about_to_lapse_is_announced(team, sim, team_email):
    token = pyjwt.encode({"exp": int(time.time()) + 3600, "sub": "x"}, "k" * 32, algorithm="HS256")
    connection = ConnectionFactory(
        team=team,
        platform="tailer",
        base_url=sim.url("tailer"),
        credentials_encrypted=encrypt_json({"auth_mode": "jwt", "jwt": token}),
    )
    result = connection_health_check(connection=connection)
    assert result.warnings and "expires in" in result.warnings[0]
    assert any("expires in" in m.body for m in mail.outbox)
    assert token not in "".join(m.body for m in mail.outbox)


def test_the_badge_says_failing_and_never(client, bob, team):
    ConnectionFactory(team=team, name="Never")
    ConnectionFactory(team=team, name="Broken", last_test_ok=False, last_test_at=timezone.now())
    client.force_login(bob)
    html = client.get("/connections/").content.decode()
    assert 'data-verified="never"' in html and 'data-verified="failing"' in html
