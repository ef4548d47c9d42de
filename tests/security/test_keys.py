"""Key rotation re-encrypts every encrypted value; an unreadable value is an explicit error everywhere."""

from __future__ import annotations

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from portal.automation.notifications import channel_create, deliver
from portal.crypto import UNREADABLE_CREDENTIALS, decrypt_json
from portal.models import AuditEvent, Connection, NotificationChannel, NotificationDelivery, Release
from portal.security.key_rotation import ENCRYPTED_FIELDS
from portal.services.connections import connection_test

from ..factories import ConnectionFactory, MappingFactory, UploadFactory

pytestmark = pytest.mark.django_db

OLD, NEW, STRANGER = Fernet.generate_key().decode(), Fernet.generate_key().decode(), Fernet.generate_key().decode()


def test_every_encrypted_field_is_rotated() -> None:
    declared = {
        (model, f.name)
        for model in apps.get_app_config("portal").get_models()
        for f in model._meta.get_fields()
        if f.name.endswith("_encrypted")
    }
    assert declared == set(ENCRYPTED_FIELDS)


def test_rotation_covers_connections_and_webhook_secrets(team, settings) -> None:
    settings.PORTAL_CREDENTIAL_KEYS = [OLD]
    connection = ConnectionFactory(team=team)
    channel = channel_create(team=team, kind="webhook", target="http://127.0.0.1:9/h", secret="hook-key")
    channel_create(team=team, kind="email", target="ops@example.org")
    settings.PORTAL_CREDENTIAL_KEYS = [NEW, OLD]
    out = StringIO()
    call_command("rotate_credential_keys", stdout=out)
    assert "connection.credentials_encrypted: 1 re-encrypted" in out.getvalue()
    assert "notificationchannel.secret_encrypted: 1 re-encrypted, 1 empty" in out.getvalue()
    settings.PORTAL_CREDENTIAL_KEYS = [NEW]  # the old key is gone: everything still reads
    assert decrypt_json(Connection.objects.get(pk=connection.pk).credentials_encrypted)["password"]
    assert decrypt_json(NotificationChannel.objects.get(pk=channel.pk).secret_encrypted) == {"secret": "hook-key"}
    event = AuditEvent.objects.get(action="keys-rotated")
    assert event.changes["notificationchannel.secret_encrypted"]["rotated"] == 1


def test_a_value_no_key_reads_is_an_explicit_error_everywhere(client, alice, team, settings) -> None:
    settings.PORTAL_CREDENTIAL_KEYS = [STRANGER]
    connection = ConnectionFactory(team=team)
    settings.PORTAL_CREDENTIAL_KEYS = [NEW]
    client.force_login(alice)
    answer = client.get(reverse("api-connection", args=[connection.pk])).json()
    assert answer["secrets_set"] is None and answer["credentials_error"] == UNREADABLE_CREDENTIALS
    page = client.get(reverse("portal:connection-detail", args=[connection.pk])).content.decode()
    assert "cannot be decrypted" in page and "not used" not in page
    tested = connection_test(connection=connection)
    assert tested.last_test_ok is False and tested.last_test_message == UNREADABLE_CREDENTIALS
    with pytest.raises(CommandError, match="cannot be decrypted"):
        call_command("rotate_credential_keys", stdout=StringIO())


def test_a_webhook_whose_secret_is_unreadable_is_not_sent_unsigned(team, settings, failed_release_for) -> None:
    settings.PORTAL_CREDENTIAL_KEYS = [STRANGER]
    channel = channel_create(team=team, kind="webhook", target="http://127.0.0.1:9/h", secret="k")
    settings.PORTAL_CREDENTIAL_KEYS = [NEW]
    delivery = failed_release_for(channel)
    delivered = deliver(delivery)
    assert delivered.status != "delivered" and "cannot be decrypted" in delivered.error


@pytest.fixture
def failed_release_for(team):
    def make(channel: NotificationChannel) -> NotificationDelivery:
        mapping = MappingFactory(dataset__team=team)
        upload = UploadFactory(dataset=mapping.dataset)
        release = Release.objects.create(
            team=team, mapping=mapping, dataset=mapping.dataset, upload=upload, platform="toucan", status="failed"
        )
        return NotificationDelivery.objects.create(channel=channel, release=release, event="failure")

    return make
