from __future__ import annotations

import pytest
from django.urls import reverse

from portal.crypto import decrypt_json
from portal.models import AuditEvent, Connection
from portal.services.connections import connection_test

pytestmark = pytest.mark.django_db

CANARY = "CANARY-s3cr3t-7f9a"


def add(client, team, sim, **overrides):
    data = {
        "platform": "toucan",
        "team": team.pk,
        "name": "Toucan prod",
        "base_url": sim.url("toucan"),
        "cred-login": "contributor@demo.example",
        "cred-password": CANARY,
        **overrides,
    }
    return client.post(reverse("portal:connection-add") + "?platform=toucan", data)


def test_it_adds_a_connection_with_encrypted_credentials(client, alice, team, sim, django_capture_on_commit_callbacks):
    client.force_login(alice)
    with django_capture_on_commit_callbacks() as callbacks:
        response = add(client, team, sim)
    connection = Connection.objects.get(name="Toucan prod")
    assert response.status_code == 302 and response["Location"] == connection.get_absolute_url()
    assert CANARY not in connection.credentials_encrypted
    assert decrypt_json(connection.credentials_encrypted)["password"] == CANARY
    assert connection.test_requested_at is not None
    assert len(callbacks) == 1, "the connection test is enqueued after commit"


def test_the_secret_is_never_shown_back(client, alice, team, sim):
    client.force_login(alice)
    add(client, team, sim)
    connection = Connection.objects.get(name="Toucan prod")
    for url in (
        connection.get_absolute_url(),
        reverse("portal:connection-edit", args=[connection.pk]),
        reverse("portal:connection-list"),
    ):
        body = client.get(url).content.decode()
        assert CANARY not in body
    edit = client.get(reverse("portal:connection-edit", args=[connection.pk])).content.decode()
    assert "Leave blank to keep it" in edit


def test_a_blank_secret_on_edit_keeps_the_stored_one(client, alice, team, sim):
    client.force_login(alice)
    add(client, team, sim)
    connection = Connection.objects.get(name="Toucan prod")
    response = client.post(
        reverse("portal:connection-edit", args=[connection.pk]),
        {"name": "Renamed", "base_url": sim.url("toucan"), "cred-login": "someone@demo.example", "cred-password": ""},
    )
    assert response.status_code == 302
    connection.refresh_from_db()
    stored = decrypt_json(connection.credentials_encrypted)
    assert stored == {"login": "someone@demo.example", "password": CANARY}
    audit = AuditEvent.objects.get(action="connection-updated")
    assert audit.changes["fields"] == ["login"]
    assert CANARY not in str(audit.changes)


def test_bad_input_shows_field_errors_and_saves_nothing(client, alice, team, sim):
    client.force_login(alice)
    response = add(client, team, sim, **{"cred-password": "", "base_url": "not a url"})
    assert response.status_code == 200
    form, cred_form = response.context["form"], response.context["cred_form"]
    assert "base_url" in form.errors and "password" in cred_form.errors
    assert not Connection.objects.exists()


def test_the_connection_test_runs_in_the_worker_and_is_polled(client, alice, team, sim):

    client.force_login(alice)
    add(client, team, sim)
    connection = Connection.objects.get(name="Toucan prod")
    status_url = reverse("portal:connection-test-status", args=[connection.pk])
    pending = client.get(status_url, headers={"HX-Request": "true"})
    assert pending.status_code == 200 and b"Testing" in pending.content
    connection_test(connection=connection)  # what the worker task does
    done = client.get(status_url, headers={"HX-Request": "true"})
    assert done.status_code == 286, "polling stops once the result is in"
    assert b"Invalid username or password" in done.content  # the canary is not Toucan's password
    assert CANARY.encode() not in done.content


def test_archiving_a_connection_with_live_mappings_is_refused(client, alice, toucan_mapping):
    client.force_login(alice)
    connection = toucan_mapping.connection
    response = client.post(reverse("portal:connection-state", args=[connection.pk, "archived"]), follow=True)
    assert b"Archive or move this connection" in response.content
    connection.refresh_from_db()
    assert connection.state == "enabled"
