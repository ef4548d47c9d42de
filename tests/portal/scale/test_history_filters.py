"""The history's date ranges, search and totals stay index-friendly (docs/scale.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.models import Release, ReleaseStep
from portal.selectors import core, search
from portal.selectors.search import SearchTimeout, count_label, estimate_count, time_bound
from tests.factories import DatasetFactory, MappingFactory, ReleaseFactory

pytestmark = pytest.mark.django_db


def rows(response) -> list[int]:
    return [r.pk for r in response.context["page"].items]


@pytest.fixture
def mapping(team):
    return MappingFactory(dataset=DatasetFactory(team=team, name="Orders"), name="Orders to toucan")


def test_a_day_is_the_users_local_day_as_a_half_open_range(client, bob, mapping, settings):
    settings.TIME_ZONE = "America/New_York"
    # 22:00 on the 9th in New York, the 10th in UTC; then midnight of the 10th in New York.
    late = ReleaseFactory(mapping=mapping, created_at=datetime(2026, 3, 10, 3, 0, tzinfo=UTC))
    midnight = ReleaseFactory(mapping=mapping, created_at=datetime(2026, 3, 10, 5, 0, tzinfo=UTC))
    client.force_login(bob)
    url = reverse("portal:history")
    assert rows(client.get(url, {"since": "2026-03-09", "until": "2026-03-09"})) == [late.pk]
    assert rows(client.get(url, {"since": "2026-03-10", "until": "2026-03-10"})) == [midnight.pk]
    assert rows(client.get(url, {"since": "2026-03-10"})) == [midnight.pk]
    assert rows(client.get(url, {"until": "2026-03-09"})) == [late.pk]


def test_the_date_filter_compares_created_at_itself(client, bob, mapping):
    client.force_login(bob)
    with CaptureQueriesContext(connection) as queries:
        client.get(reverse("portal:history"), {"since": "2026-03-09", "until": "2026-03-10"})
    history_sql = [q["sql"] for q in queries if 'FROM "portal_release"' in q["sql"]]
    assert history_sql
    assert not any("AT TIME ZONE" in sql or "::date" in sql for sql in history_sql)
    assert any(
        '"portal_release"."created_at" >=' in sql and '"portal_release"."created_at" <' in sql for sql in history_sql
    )


@pytest.fixture
def searchable(team, mapping):
    other = MappingFactory(dataset=DatasetFactory(team=team, name="Stock"), name="Stock map")
    by_ref = ReleaseFactory(mapping=other)
    ReleaseStep.objects.create(release=by_ref, position=1, name="run", label="Run", remote_ref="job-4242")
    by_error = ReleaseFactory(mapping=other, error="platform said: job-4242 was already running")
    by_name = ReleaseFactory(mapping=mapping)
    return {"ref": by_ref, "error": by_error, "name": by_name}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("job-4242", ["ref"]),  # the exact reference wins over the error that mentions it
        ("job-42", ["ref", "error"]),  # a prefix of the reference, and the error text
        ("already RUNNING", ["error"]),
        ("orders", ["name"]),  # dataset and mapping names, any case
        ("or", ["name"]),  # too short for the error text: names only
        ("nothing like this", []),
    ],
)
def test_search(client, bob, searchable, q, expected):
    client.force_login(bob)
    got = rows(client.get(reverse("portal:history"), {"q": q}))
    assert sorted(got) == sorted(searchable[k].pk for k in expected)


def test_search_by_release_number(client, bob, searchable):
    client.force_login(bob)
    assert rows(client.get(reverse("portal:history"), {"q": f"#{searchable['name'].pk}"})) == [searchable["name"].pk]


def test_search_never_joins_the_steps_into_the_history_query(client, bob, searchable):
    client.force_login(bob)
    with CaptureQueriesContext(connection) as queries:
        client.get(reverse("portal:history"), {"q": "job-42"})
    history_sql = [q["sql"] for q in queries if 'FROM "portal_release"' in q["sql"]]
    assert history_sql and not any("portal_releasestep" in sql for sql in history_sql)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="trigram indexes are PostgreSQL's")
@pytest.mark.parametrize(
    ("queryset", "index"),
    [
        (lambda: Release.objects.filter(error__icontains="timeout"), "release_error_trgm"),
        (lambda: Release.objects.filter(mapping__name__icontains="orders").values("pk"), "mapping_name_trgm"),
        (lambda: ReleaseStep.objects.filter(remote_ref__startswith="job-"), "step_remote_ref"),
    ],
)
def test_an_index_can_serve_each_search(searchable, queryset, index):
    with connection.cursor() as cursor:
        # Tiny tables: make the planner show what it can do with the indexes at scale.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
    assert index in queryset().explain()


def test_the_search_time_bound_cuts_a_slow_query_off():
    if connection.vendor != "postgresql":
        pytest.skip("statement_timeout is PostgreSQL's")
    with pytest.raises(SearchTimeout), time_bound(50), connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(1)")
    with connection.cursor() as cursor:  # and the connection is still usable
        cursor.execute("SELECT 1")


@pytest.mark.parametrize(
    ("n", "label"),
    [(12, "about 12"), (4_912_345, "about 4.9 M"), (12_345, "about 12 k"), (1_234, "about 1,200")],
)
def test_count_labels_on_postgresql(n, label):
    assert count_label(n) == label
    assert count_label(n, exact=True) == f"{n:,}"


def test_the_estimate_reads_no_rows_on_postgresql_and_is_kept_a_minute(searchable):
    cache.clear()
    with CaptureQueriesContext(connection) as queries:
        estimate = estimate_count(Release.objects.filter(status="failed"))
        again = estimate_count(Release.objects.filter(status="failed"))
    assert estimate >= 0 and again == estimate
    assert len(queries) == 1 and queries[0]["sql"].startswith("EXPLAIN")


@pytest.mark.parametrize("url", ["/admin/portal/release/", "/admin/portal/release/?status=failed", "/history/"])
def test_no_page_counts_the_history(client, alice, searchable, url):
    alice.is_staff = alice.is_superuser = True
    alice.save()
    client.force_login(alice)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url if url != "/history/" else reverse("portal:history"))
    assert response.status_code == 200
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper() and "portal_release" in q["sql"]]
    assert counts == []


def test_the_admin_shows_every_row_when_the_estimate_is_low(client, alice, searchable):
    # Fresh rows, no ANALYZE yet: the estimate may be anything; the page still lists them all.
    alice.is_staff = alice.is_superuser = True
    alice.save()
    client.force_login(alice)
    response = client.get("/admin/portal/release/")
    assert sorted(r.pk for r in response.context["cl"].result_list) == sorted(r.pk for r in searchable.values())


def test_the_history_shows_a_total(client, bob, searchable):
    client.force_login(bob)
    response = client.get(reverse("portal:history"))
    assert response.context["total"] == "3"
    assert b"3 releases" in response.content


@pytest.mark.skipif(connection.vendor != "postgresql", reason="statement_timeout is PostgreSQL's")
@pytest.mark.parametrize(("query", "bounded"), [({"q": "orders"}, True), ({"status": "failed"}, False)])
def test_only_searches_run_under_the_time_bound(client, bob, searchable, query, bounded):
    client.force_login(bob)
    with CaptureQueriesContext(connection) as queries:
        client.get(reverse("portal:history"), query)
    assert any("statement_timeout = 3000" in q["sql"] for q in queries) is bounded


def test_the_filter_selects_render_without_server_side_cursors(client, bob, searchable):
    client.force_login(bob)
    dataset = searchable["name"].dataset
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("portal:history"), {"dataset": dataset.pk})
    assert not any(q["sql"].startswith("DECLARE") for q in queries)
    assert f'<option value="{dataset.pk}" selected>{dataset.name}</option>' in response.content.decode()
    assert rows(response) == [searchable["name"].pk]


def test_a_reference_prefix_reads_no_release_to_find_the_steps(client, bob, searchable):
    client.force_login(bob)
    with CaptureQueriesContext(connection) as queries:
        client.get(reverse("portal:history"), {"q": "job-42"})
    step_sql = [q["sql"] for q in queries if 'FROM "portal_releasestep"' in q["sql"]]
    assert step_sql and not any('portal_release"' in sql.split("FROM", 1)[1] for sql in step_sql)


def test_the_dashboard_counts_open_releases_with_a_cap(client, bob, mapping, monkeypatch):
    for status in ("queued", "running", "running", "succeeded"):
        ReleaseFactory(mapping=mapping, status=status)
    client.force_login(bob)
    assert client.get(reverse("portal:dashboard")).context["running_count"] == "3"
    monkeypatch.setattr(search, "CAPPED_COUNT", 2)
    assert client.get(reverse("portal:dashboard")).context["running_count"] == "2+"


def test_a_text_search_reads_one_window_of_releases_per_page(client, bob, mapping, monkeypatch):

    monkeypatch.setattr(core, "SEARCH_WINDOW_ROWS", 3)
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    made = [ReleaseFactory(mapping=mapping, created_at=now - timedelta(hours=i)) for i in range(8)]
    needle = ReleaseFactory(mapping=mapping, created_at=now - timedelta(hours=9), error="a rare needle here")
    old_ref = made[-1]
    ReleaseStep.objects.create(release=old_ref, position=1, name="run", label="Run", remote_ref="ref-old")
    client.force_login(bob)
    url = reverse("portal:history")

    first = client.get(url, {"q": "needle"})
    assert rows(first) == [] and first.context["page"].searched_to is not None
    assert b"Search older" in first.content
    found, cursor, pages = [], first.context["page"].next_cursor, 1
    while cursor and pages < 10:
        response = client.get(url, {"q": "needle", "after": cursor})
        found += rows(response)
        cursor, pages = response.context["page"].next_cursor, pages + 1
    assert found == [needle.pk]
    assert pages == 3  # windows of 3 over 9 releases
    # An exact reference is read through its index, never windowed.
    assert rows(client.get(url, {"q": "ref-old"})) == [old_ref.pk]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="planner settings are PostgreSQL's")
def test_a_windowed_search_walks_its_window(client, bob, mapping, monkeypatch):

    monkeypatch.setattr(core, "SEARCH_WINDOW_ROWS", 2)
    for _ in range(4):
        ReleaseFactory(mapping=mapping)
    client.force_login(bob)
    with CaptureQueriesContext(connection) as queries:
        client.get(reverse("portal:history"), {"q": "job-1"})
    sql = [q["sql"] for q in queries]
    assert "SET LOCAL enable_bitmapscan = off" in sql
    assert sql.index("SET LOCAL enable_bitmapscan = off") < next(
        i for i, s in enumerate(sql) if s.startswith('SELECT "portal_release"."id"') and "LIMIT 51" in s
    )
