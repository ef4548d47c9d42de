"""Daily roll-ups and the chart selectors that read them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from portal.models import ReleaseDay
from portal.selectors.rollups import mapping_duration_trend, platform_stats, release_rollup_days, releases_per_day
from portal.tasks import release_rollup_task
from tests.factories import ConnectionFactory, DatasetFactory, MappingFactory, ReleaseFactory

pytestmark = pytest.mark.django_db


def release(mapping, *, status: str, seconds: float | None, days_ago: int = 0):
    created = timezone.now() - timedelta(days=days_ago, minutes=1)
    return ReleaseFactory(
        mapping=mapping,
        status=status,
        created_at=created,
        started_at=created if seconds is not None else None,
        finished_at=created + timedelta(seconds=seconds) if seconds is not None else None,
    )


@pytest.fixture
def history(team, charlie):
    toucan = MappingFactory(dataset=DatasetFactory(team=team), connection=ConnectionFactory(team=team))
    for seconds in (10, 12, 14, 16, 18, 20, 25, 30, 40, 500):  # today: 9 ok, 1 failed slow
        release(toucan, status="succeeded" if seconds != 500 else "failed", seconds=seconds)
    release(toucan, status="running", seconds=None)
    release(toucan, status="succeeded", seconds=100, days_ago=1)
    release(toucan, status="succeeded", seconds=100, days_ago=40)  # outside 30 days
    other_team = MappingFactory(dataset=DatasetFactory(team=charlie.teams.get()))
    release(other_team, status="failed", seconds=5)
    release_rollup_task.apply(kwargs={"days": 41})  # the task itself, as beat runs it
    return toucan


def test_releases_per_day_by_status(bob, history):
    today = timezone.localdate()
    got = {(p.day, p.status): p.count for p in releases_per_day(user=bob)}
    assert got == {
        (today, "failed"): 1,
        (today, "running"): 1,
        (today, "succeeded"): 9,
        (today - timedelta(days=1), "succeeded"): 1,
    }


def test_platform_stats_give_success_rate_and_bucketed_percentiles(bob, history):
    [toucan] = platform_stats(user=bob)
    assert toucan.platform == "toucan"
    assert (toucan.finished, toucan.succeeded) == (11, 10)
    assert toucan.success_rate == pytest.approx(10 / 11)
    # 11 durations: 10 12 14 16 18 20 25 30 40 100 500; the median 20 s lies in bucket [20, 30).
    assert toucan.p50_seconds == 30
    assert toucan.p95_seconds == 600  # 500 s lies in [420, 600)


def test_a_mappings_duration_trend(history):
    today = timezone.localdate()
    points = mapping_duration_trend(mapping=history)
    assert [p.day for p in points] == [today - timedelta(days=1), today]
    assert points[0].mean_seconds == 100 and points[0].finished == 1
    assert points[1].finished == 10
    assert points[1].mean_seconds == pytest.approx(sum((10, 12, 14, 16, 18, 20, 25, 30, 40, 500)) / 10)


def test_a_rollup_replaces_the_day_it_recomputes(history):
    before = ReleaseDay.objects.count()
    release_rollup_days(days=2)
    release_rollup_days(days=2)
    assert ReleaseDay.objects.count() == before


def test_an_outsider_sees_only_their_team(charlie, history):
    assert {(p.status, p.count) for p in releases_per_day(user=charlie)} == {("failed", 1)}


def test_the_charts_read_one_row_per_day_platform_and_status(team, bob):
    connection = ConnectionFactory(team=team)
    mappings = [MappingFactory(dataset=DatasetFactory(team=team), connection=connection) for _ in range(3)]
    for mapping in mappings:
        release(mapping, status="succeeded", seconds=10)
    release_rollup_days(days=1)
    [total] = ReleaseDay.objects.filter(mapping=None)
    assert (total.platform, total.status, total.count, total.finished) == ("toucan", "succeeded", 3, 3)
    assert sum(total.durations) == 3
    assert ReleaseDay.objects.exclude(mapping=None).count() == 3
    assert [(p.status, p.count) for p in releases_per_day(user=bob)] == [("succeeded", 3)]
