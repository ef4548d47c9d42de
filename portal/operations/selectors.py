"""Reads for the operations page and the alerts: liveness, queues, overdue steps, error rates.

Global health (workers, beat, queues, platform error rates) is the same for everyone; what
names releases, deliveries or uploads is limited to ``team_ids`` when given."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from connectors.registry import platform_choices
from portal.models import (
    ChunkedUpload,
    Connection,
    NotificationDelivery,
    ObjectState,
    Release,
    ReleaseStatus,
    ReleaseStep,
    StepStatus,
)
from portal.operations.heartbeats import last_beat_tick, worker_heartbeats
from portal.operations.metrics import recent_http_answers, recent_sweeps

OPEN_RELEASE = [ReleaseStatus.QUEUED, ReleaseStatus.RUNNING]


def alert_conf(name: str) -> float:
    return float(settings.PORTAL_ALERTS[name])


@dataclass(frozen=True)
class Worker:
    hostname: str
    last_heartbeat: datetime
    age_seconds: float
    alive: bool


def workers(*, now: datetime | None = None) -> list[Worker]:
    """Workers seen within the forget horizon, silent ones first."""
    now = now or datetime.now(UTC)
    silent_after, forget_after = alert_conf("WORKER_SILENT_SECONDS"), alert_conf("WORKER_FORGET_SECONDS")
    rows = []
    for host, when in worker_heartbeats().items():
        age = (now - when).total_seconds()
        if age <= forget_after:
            rows.append(Worker(host, when, age, age <= silent_after))
    return sorted(rows, key=lambda w: (w.alive, w.hostname))


@dataclass(frozen=True)
class Beat:
    last_tick: datetime | None
    age_seconds: float | None
    alive: bool


def beat(*, now: datetime | None = None) -> Beat:
    now = now or datetime.now(UTC)
    tick = last_beat_tick()
    if tick is None:
        return Beat(None, None, False)
    age = (now - tick).total_seconds()
    return Beat(tick, age, age <= alert_conf("BEAT_SILENT_SECONDS"))


def _scoped(queryset: QuerySet, team_ids: Iterable[int] | None, field: str = "team_id") -> QuerySet:
    return queryset if team_ids is None else queryset.filter(**{f"{field}__in": list(team_ids)})


def overdue_steps(*, older_than: float, team_ids: Iterable[int] | None = None) -> QuerySet[ReleaseStep]:
    """Open steps of open releases that are late by more than ``older_than`` seconds: a check or a
    retry past due, a worker lease run out, or a first step never picked up. Oldest first.

    Stand-in for step deadlines: when steps get deadlines of their own, only this changes."""
    cutoff = timezone.now() - timedelta(seconds=older_than)
    late = (
        Q(status__in=[StepStatus.PENDING, StepStatus.WAITING], next_check_at__lt=cutoff)
        | Q(status=StepStatus.PENDING, next_check_at__isnull=True, release__created_at__lt=cutoff)
        | Q(status=StepStatus.RUNNING, lease_until__lt=cutoff)
    )
    steps = ReleaseStep.objects.filter(late, release__status__in=OPEN_RELEASE).select_related("release")
    return _scoped(steps, team_ids, "release__team_id").order_by("next_check_at", "lease_until", "pk")


def step_late_since(step: ReleaseStep) -> datetime:
    if step.status == StepStatus.RUNNING and step.lease_until:
        return step.lease_until
    return step.next_check_at or step.release.created_at


def overdue_releases(*, team_ids: Iterable[int] | None = None) -> QuerySet[Release]:
    grace = alert_conf("STEP_OVERDUE_SECONDS")
    ids = overdue_steps(older_than=grace, team_ids=team_ids).values("release_id")
    return Release.objects.filter(pk__in=ids)


def failed_deliveries(*, since: datetime, team_ids: Iterable[int] | None = None) -> QuerySet[NotificationDelivery]:
    deliveries = NotificationDelivery.objects.filter(status=NotificationDelivery.Status.FAILED, created_at__gte=since)
    return _scoped(deliveries, team_ids, "release__team_id").select_related("channel", "release")


def releases_with_failed_deliveries(*, since: datetime, team_ids: Iterable[int] | None = None) -> QuerySet[Release]:
    return Release.objects.filter(pk__in=failed_deliveries(since=since, team_ids=team_ids).values("release_id"))


def unfinished_uploads(*, team_ids: Iterable[int] | None = None) -> QuerySet[ChunkedUpload]:
    uploads = ChunkedUpload.objects.filter(upload__isnull=True).select_related("dataset", "user")
    return _scoped(uploads, team_ids).order_by("created_at")


def failing_connections(*, team_ids: Iterable[int] | None = None) -> QuerySet[Connection]:
    """Enabled connections whose latest test failed."""
    connections = Connection.objects.filter(state=ObjectState.ENABLED, last_test_ok=False)
    return _scoped(connections, team_ids).order_by("name")


@dataclass(frozen=True)
class PlatformRate:
    platform: str
    label: str
    total: int
    errors: int  # 5xx answers and calls that got no answer

    @property
    def rate(self) -> float:
        return self.errors / self.total if self.total else 0.0


def platform_error_rates(*, minutes: int = 60) -> list[PlatformRate]:
    """Platform HTTP answers of the last ``minutes`` (per-minute counters in Redis)."""
    totals: dict[str, list[int]] = {}
    for platform, status_class, count in recent_http_answers(minutes=minutes):
        row = totals.setdefault(platform, [0, 0])
        row[0] += count
        if status_class in ("5xx", "none"):
            row[1] += count
    labels = dict(platform_choices())
    return [
        PlatformRate(platform, labels.get(platform, platform), total, errors)
        for platform, (total, errors) in sorted(totals.items())
    ]


@dataclass(frozen=True)
class SweeperActivity:
    runs_last_hour: int
    redispatched_last_hour: int
    last_run: datetime | None
    last_redispatched: int


def sweeper_activity() -> SweeperActivity:
    sweeps = recent_sweeps()
    hour_ago = datetime.fromtimestamp(time.time() - 3600, tz=UTC)
    recent = [(when, count) for when, count in sweeps if when >= hour_ago]
    last = sweeps[0] if sweeps else None
    return SweeperActivity(
        runs_last_hour=len(recent),
        redispatched_last_hour=sum(count for _, count in recent),
        last_run=last[0] if last else None,
        last_redispatched=last[1] if last else 0,
    )
