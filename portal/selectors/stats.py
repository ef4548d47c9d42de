"""Aggregated reads for the charts. Every query is bounded in time (or by a row limit) and
grouped in the database, so a page costs the same at 5 million releases as at 50.

Kept apart from ``selectors`` so that faster versions (summary tables, materialised views)
can replace these functions one by one behind the same signatures (docs/charts.md)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Aggregate, Count, F, FloatField, Func, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from portal import permissions
from portal.models import Mapping, Release, ReleaseEvent, ReleaseSet, ReleaseStatus, ReleaseStep
from portal.selectors import rollups

STATUSES = [s.value for s in ReleaseStatus]


#: Rows read when the database cannot compute percentiles itself (SQLite in `make run`).
PYTHON_PERCENTILE_ROWS = 20_000


class Seconds(Func):
    """EXTRACT(EPOCH FROM finished_at - started_at): a duration in seconds, as a float."""

    template = "EXTRACT(EPOCH FROM (%(expressions)s))"
    output_field = FloatField()


class Percentile(Aggregate):
    """PostgreSQL's ordered-set PERCENTILE_CONT(fraction) WITHIN GROUP (ORDER BY expr)."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: Any, fraction: float, **extra: Any):
        super().__init__(expression, fraction=float(fraction), **extra)


def _since(days: int, now: datetime | None) -> tuple[datetime, datetime]:
    end = now or timezone.now()
    start = (end - timedelta(days=days - 1)).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return start, end


def _scoped(user: Any) -> QuerySet[Release]:
    return permissions.scope(user, Release.objects.all())


@dataclass(frozen=True)
class DailyCounts:
    days: list[date]
    #: status → one count per day
    counts: dict[str, list[int]]

    @property
    def success_rate(self) -> list[float | None]:
        """Succeeded / finished per day, in percent; None on a day with nothing finished."""
        rates: list[float | None] = []
        for i in range(len(self.days)):
            done = sum(self.counts[s][i] for s in ("succeeded", "failed", "cancelled"))
            rates.append(round(100 * self.counts["succeeded"][i] / done, 1) if done else None)
        return rates

    @property
    def totals(self) -> dict[str, int]:
        return {s: sum(v) for s, v in self.counts.items()}

    def summary(self) -> str:
        """The chart in one sentence, for screen readers and as its caption."""
        t = self.totals
        everything = sum(t[s] for s in STATUSES)
        done = t["succeeded"] + t["failed"] + t["cancelled"]
        rate = f"{100 * t['succeeded'] / done:.0f} % succeeded" if done else "none finished"
        busiest = max(range(len(self.days)), key=lambda i: sum(self.counts[s][i] for s in STATUSES), default=None)
        peak = (
            f"; busiest day {self.days[busiest]:%Y-%m-%d} with {sum(self.counts[s][busiest] for s in STATUSES)}"
            if busiest is not None and everything
            else ""
        )
        return (
            f"{everything} release{'' if everything == 1 else 's'} in {len(self.days)} days: "
            f"{t['succeeded']} succeeded, {t['failed']} failed, {t['cancelled']} cancelled, "
            f"{t['running'] + t['queued']} under way ({rate}){peak}."
        )

    def rows(self) -> list[dict[str, Any]]:
        rates = self.success_rate
        return [
            {"day": d, **{s: self.counts[s][i] for s in STATUSES}, "success_rate": rates[i]}
            for i, d in enumerate(self.days)
        ]

    def as_chart(self) -> dict[str, Any]:
        return {
            "x": [int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) for d in self.days],
            "series": self.counts,
            "success_rate": self.success_rate,
        }


