"""The chart selectors: counts per day and status, per-platform success and percentiles,
a mapping's trend, a release's step timeline. Scoped to the user's teams and time-bounded."""

from __future__ import annotations

import json
import re
import statistics
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.models import Release, ReleaseStatus
from portal.selectors.rollups import release_rollup_days
from portal.selectors.stats import (
    mapping_duration_trend,
    platform_stats,
    release_daily_counts,
    release_set_timeline,
    release_timeline,
    trend_chart,
    trend_summary,
)
from portal.services.mappings import params_validate
from portal.services.releases import release_create
from tests.factories import ConnectionFactory, MappingFactory, ReleaseFactory, UploadFactory
from tests.helpers import drive_release

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)


def make(mapping, *, days_ago: float, status: str, seconds: float | None = 10.0, platform: str | None = None, now=NOW):
    created = now - timedelta(days=days_ago)
    started = created + timedelta(seconds=1) if seconds is not None else None
    return ReleaseFactory(
        mapping=mapping,
        status=status,
        created_at=created,
        started_at=started,
        finished_at=started + timedelta(seconds=seconds) if started and status != "running" else None,
        **({"platform": platform} if platform else {}),
    )


def test_daily_counts_by_status_fill_empty_days_and_stop_at_the_window(team, bob, charlie):
    mapping = MappingFactory(dataset__team=team)
    make(mapping, days_ago=0, status="succeeded")
    make(mapping, days_ago=0, status="failed")
    make(mapping, days_ago=0.1, status="running")
    make(mapping, days_ago=2, status="succeeded")
    make(mapping, days_ago=29, status="cancelled")
    make(mapping, days_ago=31, status="failed")  # outside 30 days
    daily = release_daily_counts(user=bob, days=30, now=NOW)
    assert len(daily.days) == 30 and daily.days[-1] == NOW.date()
    assert daily.counts["succeeded"][-1] == 1 and daily.counts["failed"][-1] == 1
    assert daily.counts["running"][-1] == 1
    assert daily.counts["succeeded"][-3] == 1
    assert daily.counts["cancelled"][0] == 1
    assert sum(daily.counts["failed"]) == 1, "the release of 31 days ago is outside the window"
    assert daily.success_rate[-1] == 50.0 and daily.success_rate[-2] is None
    assert "6" not in daily.summary().split(" ")[0] and daily.summary().startswith("5 releases in 30 days")
    assert sum(sum(v) for v in release_daily_counts(user=charlie, now=NOW).counts.values()) == 0


def test_platform_stats_give_success_rate_and_percentiles(team, bob):
    toucan = MappingFactory(dataset__team=team)
    tailer = MappingFactory(dataset__team=team, connection=ConnectionFactory(team=team, platform="tailer"))
    durations = [float(s) for s in range(1, 21)]
    for i, seconds in enumerate(durations):
        make(toucan, days_ago=i % 5, status="failed" if i % 4 == 0 else "succeeded", seconds=seconds)
    make(tailer, days_ago=1, status="succeeded", seconds=100, platform="tailer")
    make(toucan, days_ago=40, status="failed", seconds=9999)  # outside the window
    make(toucan, days_ago=1, status="running", seconds=5)  # not finished: not counted
    stats = {s.platform: s for s in platform_stats(user=bob, days=30, now=NOW)}
    assert set(stats) == {"toucan", "tailer"}
    t = stats["toucan"]
    assert (t.finished, t.succeeded, t.success_rate) == (20, 15, 75.0)
    assert t.p50 == round(statistics.median(durations), 1)
    expected_p95 = statistics.quantiles(durations, n=100, method="inclusive")[94]
    assert t.p95 == pytest.approx(expected_p95, abs=0.1)
    assert (stats["tailer"].finished, stats["tailer"].p50, stats["tailer"].p95) == (1, 100.0, 100.0)
    assert stats["tailer"].label == "Tailer"


