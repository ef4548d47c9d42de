"""Daily roll-ups of the releases, and the chart selectors that read them (docs/scale.md).

A periodic task (``portal.tasks.release_rollup_task``) recomputes the last two days every few
minutes: each day is one index range scan over that day's releases, replaced in one transaction.
The charts then read ``ReleaseDay`` (a few rows per mapping and day), never the history itself,
so they cost the same at 5 or 50 million releases. Days are those of settings.TIME_ZONE."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from portal import permissions
from portal.models import Mapping, Release, ReleaseDay, ReleaseStatus
from portal.selectors.search import day_start

# Upper bounds (seconds) of the duration buckets; a last bucket holds everything longer.
DURATION_BUCKETS: list[float] = [
    1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 300, 420, 600, 900, 1200, 1800, 2700, 3600,
    5400, 7200, 10800, 21600, 43200, 86400,
]  # fmt: skip


TERMINAL = [ReleaseStatus.SUCCEEDED, ReleaseStatus.FAILED, ReleaseStatus.CANCELLED]


def _bucket(seconds: float) -> int:
    """As PostgreSQL's width_bucket: the number of bounds <= seconds; bucket i is [b[i-1], b[i])."""
    return bisect.bisect_right(DURATION_BUCKETS, seconds)


def release_rollup_day(*, day: date) -> int:
    """Recompute the ReleaseDay rows of ``day`` from the releases; returns how many rows it wrote."""
    start = day_start(day, timezone.get_default_timezone())
    end = day_start(day + timedelta(days=1), timezone.get_default_timezone())
    # One pass over the day's releases through the created_at index; durations are bucketed in SQL.
    sql = """
        SELECT team_id, mapping_id, platform, status, width_bucket(
                   EXTRACT(EPOCH FROM finished_at - started_at)::float8, %s::float8[]) AS bucket,
               count(*), count(finished_at - started_at), COALESCE(sum(EXTRACT(EPOCH FROM finished_at - started_at)), 0)
        FROM portal_release WHERE created_at >= %s AND created_at < %s
        GROUP BY 1, 2, 3, 4, 5
    """
    rows: dict[tuple[int, int, str, str], ReleaseDay] = {}
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, [[float(b) for b in DURATION_BUCKETS], start, end])
            fetched = cursor.fetchall()
    else:
        fetched = _fetch_portable(start, end)
    for team_id, mapping_id, platform, status, bucket, count, finished, seconds in fetched:
        key = (team_id, mapping_id, platform, status)
        row = rows.get(key)
        if row is None:
            row = rows[key] = ReleaseDay(
                team_id=team_id,
                day=day,
                mapping_id=mapping_id,
                platform=platform,
                status=status,
                count=0,
                durations=[0] * (len(DURATION_BUCKETS) + 1),
            )
        row.count += count
        row.finished += finished
        row.duration_seconds_sum += float(seconds)
        if finished:
            row.durations[min(int(bucket), len(DURATION_BUCKETS))] += finished
    # The same per platform, all mappings summed: the 30-day charts read these few rows.
    totals: dict[tuple[int, str, str], ReleaseDay] = {}
    for row in rows.values():
        total = totals.get((row.team_id, row.platform, row.status))
        if total is None:
            total = totals[(row.team_id, row.platform, row.status)] = ReleaseDay(
                team_id=row.team_id,
                day=day,
                mapping=None,
                platform=row.platform,
                status=row.status,
                count=0,
                durations=[0] * (len(DURATION_BUCKETS) + 1),
            )
        total.count += row.count
        total.finished += row.finished
        total.duration_seconds_sum += row.duration_seconds_sum
        total.durations = [a + b for a, b in zip(total.durations, row.durations, strict=True)]
    with transaction.atomic():
        ReleaseDay.objects.filter(day=day).delete()
        ReleaseDay.objects.bulk_create([*rows.values(), *totals.values()])
    return len(rows) + len(totals)


def _fetch_portable(start: datetime, end: datetime) -> list[tuple[Any, ...]]:
    """The same aggregation elsewhere (SQLite): durations are bucketed in Python."""
    grouped: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0, 0, 0.0])
    releases = Release.objects.filter(created_at__gte=start, created_at__lt=end).order_by()
    for team_id, mapping_id, platform, status, started, finished in releases.values_list(
        "team_id", "mapping_id", "platform", "status", "started_at", "finished_at"
    ):
        seconds = (finished - started).total_seconds() if started and finished else None
        values = grouped[(team_id, mapping_id, platform, status, _bucket(seconds) if seconds is not None else None)]
        values[0] += 1
        if seconds is not None:
            values[1] += 1
            values[2] += seconds
    return [(*key, *values) for key, values in grouped.items()]


