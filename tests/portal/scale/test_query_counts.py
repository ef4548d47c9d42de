"""Each page's query count stays the same however many rows it shows (no N+1)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.http import HttpResponse
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from portal import tokens
from portal.models import ReleaseEvent, ReleaseSet, ReleaseStep
from tests.factories import ConnectionFactory, DatasetFactory, MappingFactory, ReleaseFactory, UserFactory

pytestmark = pytest.mark.django_db


def queries_of(fetch: Callable[[], HttpResponse]) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert fetch().status_code == 200
    return len(queries)


def release_rows(team, connection_, n: int, user) -> None:
    """n releases, each of its own dataset, mapping, user, step, event and release set."""
    for i in range(n):
        mapping = MappingFactory(dataset=DatasetFactory(team=team), connection=connection_, name=f"m{i}")
        release = ReleaseFactory(
            mapping=mapping,
            created_by=UserFactory(),
            status="failed",
            error=f"boom {i}",
            release_set=ReleaseSet.objects.create(team=team, dataset=mapping.dataset, created_by=user),
        )
        step = ReleaseStep.objects.create(release=release, position=1, name="run", label="Run", remote_ref=f"r{i}")
        ReleaseEvent.objects.create(release=release, step=step, message=f"event {i}")


@pytest.fixture
def seeded(team, alice):
    return ConnectionFactory(team=team)


def assert_constant(django_assert_max_num_queries, fetch, grow: Callable[[], None]) -> None:
    few = queries_of(fetch)
    grow()
    with django_assert_max_num_queries(few):
        assert fetch().status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        lambda: reverse("portal:history"),
        lambda: reverse("portal:history") + "?status=failed",
        lambda: reverse("portal:history") + "?q=boom",
        lambda: reverse("portal:history") + "?since=2000-01-01&until=2100-01-01",
        lambda: reverse("portal:dashboard"),
        lambda: "/admin/portal/release/",
        lambda: "/admin/portal/releasestep/",
        lambda: "/admin/portal/releaseevent/",
    ],
)
def test_lists_of_releases(client, django_assert_max_num_queries, team, alice, seeded, url):
    alice.is_staff = alice.is_superuser = True
    alice.save()
    release_rows(team, seeded, 2, alice)
    client.force_login(alice)
    assert_constant(
        django_assert_max_num_queries, lambda: client.get(url()), lambda: release_rows(team, seeded, 15, alice)
    )


def test_mapping_page(client, django_assert_max_num_queries, team, alice, seeded):
    mapping = MappingFactory(dataset=DatasetFactory(team=team), connection=seeded)
    client.force_login(alice)

    def grow() -> None:
        for _ in range(15):
            ReleaseFactory(mapping=mapping, created_by=UserFactory())

    ReleaseFactory(mapping=mapping, created_by=alice)
    assert_constant(django_assert_max_num_queries, lambda: client.get(mapping.get_absolute_url()), grow)


def test_release_page(client, django_assert_max_num_queries, team, alice, seeded):
    release = ReleaseFactory(mapping=MappingFactory(dataset=DatasetFactory(team=team), connection=seeded))
    client.force_login(alice)

    def grow() -> None:
        for i in range(2, 12):
            step = ReleaseStep.objects.create(release=release, position=i, name="run", label=f"Step {i}")
            ReleaseEvent.objects.create(release=release, step=step, message=f"event {i}")
            ReleaseFactory(mapping=release.mapping, retry_of=release)

    step = ReleaseStep.objects.create(release=release, position=1, name="run", label="Step 1")
    ReleaseEvent.objects.create(release=release, step=step, message="event 1")
    assert_constant(django_assert_max_num_queries, lambda: client.get(release.get_absolute_url()), grow)


def test_connection_page(client, django_assert_max_num_queries, team, alice, seeded):
    client.force_login(alice)

    def grow() -> None:
        for i in range(15):
            MappingFactory(dataset=DatasetFactory(team=team), connection=seeded, name=f"more {i}")

    MappingFactory(dataset=DatasetFactory(team=team), connection=seeded, name="first")
    assert_constant(django_assert_max_num_queries, lambda: client.get(seeded.get_absolute_url()), grow)


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/releases/",
        "/api/v1/releases/?q=boom",
        "/api/v1/mappings/",
        "/api/v1/datasets/",
        "/api/v1/connections/",
        "/api/v1/release-sets/",
    ],
)
def test_api_lists(django_assert_max_num_queries, team, alice, seeded, url):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens.token_create(user=alice, name='test')[1]}")
    release_rows(team, seeded, 2, alice)
    assert_constant(
        django_assert_max_num_queries,
        lambda: client.get(url),
        lambda: release_rows(team, seeded, 15, alice),
    )
