"""Credential health: every enabled connection is tested again on a schedule (daily by
default, Celery beat: the one scheduled re-test), and the team is told when a credential is
about to lapse (``Connector.credential_warnings``, e.g. a pasted Tailer JWT). A connection that
starts failing is announced by the operations alert ``CONNECTION_FAILING`` (``portal.alerts``).

Notices go to the team's own channels (not a mapping's) through ``notifications.channel_send``:
an email, or one signed, timestamped webhook POST under the outbound policy. They are not
retried: tomorrow's check says it again while the problem lasts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from portal.automation.notifications import channel_send
from portal.crypto import InvalidToken
from portal.models import Connection, NotificationChannel, ObjectState
from portal.services.audit import audit
from portal.services.connections import connection_test

log = logging.getLogger(__name__)


@dataclass
class HealthResult:
    ok: bool | None
    started_failing: bool = False
    warnings: list[str] = field(default_factory=list)
    notified: int = 0


def connections_due() -> list[int]:
    """Enabled connections, each tested at most once per PORTAL_HEALTH_MIN_HOURS."""
    since = timezone.now() - timedelta(hours=settings.PORTAL_HEALTH_MIN_HOURS)
    return list(
        Connection.objects.filter(state=ObjectState.ENABLED)
        .exclude(last_test_at__gte=since)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def connection_health_check(*, connection: Connection) -> HealthResult:
    """Test the connection; tell the team if a credential lapses soon.

    A connection that starts failing is not announced here: the test's result is what the
    operations alerts read (``alerts.conditions``), and their ``CONNECTION_FAILING`` alert, opened
    at the next alerts check, deduplicated and resolved with a message, is the one announcement.
    """
    was_ok = connection.last_test_ok
    connection_test(connection=connection)
    connection.refresh_from_db()
    result = HealthResult(ok=connection.last_test_ok)
    result.started_failing = connection.last_test_ok is False and was_ok is not False
    try:
        result.warnings = list(connection.connector_class.credential_warnings(connection.credentials()))
    except (InvalidToken, ValueError):
        result.warnings = []  # the test above already says the credentials cannot be read
    if result.warnings:
        result.notified = notify_team(
            connection=connection, lines=[f"The connection {connection.name}: {w}" for w in result.warnings]
        )
    if result.started_failing or result.warnings:
        audit(
            actor=None,
            action="connection-health",
            obj=connection,
            changes={"started_failing": result.started_failing, "warnings": len(result.warnings)},
        )
    return result


def notify_team(*, connection: Connection, lines: list[str]) -> int:
    """One notice per enabled team channel that wants failures; returns how many were sent."""
    url = settings.PORTAL_BASE_URL.rstrip("/") + reverse("portal:connection-detail", args=[connection.pk])
    sent = 0
    for channel in NotificationChannel.objects.filter(
        team_id=connection.team_id, mapping__isnull=True, enabled=True, on_failure=True
    ):
        try:
            channel_send(
                channel,
                subject=f"[portal] {connection.name}: credential health",
                lines=[*lines, f"Connection: {url}"],
                event="connection.health",
                payload={"event": "connection.health", "connection": connection.pk, "messages": lines, "url": url},
            )
        except Exception as exc:  # a receiver's failure must not stop the health sweep
            log.warning("connection health notice to channel %s failed: %s", channel.pk, type(exc).__name__)
            continue
        sent += 1
    return sent