def release_daily_counts(*, user: Any, days: int = 30, now: datetime | None = None) -> DailyCounts:
    """Releases created per UTC day and status over the last ``days`` days (missing days are 0)."""
    start, end = _since(days, now)
    grouped = (
        _scoped(user)
        .filter(created_at__gte=start, created_at__lte=end)
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    all_days = [start.date() + timedelta(days=i) for i in range(days)]
    index = {d: i for i, d in enumerate(all_days)}
    counts = {s: [0] * days for s in STATUSES}
    for row in grouped:
        if row["day"] in index and row["status"] in counts:
            counts[row["status"]][index[row["day"]]] = row["n"]
    return DailyCounts(days=all_days, counts=counts)


def dashboard_daily_counts(*, user: Any, days: int = 30) -> DailyCounts:
    """The dashboard's releases per day, fast at millions of releases: the days before today
    from the daily roll-ups (``selectors.rollups``, refreshed every few minutes by beat), today
    live from the history index (one day of rows)."""
    today = timezone.now().astimezone(UTC).date()
    all_days = [today - timedelta(days=days - 1 - i) for i in range(days)]
    index = {d: i for i, d in enumerate(all_days)}
    counts = {s: [0] * days for s in STATUSES}
    for row in rollups.releases_per_day(user=user, days=days):
        if row.day != today and row.day in index and row.status in counts:
            counts[row.status][index[row.day]] = row.count
    start = datetime(today.year, today.month, today.day, tzinfo=UTC)
    for live in _scoped(user).filter(created_at__gte=start).values("status").annotate(n=Count("id")).order_by():
        if live["status"] in counts:
            counts[live["status"]][index[today]] = live["n"]
    return DailyCounts(days=all_days, counts=counts)


def dashboard_platform_stats(*, user: Any, days: int = 30) -> list[PlatformStats]:
    """The dashboard's per-platform success and p50/p95, from the daily roll-ups (percentiles to
    the precision of a duration bucket; up to one roll-up period behind)."""
    labels: dict[Any, Any] = dict(Release._meta.get_field("platform").choices or [])
    return [
        PlatformStats(
            platform=stat.platform,
            label=str(labels.get(stat.platform, stat.platform)),
            finished=stat.finished,
            succeeded=stat.succeeded,
            p50=stat.p50_seconds,
            p95=stat.p95_seconds,
        )
        for stat in rollups.platform_stats(user=user, days=days)
    ]


@dataclass(frozen=True)
class PlatformStats:
    platform: str
    label: str
    finished: int
    succeeded: int
    p50: float | None
    p95: float | None

    @property
    def success_rate(self) -> float | None:
        return round(100 * self.succeeded / self.finished, 1) if self.finished else None


def platform_stats(*, user: Any, days: int = 30, now: datetime | None = None) -> list[PlatformStats]:
    """Per platform over the last ``days`` days: finished releases, how many succeeded, and
    the median and 95th percentile of their run time (started → finished) in seconds."""
    start, end = _since(days, now)
    finished = _scoped(user).filter(
        created_at__gte=start,
        created_at__lte=end,
        status__in=[ReleaseStatus.SUCCEEDED, ReleaseStatus.FAILED, ReleaseStatus.CANCELLED],
    )
    labels: dict[Any, Any] = dict(Release._meta.get_field("platform").choices or [])
    duration = Seconds(F("finished_at") - F("started_at"))
    timed = Q(started_at__isnull=False, finished_at__isnull=False)
    counts = finished.values("platform").annotate(
        n=Count("id"), ok=Count("id", filter=Q(status=ReleaseStatus.SUCCEEDED))
    )
    if connection.vendor == "postgresql":
        counts = counts.annotate(
            p50=Percentile(duration, 0.5, filter=timed), p95=Percentile(duration, 0.95, filter=timed)
        )
    result = []
    rows: list[dict[str, Any]] = [dict(r) for r in counts.order_by("platform")]
    for row in rows:
        p50: float | None = row.get("p50")
        p95: float | None = row.get("p95")
        if connection.vendor != "postgresql":
            p50, p95 = _python_percentiles(finished.filter(timed, platform=row["platform"]))
        result.append(
            PlatformStats(
                platform=row["platform"],
                label=str(labels.get(row["platform"], row["platform"])),
                finished=row["n"],
                succeeded=row["ok"],
                p50=None if p50 is None else round(p50, 1),
                p95=None if p95 is None else round(p95, 1),
            )
        )
    return result


def _python_percentiles(qs: QuerySet[Release]) -> tuple[float | None, float | None]:
    pairs = qs.order_by("-created_at").values_list("started_at", "finished_at")[:PYTHON_PERCENTILE_ROWS]
    values = sorted((f - s).total_seconds() for s, f in pairs if s and f)
    if not values:
        return None, None
    if len(values) == 1:
        return values[0], values[0]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return statistics.median(values), cuts[94]


@dataclass(frozen=True)
class TrendPoint:
    pk: int
    created_at: datetime
    status: str
    seconds: float | None


def mapping_duration_trend(*, mapping: Mapping, limit: int = 200) -> list[TrendPoint]:
    """The mapping's last ``limit`` finished releases, oldest first, with their run time."""
    rows = (
        Release.objects.filter(mapping=mapping, finished_at__isnull=False)
        .order_by("-created_at", "-id")
        .values_list("pk", "created_at", "status", "started_at", "finished_at")[:limit]
    )
    return [
        TrendPoint(pk=pk, created_at=c, status=st, seconds=(f - s).total_seconds() if s and f else None)
        for pk, c, st, s, f in reversed(list(rows))
    ]


def trend_summary(points: list[TrendPoint]) -> str:
    timed = [p.seconds for p in points if p.seconds is not None]
    failed = sum(1 for p in points if p.status == ReleaseStatus.FAILED)
    if not timed:
        return "No finished release yet."
    return (
        f"Last {len(points)} finished releases: median {statistics.median(timed):.1f} s, "
        f"longest {max(timed):.1f} s, latest {timed[-1]:.1f} s; {failed} failed."
    )


def trend_chart(points: list[TrendPoint]) -> dict[str, Any]:
    return {
        "x": [int(p.created_at.timestamp()) for p in points],
        "seconds": [p.seconds for p in points],
        "failed": [p.seconds if p.status == ReleaseStatus.FAILED else None for p in points],
    }


@dataclass(frozen=True)
class TimelineBar:
    label: str
    status: str
    #: offsets from the release's start, in seconds
    start: float
    accepted: float | None  # when the platform took the job: work before, waiting after
    end: float
    segments: list[tuple[str, float, float]] = field(default_factory=list)  # (kind, x, width) in 0..1000

    @property
    def work(self) -> float:
        return (self.accepted if self.accepted is not None else self.end) - self.start

    @property
    def waiting(self) -> float:
        return self.end - self.accepted if self.accepted is not None else 0.0


#: Written by the engine when run_step returns Waiting (portal.engine): the remote job runs from then on.
ACCEPTED_MARK = "accepted by the platform"


TIMELINE_WIDTH = 1000.0


def release_timeline(*, release: Release) -> list[TimelineBar]:
    """Each started step as a bar: our own work (upload, the call) until the platform
    accepted the job, then waiting on the platform until the step ended."""
    if release.started_at is None:
        return []
    origin = release.started_at
    now = timezone.now()
    steps = list(release.steps.filter(started_at__isnull=False).order_by("position"))
    accepted: dict[int, datetime] = {}
    for step_id, created_at in (
        ReleaseEvent.objects.filter(release=release, message__contains=ACCEPTED_MARK)
        .order_by("created_at")
        .values_list("step_id", "created_at")
    ):
        if step_id is not None:
            accepted.setdefault(step_id, created_at)
    bars = []
    for step in steps:
        started = step.started_at or origin  # never None: filtered above
        end = step.finished_at or now
        at = accepted.get(step.pk)
        bars.append(
            TimelineBar(
                label=step.label,
                status=step.status,
                start=(started - origin).total_seconds(),
                accepted=(at - origin).total_seconds() if at and started <= at <= end else None,
                end=(end - origin).total_seconds(),
            )
        )
    total = max((b.end for b in bars), default=0.0) or 1.0
    scale = TIMELINE_WIDTH / total
    return [
        TimelineBar(
            label=b.label,
            status=b.status,
            start=b.start,
            accepted=b.accepted,
            end=b.end,
            segments=[
                ("work", b.start * scale, max(b.work * scale, 2.0)),
                *([("waiting", b.accepted * scale, b.waiting * scale)] if b.accepted is not None else []),
            ],
        )
        for b in bars
    ]


@dataclass(frozen=True)
class SetRow:
    release_id: int
    label: str
    status: str
    start: float
    end: float
    #: (step status, x, width, step label) in 0..TIMELINE_WIDTH
    segments: list[tuple[str, float, float, str]]


def release_set_timeline(*, release_set: ReleaseSet) -> list[SetRow]:
    """Every release of the set (retries included) on one time axis, a segment per step,
    coloured by the step's status: the matrix, over time."""
    releases = list(
        release_set.releases.filter(started_at__isnull=False).select_related("mapping").order_by("started_at", "id")
    )
    if not releases:
        return []
    now = timezone.now()
    origin = min(r.started_at or now for r in releases)
    steps: dict[int, list[ReleaseStep]] = {}
    for step in ReleaseStep.objects.filter(release__in=releases, started_at__isnull=False).order_by(
        "release_id", "position"
    ):
        steps.setdefault(step.release_id, []).append(step)
    end_of_all = max(((r.finished_at or now) - origin).total_seconds() for r in releases) or 1.0
    scale = TIMELINE_WIDTH / end_of_all
    attempts: dict[int, int] = {}
    rows = []
    for release in releases:
        attempts[release.mapping_id] = attempts.get(release.mapping_id, 0) + 1
        segments = []
        for step in steps.get(release.pk, []):
            start = ((step.started_at or now) - origin).total_seconds()
            end = ((step.finished_at or now) - origin).total_seconds()
            segments.append((step.status, start * scale, max((end - start) * scale, 2.0), step.label))
        rows.append(
            SetRow(
                release_id=release.pk,
                label=f"{release.mapping.name} #{release.pk}"
                + (f" (attempt {attempts[release.mapping_id]})" if attempts[release.mapping_id] > 1 else ""),
                status=release.status,
                start=((release.started_at or now) - origin).total_seconds(),
                end=((release.finished_at or now) - origin).total_seconds(),
                segments=segments,
            )
        )
    return rows
