"""Operations alerts through the teams' notification channels, deduplicated, with a resolved message.

``alerts_check()`` compares what is wrong now (``conditions()``) with the open ``Alert`` rows:
a new condition opens an alert and tells its channels once; an open alert whose condition is
gone is resolved and its channels are told that too. A message that a channel did not take is
sent again at the next check, to that channel only, up to ``DELIVERY_ATTEMPTS`` checks.

Who runs the check: beat's ``alerts_check_task`` every ``CHECK_SECONDS`` on a worker. Because
that needs both beat and a worker, each watches for the other: beat runs the check itself when
no worker has for a while (``portal.beat``), and a worker enqueues it when beat has gone silent
(``portal.worker_steps``). A Redis lock keeps two checks from running at once."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

import redis
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from connectors.base import ConnectorError
from portal.automation.notifications import SigningKeyUnreadable, channel_send, channels_for
from portal.models import Alert, Connection, NotificationChannel, Release, Team
from portal.operations import selectors as selectors_operations
from portal.operations.metrics import record_alert_delivery_failure, redis_client
from portal.operations.selectors import (
    alert_conf,
    failing_connections,
    overdue_steps,
    platform_error_rates,
    step_late_since,
    workers,
)

log = logging.getLogger(__name__)


LOCK_KEY = "portal:alerts:lock"


LAST_CHECK_KEY = "portal:alerts:last_check"


@dataclass(frozen=True)
class Condition:
    """Something wrong now. ``key`` identifies it across checks (the deduplication key)."""

    key: str
    kind: str
    message: str
    team_id: int | None = None
    release_id: int | None = None
    connection_id: int | None = None
    platform: str = ""


def conditions() -> list[Condition]:
    """Everything that is wrong now, each with the key that deduplicates it."""
    found: list[Condition] = []
    conf = alert_conf

    for step in overdue_steps(older_than=conf("STEP_OVERDUE_SECONDS"))[:200]:
        late = timezone.now() - step_late_since(step)
        found.append(
            Condition(
                key=f"step:{step.pk}",
                kind=Alert.Kind.STEP_OVERDUE,
                message=f"Release #{step.release_id}: step “{step.label}” is {int(late.total_seconds() // 60)} min "
                f"overdue ({step.get_status_display().lower()})",
                team_id=step.release.team_id,
                release_id=step.release_id,
                platform=step.release.platform,
            )
        )

    for worker in workers():
        if not worker.alive:
            found.append(
                Condition(
                    key=f"worker:{worker.hostname}",
                    kind=Alert.Kind.WORKER_SILENT,
                    message=f"Worker {worker.hostname} has sent no heartbeat for {int(worker.age_seconds)} s",
                )
            )

    beat = selectors_operations.beat()
    if beat.last_tick is not None and not beat.alive:
        found.append(
            Condition(
                key="beat",
                kind=Alert.Kind.BEAT_SILENT,
                message=f"Celery beat has not ticked for {int(beat.age_seconds or 0)} s: "
                "schedules, the sweeper and these checks stall",
            )
        )

    window = int(conf("ERROR_WINDOW_MINUTES"))
    for rate in platform_error_rates(minutes=window):
        if rate.total >= conf("ERROR_MIN_CALLS") and rate.rate > conf("ERROR_RATE"):
            found.append(
                Condition(
                    key=f"platform:{rate.platform}",
                    kind=Alert.Kind.PLATFORM_ERRORS,
                    message=f"{rate.label}: {rate.rate:.0%} of {rate.total} calls failed in the last {window} min "
                    "(5xx or no answer)",
                    platform=rate.platform,
                )
            )

    for connection in failing_connections():
        found.append(
            Condition(
                key=f"connection:{connection.pk}",
                kind=Alert.Kind.CONNECTION_FAILING,
                message=f"Connection “{connection.name}” ({connection.get_platform_display()}) fails its test: "
                f"{connection.last_test_message[:200]}",
                team_id=connection.team_id,
                connection_id=connection.pk,
                platform=connection.platform,
            )
        )
    return found


def alerts_check() -> int:
    """Open, resolve and announce alerts. Returns the number of open alerts (-1 if another check runs)."""
    client = redis_client()
    try:
        locked = client.set(LOCK_KEY, "1", nx=True, ex=120)
    except redis.RedisError:
        locked = True  # without Redis there is no concurrent check to fear worth skipping the check for
    if not locked:
        return -1
    try:
        return _check()
    finally:
        try:
            client.delete(LOCK_KEY)
            client.set(LAST_CHECK_KEY, repr(time.time()))
        except redis.RedisError:
            log.warning("alerts: lock not released", exc_info=True)


def last_check_age() -> float | None:
    """Seconds since the last alerts check ended, or None if none ever did."""
    raw = redis_client().get(LAST_CHECK_KEY)
    return time.time() - float(raw) if raw else None


def check_is_stale() -> bool:
    age = last_check_age()
    return age is None or age > 3 * alert_conf("CHECK_SECONDS")


def _check() -> int:
    now = timezone.now()
    current = {c.key: c for c in conditions()}
    open_alerts = {a.key: a for a in Alert.objects.filter(resolved_at__isnull=True)}
    for key, condition in current.items():
        alert = open_alerts.get(key)
        if alert is not None:
            Alert.objects.filter(pk=alert.pk).update(last_seen_at=now, message=condition.message[:500])
            continue
        try:
            with transaction.atomic():
                Alert.objects.create(
                    key=key,
                    kind=condition.kind,
                    message=condition.message[:500],
                    team_id=condition.team_id,
                    release_id=condition.release_id,
                    connection_id=condition.connection_id,
                    platform=condition.platform,
                )
        except IntegrityError:  # opened meanwhile by a check that ran without the lock
            continue
        log.warning("alert fired", extra={"alert": key, "kind": condition.kind})
    for key, alert in open_alerts.items():
        if key not in current:
            Alert.objects.filter(pk=alert.pk, resolved_at__isnull=True).update(
                resolved_at=now, notify_done=False, notify_attempts=0, delivery_error=""
            )
            log.info("alert resolved", extra={"alert": key, "kind": alert.kind})
    for alert in Alert.objects.filter(notify_done=False).order_by("fired_at")[:100]:
        _announce(alert)
    return len(current)


def recipients(alert: Alert) -> list[NotificationChannel]:
    """The channels that want failures, of the alert's release, team, or (global alerts) teams."""
    if alert.release_id:
        release = Release.objects.select_related("mapping").filter(pk=alert.release_id).first()
        channels: Iterable[NotificationChannel] = channels_for(release) if release else []
    else:
        if alert.team_id:
            team_ids = [alert.team_id]
        elif alert.platform:  # teams with a connection on the platform
            team_ids = list(
                Connection.objects.filter(platform=alert.platform).values_list("team_id", flat=True).distinct()
            )
        else:
            team_ids = list(_ops_teams().values_list("pk", flat=True))
        channels = NotificationChannel.objects.filter(team_id__in=team_ids, mapping__isnull=True, enabled=True)
    return [c for c in channels if c.on_failure]