def test_a_mappings_trend_marks_failures_oldest_first(team):
    mapping = MappingFactory(dataset__team=team)
    make(mapping, days_ago=3, status="succeeded", seconds=5)
    make(mapping, days_ago=2, status="failed", seconds=7)
    make(mapping, days_ago=1, status="succeeded", seconds=6)
    make(mapping, days_ago=0, status="running", seconds=3)  # not finished: left out
    points = mapping_duration_trend(mapping=mapping)
    chart = trend_chart(points)
    assert chart["seconds"] == [5.0, 7.0, 6.0]
    assert chart["failed"] == [None, 7.0, None]
    assert chart["x"] == sorted(chart["x"])
    assert "median 6.0 s" in trend_summary(points) and "1 failed" in trend_summary(points)


def test_the_step_timeline_splits_work_from_waiting(toucan_mapping, olivia):
    upload = UploadFactory(dataset=toucan_mapping.dataset, uploaded_by=olivia)
    params = params_validate(mapping=toucan_mapping, data={"operations": ["preprocess_data_sources", "release"]})
    release = drive_release(release_create(mapping=toucan_mapping, upload=upload, params=params, actor=olivia))
    assert release.status == ReleaseStatus.SUCCEEDED
    bars = release_timeline(release=release)
    assert [b.label for b in bars] == [s.label for s in release.steps.order_by("position")]
    upload_bar, *operations = bars
    assert upload_bar.accepted is None and upload_bar.waiting == 0, "the upload is our own work"
    for bar in operations:
        assert bar.accepted is not None and bar.waiting > 0, "Toucan runs operations as remote jobs"
        assert bar.start <= bar.accepted <= bar.end
        assert [k for k, _, _ in bar.segments] == ["work", "waiting"]
    assert all(0 <= x <= 1000 and x + w <= 1000.5 for b in bars for _, x, w in b.segments)
    assert bars == sorted(bars, key=lambda b: b.start)


def test_the_pages_carry_the_chart_data_and_its_text(client, bob, toucan_mapping):
    make(toucan_mapping, days_ago=0, status="succeeded", seconds=4, now=timezone.now())
    make(toucan_mapping, days_ago=0, status="failed", seconds=8, now=timezone.now())
    release_rollup_days(days=1)  # what beat does every few minutes: the per-platform table reads roll-ups
    client.force_login(bob)
    html = client.get(reverse("portal:dashboard")).content.decode()
    data = json.loads(re.search(r'<script id="chart-daily-data" type="application/json">(.*?)</script>', html).group(1))
    assert data["series"]["succeeded"][-1] + data["series"]["failed"][-1] >= 1
    assert "releases in 30 days" in html and 'role="img"' in html
    assert re.search(r'<tr data-platform="toucan"><td>Toucan Toco</td><td>2</td>', html)
    mapping_html = client.get(toucan_mapping.get_absolute_url()).content.decode()
    assert 'id="chart-trend-data"' in mapping_html and "Last 2 finished releases" in mapping_html
    assert Release.objects.count() == 2


def test_a_release_set_over_time_has_a_row_per_release_and_a_segment_per_step(client, bob, olivia, toucan_mapping):
    from portal.services.release_sets import release_set_create

    second = MappingFactory(
        dataset=toucan_mapping.dataset,
        connection=toucan_mapping.connection,
        name="Referential on Toucan",
        target={"small_app": "demo-app", "data_source": "undeclared.csv", "stage": "staging"},
    )
    upload = UploadFactory(dataset=toucan_mapping.dataset, uploaded_by=olivia)
    release_set = release_set_create(
        dataset=toucan_mapping.dataset, mappings=[toucan_mapping, second], upload=upload, actor=olivia
    )
    for release in release_set.releases.all():
        drive_release(release)
    rows = release_set_timeline(release_set=release_set)
    assert sorted(r.status for r in rows) == ["failed", "succeeded"]
    for row in rows:
        release = Release.objects.get(pk=row.release_id)
        started = release.steps.filter(started_at__isnull=False).count()
        assert len(row.segments) == started >= 1
        assert all(0 <= x <= 1000 and x + w <= 1000.5 for _, x, w, _ in row.segments)
    failed = next(r for r in rows if r.status == "failed")
    assert failed.segments[-1][0] == "failed"
    client.force_login(bob)
    html = client.get(release_set.get_absolute_url()).content.decode()
    assert 'class="gantt set-gantt"' in html and "Release set over time:" in html
