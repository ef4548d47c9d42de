"""The jump-to box's search: by name or id, only what the user may see."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import ReleaseFactory

pytestmark = pytest.mark.django_db


def kinds(client, q: str) -> list[tuple[str, str]]:
    return [(r["kind"], r["url"]) for r in client.get(reverse("portal:jump"), {"q": q}).json()["results"]]


def test_it_finds_datasets_mappings_connections_and_releases(client, bob, toucan_mapping):
    release = ReleaseFactory(mapping=toucan_mapping)
    client.force_login(bob)
    found = kinds(client, "sales")
    assert ("dataset", toucan_mapping.dataset.get_absolute_url()) in found
    assert ("mapping", toucan_mapping.get_absolute_url()) in found
    assert ("connection", toucan_mapping.connection.get_absolute_url()) in kinds(client, "toucan sim")
    assert kinds(client, f"#{release.pk}")[0] == ("release", release.get_absolute_url())
    assert kinds(client, "") == [] and kinds(client, "no such thing") == []


def test_another_teams_objects_are_not_found(client, charlie, toucan_mapping):
    release = ReleaseFactory(mapping=toucan_mapping)
    client.force_login(charlie)
    assert kinds(client, "sales") == [] and kinds(client, str(release.pk)) == []
