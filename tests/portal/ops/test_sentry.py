"""Error tracking: off without SENTRY_DSN; with it, a canary secret in a connection's credentials never
appears in an event. Events are recorded in-process by a transport of our own: nothing leaves the machine."""

from __future__ import annotations

import json
import logging

import pytest
import sentry_sdk
from django.test import Client
from django.urls import reverse
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from config.sentry import init_sentry
from portal.crypto import decrypt_json, encrypt_json
from tests.factories import ConnectionFactory

pytestmark = pytest.mark.django_db

CANARY = "CANARY-sentry-9d1e-never-show-me"


class RecordingTransport(Transport):
    """Keeps every envelope in memory instead of sending it."""

    envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        RecordingTransport.envelopes.append(envelope)


@pytest.fixture
def events():
    RecordingTransport.envelopes = []
    init_sentry(dsn="https://public@sentry.invalid/1", environment="test", transport=RecordingTransport)

    def collected() -> list[dict]:
        sentry_sdk.flush()
        return [item.payload.json for env in RecordingTransport.envelopes for item in env.items if item.payload.json]

    yield collected
    # Off again for the other tests: init() without a DSN would still leave an (inactive-looking)
    # client in place; no client at all is what a process without SENTRY_DSN has.
    sentry_sdk.get_global_scope().set_client(None)


def test_error_tracking_is_off_without_a_dsn(settings):
    assert settings.SENTRY_DSN == ""
    assert not sentry_sdk.get_client().is_active()


def _credentials_in_a_frame(connection) -> None:
    # Names a scrubber would not guess: only leaving locals out keeps these from an event.
    blob = decrypt_json(connection.credentials_encrypted)
    pw = blob["password"]
    raise RuntimeError(f"the platform refused the login of {blob['login']} ({len(pw)} chars)")


def test_a_crash_next_to_decrypted_credentials_sends_no_secret(events, team):
    connection = ConnectionFactory(
        team=team, credentials_encrypted=encrypt_json({"login": "ann@example.com", "password": CANARY})
    )
    try:
        _credentials_in_a_frame(connection)
    except RuntimeError:
        sentry_sdk.capture_exception()
    logging.getLogger("portal.engine").error("release crashed", extra={"credentials": {"password": CANARY}})
    captured = events()
    assert len(captured) == 2
    assert captured[0]["exception"]["values"][0]["type"] == "RuntimeError"
    assert "_credentials_in_a_frame" in json.dumps(captured[0])  # the stack is there, its locals are not
    assert CANARY not in json.dumps(captured)


def test_a_crashing_form_post_sends_no_secret(events, alice, team, settings, sim):
    """A 500 while saving a connection (a broken key setting): the event has the request, not its secret."""
    settings.PORTAL_CREDENTIAL_KEYS = ["not-a-fernet-key"]
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    response = client.post(
        reverse("portal:connection-add") + f"?platform=toucan&token={CANARY}",
        {
            "platform": "toucan",
            "team": team.pk,
            "name": "Leaky",
            "base_url": sim.url("toucan"),
            "cred-login": "contributor@demo.example",
            "cred-password": CANARY,
        },
        HTTP_AUTHORIZATION=f"Bearer {CANARY}",
    )
    assert response.status_code == 500
    captured = [e for e in events() if e.get("exception")]
    assert captured, "the crash was reported"
    event = captured[0]
    assert event["exception"]["values"][-1]["type"] == "ImproperlyConfigured"
    # The form body is reported (it helps), its secret field is not.
    assert event["request"]["data"]["cred-login"] == "contributor@demo.example"
    assert event["request"]["data"]["cred-password"] == "[redacted]"
    assert CANARY not in json.dumps(events())
