from __future__ import annotations

import io

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from portal.crypto import decrypt_json, encrypt_json
from tests.factories import ConnectionFactory


def test_it_round_trips_and_hides_the_plaintext():
    token = encrypt_json({"password": "CANARY-xyz"})
    assert "CANARY" not in token
    assert decrypt_json(token) == {"password": "CANARY-xyz"}


def test_a_wrong_key_raises_instead_of_returning_anything(settings):
    token = encrypt_json({"password": "x"})
    settings.PORTAL_CREDENTIAL_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(InvalidToken) as info:
        decrypt_json(token)
    assert "x" not in str(info.value)


def test_no_key_is_a_configuration_error(settings):
    settings.PORTAL_CREDENTIAL_KEYS = []
    with pytest.raises(ImproperlyConfigured):
        encrypt_json({})


def test_it_does_not_use_the_secret_key(settings):
    token = encrypt_json({"a": 1})
    settings.SECRET_KEY = "something-else-entirely"
    assert decrypt_json(token) == {"a": 1}


@pytest.mark.django_db
def test_keys_rotate_without_losing_credentials(settings):
    old_key = settings.PORTAL_CREDENTIAL_KEYS[0]
    connection = ConnectionFactory()
    new_key = Fernet.generate_key().decode()
    settings.PORTAL_CREDENTIAL_KEYS = [new_key, old_key]
    call_command("rotate_credential_keys", stdout=io.StringIO())
    settings.PORTAL_CREDENTIAL_KEYS = [new_key]  # the old key is gone
    connection.refresh_from_db()
    assert connection.credentials().login == "contributor@demo.example"