def release_rollup_days(*, days: int = 2) -> int:
    """Recompute today and the ``days - 1`` days before it."""
    today = timezone.localdate()
    return sum(release_rollup_day(day=today - timedelta(days=i)) for i in range(days))


def _percentile(histogram: list[int], fraction: float) -> float | None:
    """The upper bound of the bucket holding the ``fraction`` quantile (None without data)."""
    total = sum(histogram)
    if not total:
        return None
    rank, seen = fraction * total, 0
    for i, count in enumerate(histogram):
        seen += count
        if seen >= rank:
            return float(DURATION_BUCKETS[i]) if i < len(DURATION_BUCKETS) else float("inf")
    return float("inf")


def _merge(histograms: Iterable[list[int]]) -> list[int]:
    merged = [0] * (len(DURATION_BUCKETS) + 1)
    for histogram in histograms:
        for i, count in enumerate(histogram):
            merged[i] += count
    return merged


@dataclass(frozen=True)
class DayCount:
    day: date
    status: str
    count: int


def releases_per_day(*, user: User, days: int = 30) -> list[DayCount]:
    """Releases per day and status over the last ``days`` days (today included), oldest first."""
    since = timezone.localdate() - timedelta(days=days - 1)
    rows = (
        permissions.scope(user, ReleaseDay.objects.filter(day__gte=since, mapping=None))
        .values("day", "status")
        .annotate(total=Sum("count"))
        .order_by("day", "status")
    )
    return [DayCount(day=row["day"], status=row["status"], count=row["total"]) for row in rows]


@dataclass(frozen=True)
class PlatformStat:
    platform: str
    finished: int
    succeeded: int
    success_rate: float | None  # succeeded / (succeeded + failed), None without either
    p50_seconds: float | None
    p95_seconds: float | None


def platform_stats(*, user: User, days: int = 30) -> list[PlatformStat]:
    """Per platform over the last ``days`` days: success rate and p50/p95 durations (to a bucket)."""
    since = timezone.localdate() - timedelta(days=days - 1)
    by_platform: dict[str, list[tuple[str, int, list[int]]]] = defaultdict(list)
    rows = permissions.scope(user, ReleaseDay.objects.filter(day__gte=since, mapping=None, status__in=TERMINAL))
    # A row per day, platform and status: at most 30 x 5 x 5, whatever the number of mappings.
    for platform, status, count, durations in rows.values_list("platform", "status", "count", "durations"):
        by_platform[platform].append((status, count, durations))
    stats = []
    for platform, found in sorted(by_platform.items()):
        succeeded = sum(count for status, count, _ in found if status == ReleaseStatus.SUCCEEDED)
        failed = sum(count for status, count, _ in found if status == ReleaseStatus.FAILED)
        histogram = _merge(durations for _, _, durations in found)
        stats.append(
            PlatformStat(
                platform=platform,
                finished=sum(count for _, count, _ in found),
                succeeded=succeeded,
                success_rate=succeeded / (succeeded + failed) if succeeded + failed else None,
                p50_seconds=_percentile(histogram, 0.5),
                p95_seconds=_percentile(histogram, 0.95),
            )
        )
    return stats


@dataclass(frozen=True)
class TrendPoint:
    day: date
    finished: int
    mean_seconds: float | None
    p50_seconds: float | None
    p95_seconds: float | None


def mapping_duration_trend(*, mapping: Mapping, days: int = 30) -> list[TrendPoint]:
    """A mapping's release durations per day over the last ``days`` days (days without a finished
    release are left out). The caller has checked that the user may see the mapping."""
    since = timezone.localdate() - timedelta(days=days - 1)
    by_day: dict[date, list[ReleaseDay]] = defaultdict(list)
    for row in ReleaseDay.objects.filter(mapping=mapping, day__gte=since, status__in=TERMINAL):
        by_day[row.day].append(row)
    points = []
    for day, rows in sorted(by_day.items()):
        finished = sum(r.finished for r in rows)
        if not finished:
            continue
        histogram = _merge(r.durations for r in rows)
        points.append(
            TrendPoint(
                day=day,
                finished=finished,
                mean_seconds=sum(r.duration_seconds_sum for r in rows) / finished,
                p50_seconds=_percentile(histogram, 0.5),
                p95_seconds=_percentile(histogram, 0.95),
            )
        )
    return points
