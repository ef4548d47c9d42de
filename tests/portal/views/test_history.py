from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.models import Release, ReleaseStatus
from portal.selectors import core
from portal.selectors.core import keyset_page
from tests.factories import DatasetFactory, MappingFactory, ReleaseFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def releases(team, alice, olivia):
    sales = MappingFactory(dataset=DatasetFactory(team=team, name="Sales"), name="Sales map")
    stock = MappingFactory(dataset=DatasetFactory(team=team, name="Stock"), name="Stock map")
    now = timezone.now()
    made = []
    for i in range(7):
        made.append(
            ReleaseFactory(
                mapping=sales, status=ReleaseStatus.SUCCEEDED, created_by=alice, created_at=now - timedelta(hours=i)
            )
        )
    made.append(
        ReleaseFactory(
            mapping=stock,
            status=ReleaseStatus.FAILED,
            created_by=olivia,
            created_at=now - timedelta(days=3),
            error="boom: column missing",
        )
    )
    return made


def rows(response) -> list[int]:
    return [r.pk for r in response.context["page"].items]


def test_it_lists_newest_first(client, bob, releases):
    client.force_login(bob)
    response = client.get(reverse("portal:history"))
    assert rows(response) == [r.pk for r in sorted(releases, key=lambda r: r.created_at, reverse=True)]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"status": "failed"}, 1),
        ({"q": "Stock"}, 1),
        ({"q": "column missing"}, 1),
        ({"platform": "toucan"}, 8),
        ({"user": "olivia"}, 1),
    ],
)
def test_it_filters(client, bob, releases, query, expected, olivia):
    if "user" in query:
        query = {"user": olivia.pk}
    client.force_login(bob)
    assert len(rows(client.get(reverse("portal:history"), query))) == expected


def test_it_filters_by_dataset_and_date_range(client, bob, releases):
    client.force_login(bob)
    stock = releases[-1]
    day = stock.created_at.date().isoformat()
    assert rows(client.get(reverse("portal:history"), {"dataset": stock.dataset_id})) == [stock.pk]
    assert rows(client.get(reverse("portal:history"), {"since": day, "until": day})) == [stock.pk]


def test_keyset_pagination_walks_every_row_once(client, bob, releases, monkeypatch):

    real = keyset_page
    monkeypatch.setattr(core, "keyset_page", lambda qs, cursor, size: real(qs, cursor=cursor, size=3))
    client.force_login(bob)
    seen, cursor = [], None
    for _ in range(5):
        response = client.get(reverse("portal:history"), {"after": cursor} if cursor else {})
        seen += rows(response)
        cursor = response.context["page"].next_cursor
        if not cursor:
            break
    assert seen == [r.pk for r in Release.objects.order_by("-created_at", "-id")]
    assert len(seen) == len(set(seen)) == 8


def test_a_garbage_cursor_shows_the_first_page(client, bob, releases):
    client.force_login(bob)
    response = client.get(reverse("portal:history"), {"after": "%%%not-a-cursor"})
    assert response.status_code == 200 and len(rows(response)) == 8


def test_ties_on_created_at_are_broken_by_id(team, alice):

    mapping = MappingFactory(dataset=DatasetFactory(team=team))
    same = timezone.now()
    made = [ReleaseFactory(mapping=mapping, created_at=same) for _ in range(5)]
    first = keyset_page(Release.objects.all(), cursor=None, size=2)
    second = keyset_page(Release.objects.all(), cursor=first.next_cursor, size=2)
    third = keyset_page(Release.objects.all(), cursor=second.next_cursor, size=2)
    assert [r.pk for r in first.items + second.items + third.items] == sorted((r.pk for r in made), reverse=True)
    assert third.next_cursor is None


def test_the_dashboard_lists_mappings_whose_latest_release_failed(client, bob, releases):
    client.force_login(bob)
    response = client.get(reverse("portal:dashboard"))
    failing = list(response.context["failing"])
    assert [m.name for m in failing] == ["Stock map"]
    assert b"boom: column missing" in response.content
    assert failing[0].latest_release_id == releases[-1].pk
