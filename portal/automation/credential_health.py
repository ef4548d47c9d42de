"""Credential health: every enabled connection is tested again on a schedule (daily by
default, Celery beat), and the team is told when a connection starts failing or when a
credential is about to lapse (``Connector.credential_warnings``, e.g. a pasted Tailer JWT).

Notices go to the team's own channels (not a mapping's): an email, or one signed webhook
POST. They are not retried: tomorrow's check says it again while the problem lasts."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse
from django.utils import timezone

from portal.automation.notifications import SIGNATURE_HEADER, sign, webhook_target_check
from portal.crypto import InvalidToken, decrypt_json
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
    """Test the connection; tell the team if it just started failing or a credential lapses soon."""
    was_ok = connection.last_test_ok
    connection_test(connection=connection)
    connection.refresh_from_db()
    result = HealthResult(ok=connection.last_test_ok)
    result.started_failing = connection.last_test_ok is False and was_ok is not False
    try:
        result.warnings = list(connection.connector_class.credential_warnings(connection.credentials()))
    except (InvalidToken, ValueError):
        result.warnings = []  # the test above already says the credentials cannot be read
    notices = []
    if result.started_failing:
        notices.append(f"The connection {connection.name} started failing: {connection.last_test_message}")
    notices += [f"The connection {connection.name}: {w}" for w in result.warnings]
    if notices:
        result.notified = notify_team(connection=connection, lines=notices)
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
            if channel.kind == NotificationChannel.Kind.EMAIL:
                send_mail(
                    f"[portal] {connection.name}: credential health",
                    "\n".join([*lines, f"Connection: {url}"]),
                    None,
                    [a.strip() for a in channel.target.split(",") if a.strip()],
                )
            else:
                webhook_target_check(channel.target)
                body = json.dumps(
                    {"event": "connection.health", "connection": connection.pk, "messages": lines, "url": url},
                    separators=(",", ":"),
                ).encode()
                headers = {"Content-Type": "application/json", "X-Portal-Event": "connection.health"}
                if channel.secret_encrypted:
                    headers[SIGNATURE_HEADER] = sign(body, decrypt_json(channel.secret_encrypted)["secret"])
                response = httpx.post(
                    channel.target,
                    content=body,
                    headers=headers,
                    timeout=settings.PORTAL_WEBHOOK_TIMEOUT_SECONDS,
                    follow_redirects=False,
                )
                response.raise_for_status()
        except Exception as exc:  # a receiver's failure must not stop the health sweep
            log.warning("connection health notice to channel %s failed: %s", channel.pk, type(exc).__name__)
            continue
        sent += 1
    return sent
