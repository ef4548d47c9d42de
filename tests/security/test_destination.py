"""Secrets are bound to their destination: a new scheme, host or port gets none of the stored secrets."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from connectors.base import AuthenticationError, ConnectorError
from portal.crypto import decrypt_json
from portal.models import AuditEvent, Connection
from portal.services.connections import connection_update

from ..factories import ConnectionFactory
from .listener import listener

pytestmark = pytest.mark.django_db

CANARY = "CANARY-bound-7f3a-never-sent"


@pytest.fixture
def connection(team, sim):
    from portal.crypto import encrypt_json

    return ConnectionFactory(
        team=team,
        base_url=sim.url("toucan"),
        credentials_encrypted=encrypt_json({"login": "contributor@demo.example", "password": CANARY}),
    )


def test_the_form_refuses_a_new_host_without_the_secrets_and_the_listener_gets_nothing(
    client, alice, connection
) -> None:
    client.force_login(alice)
    with listener() as got:
        response = client.post(
            reverse("portal:connection-edit", args=[connection.pk]),
            {
                "name": connection.name,
                "base_url": got.url,
                "cred-login": "contributor@demo.example",
                "cred-password": "",
            },
        )
        assert response.status_code == 200
        assert "the stored secrets are not sent there" in response.content.decode()
        connection.refresh_from_db()
        assert connection.base_url != got.url  # nothing saved
        # The connection still calls its old destination only (the simulator refuses the canary password).
        with pytest.raises(AuthenticationError):
            connection.connector().test_connection()
        assert got.requests == []


def test_the_api_refuses_a_new_port_without_the_secrets(client, alice, connection, sim) -> None:
    client.force_login(alice)
    with listener() as got:
        response = client.patch(
            reverse("api-connection", args=[connection.pk]), {"base_url": got.url}, content_type="application/json"
        )
        assert response.status_code == 400
        assert "password" in response.json()["errors"]["base_url"][0]
        assert got.requests == []


def test_a_new_destination_with_its_secrets_gets_only_those(alice, connection) -> None:
    with listener(status=401, body=b'{"message": "who are you"}') as got:
        connection_update(
            connection=connection,
            name=connection.name,
            base_url=got.url,
            credentials={"login": "contributor@demo.example", "password": "a-new-password"},
            actor=alice,
        )
        connection.refresh_from_db()
        assert decrypt_json(connection.credentials_encrypted)["password"] == "a-new-password"
        with pytest.raises(ConnectorError):  # the listener refuses the login; what it received matters
            connection.connector().test_connection()
        assert got.requests and CANARY not in got.everything()
    event = AuditEvent.objects.filter(action="connection-updated").latest("pk")
    assert event.changes["secrets_cleared"] is True
    assert CANARY not in str(event.changes) and "a-new-password" not in str(event.changes)


def test_the_same_destination_keeps_the_stored_secrets(alice, connection, sim) -> None:
    connection_update(
        connection=connection,
        name="Renamed",
        base_url=connection.base_url.rstrip("/") + "/",
        credentials={"login": "contributor@demo.example", "password": ""},
        actor=alice,
    )
    assert decrypt_json(Connection.objects.get(pk=connection.pk).credentials_encrypted)["password"] == CANARY


def test_a_url_the_policy_refuses_is_refused_when_saved(alice, connection, settings) -> None:
    settings.PORTAL_OUTBOUND_ALLOW = []
    with pytest.raises(ValidationError) as info:
        connection_update(
            connection=connection,
            name=connection.name,
            base_url="http://169.254.169.254/latest",
            credentials={"login": "x", "password": "y"},
            actor=alice,
        )
    assert "link-local" in str(info.value)
