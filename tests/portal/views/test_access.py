"""Who may see and do what: one parametrised sweep over every page and action."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.models import ObjectState
from portal.services.mappings import params_validate
from portal.services.releases import release_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def objects(toucan_mapping, csv_upload, alice):

    params = params_validate(mapping=toucan_mapping, data={})
    release = release_create(mapping=toucan_mapping, upload=csv_upload, params=params, actor=alice)
    return {
        "mapping": toucan_mapping,
        "connection": toucan_mapping.connection,
        "dataset": toucan_mapping.dataset,
        "release": release,
    }


READ_PAGES = [
    ("portal:connection-detail", "connection"),
    ("portal:dataset-detail", "dataset"),
    ("portal:mapping-detail", "mapping"),
    ("portal:release-detail", "release"),
    ("portal:release-status", "release"),
]


@pytest.mark.parametrize(("name", "obj"), READ_PAGES)
def test_team_members_read_and_outsiders_get_404(client, objects, bob, charlie, name, obj):
    url = reverse(name, args=[objects[obj].pk])
    client.force_login(bob)
    assert client.get(url).status_code == 200
    client.force_login(charlie)
    response = client.get(url)
    assert response.status_code == 404
    assert b"belongs to a team you are not in" in response.content


def test_anonymous_users_are_sent_to_login(client, objects):
    response = client.get(reverse("portal:dataset-detail", args=[objects["dataset"].pk]))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


OPERATE = [("portal:upload-create", "dataset"), ("portal:release-create", "mapping")]
MANAGE = [
    ("portal:connection-edit", "connection"),
    ("portal:dataset-edit", "dataset"),
    ("portal:mapping-edit", "mapping"),
    ("portal:mapping-add", "dataset"),
]


@pytest.mark.parametrize(("name", "obj"), OPERATE)
def test_it_requires_the_operator_role_to_upload_and_release(client, objects, bob, olivia, name, obj):
    url = reverse(name, args=[objects[obj].pk])
    client.force_login(bob)
    assert client.get(url).status_code == 403
    assert client.post(url, {}).status_code == 403
    client.force_login(olivia)
    assert client.get(url).status_code == 200


@pytest.mark.parametrize(("name", "obj"), MANAGE)
def test_it_requires_the_admin_role_to_manage(client, objects, olivia, alice, name, obj):
    url = reverse(name, args=[objects[obj].pk])
    client.force_login(olivia)
    assert client.get(url).status_code == 403
    client.force_login(alice)
    assert client.get(url).status_code == 200


def test_a_viewer_cannot_flip_toggles(client, objects, bob):
    client.force_login(bob)
    url = reverse("portal:mapping-state", args=[objects["mapping"].pk, "disabled"])
    assert client.post(url).status_code == 403
    objects["mapping"].refresh_from_db()
    assert objects["mapping"].state == ObjectState.ENABLED


def test_an_outsider_cannot_cancel_another_teams_release(client, objects, charlie):
    client.force_login(charlie)
    assert client.post(reverse("portal:release-cancel", args=[objects["release"].pk])).status_code == 404
    objects["release"].refresh_from_db()
    assert not objects["release"].cancel_requested


def test_history_shows_only_the_users_teams(client, objects, charlie, bob):
    client.force_login(charlie)
    assert b"Sales on Toucan" not in client.get(reverse("portal:history")).content
    client.force_login(bob)
    assert b"Sales on Toucan" in client.get(reverse("portal:history")).content


def test_an_unknown_page_is_a_useful_404(client, alice):
    client.force_login(alice)
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert b"Back to the dashboard" in response.content


def test_a_member_is_managed_by_admins_only(client, team, alice, bob, olivia):
    url = reverse("portal:team-detail", args=[team.pk])
    client.force_login(olivia)
    assert client.post(url, {"username": "bob", "role": "admin"}).status_code == 403
    client.force_login(alice)
    response = client.post(url, {"username": "bob", "role": "operator"})
    assert response.status_code == 302
    assert team.memberships.get(user=bob).role == "operator"


def test_the_last_admin_cannot_be_removed(client, team, alice):
    membership = team.memberships.get(user=alice)
    client.force_login(alice)
    response = client.post(reverse("portal:member-update", args=[membership.pk]), {"remove": "1"}, follow=True)
    assert b"at least one admin" in response.content
    assert team.memberships.filter(user=alice).exists()