def _ops_teams() -> QuerySet[Team]:
    names = settings.PORTAL_ALERTS["TEAMS"]
    return Team.objects.filter(name__in=names) if names else Team.objects.all()


def _announce(alert: Alert) -> None:
    event = "resolved" if alert.resolved_at else "fired"
    done = set(alert.notified.get(event, []))
    errors = []
    for channel in recipients(alert):
        if channel.pk in done:
            continue
        try:
            _send(channel, alert, event)
            done.add(channel.pk)
        except Exception as exc:  # any failure of the receiver: counted, retried at the next check
            # The typed errors' messages carry no query string (a token in a webhook URL stays out).
            reason = exc.message if isinstance(exc, ConnectorError | SigningKeyUnreadable) else exc
            errors.append(f"channel {channel.pk} ({channel.get_kind_display()}): {reason or type(exc).__name__}")
            record_alert_delivery_failure()
    attempts = alert.notify_attempts + 1
    give_up = attempts >= settings.PORTAL_ALERTS["DELIVERY_ATTEMPTS"]
    Alert.objects.filter(pk=alert.pk).update(
        notified={**alert.notified, event: sorted(done)},
        notify_attempts=attempts,
        notify_done=not errors or give_up,
        delivery_error="; ".join(errors)[:500],
    )


def message_payload(alert: Alert, event: str) -> dict[str, object]:
    base = settings.PORTAL_BASE_URL.rstrip("/")
    url = base + (
        reverse("portal:release-detail", args=[alert.release_id]) if alert.release_id else reverse("portal:ops")
    )
    return {
        "event": f"alert.{event}",
        "alert": alert.pk,
        "kind": alert.kind,
        "key": alert.key,
        "message": alert.message,
        "release": alert.release_id,
        "platform": alert.platform or None,
        "fired_at": alert.fired_at.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "url": url,
    }


def _send(channel: NotificationChannel, alert: Alert, event: str) -> None:
    """Raises on any failure of the channel (``notifications.channel_send``)."""
    data = message_payload(alert, event)
    prefix = "Resolved" if event == "resolved" else "Alert"
    lines = [f"{alert.get_kind_display()}: {alert.message}"]
    if alert.resolved_at:
        lines.append(f"Lasted: {int((alert.resolved_at - alert.fired_at) / timedelta(minutes=1))} min")
    lines.append(str(data["url"]))
    channel_send(
        channel,
        subject=f"[portal] {prefix}: {alert.message[:120]}",
        lines=lines,
        event=str(data["event"]),
        payload=data,
    )


def open_alerts(*, team_ids: list[int] | None = None) -> list[Alert]:
    """Open alerts a user may see: global ones, and those of ``team_ids`` (None: all)."""
    alerts = Alert.objects.filter(resolved_at__isnull=True)
    if team_ids is not None:
        alerts = alerts.filter(team_id__isnull=True) | alerts.filter(team_id__in=team_ids)
    return list(alerts.order_by("fired_at")[:50])
