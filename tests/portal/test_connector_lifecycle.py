"""Connection.connector(): the timeout it is given, and closing its HTTP clients."""

from __future__ import annotations

import time

import pytest

from connectors.base import Timeout
from portal.crypto import encrypt_json
from simulators.usmart import ORG_GUID
from tests.factories import ConnectionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def toucan(team, sim):
    return ConnectionFactory(team=team, name="Toucan sim", base_url=sim.url("toucan"))


def test_it_uses_the_short_read_timeout_inside_a_web_request(toucan, settings):
    settings.PORTAL_HTTP_TIMEOUT_SECONDS = 30.0
    settings.PORTAL_HTTP_READ_TIMEOUT_SECONDS = 0.5
    assert toucan.connector().timeout == 30.0
    with toucan.connector(interactive=True) as connector:
        assert connector.timeout == 0.5


def test_an_interactive_read_gives_up_after_the_read_timeout(toucan, sim, settings):
    settings.PORTAL_HTTP_READ_TIMEOUT_SECONDS = 0.5
    sim.fail("toucan", "hang", hang_seconds=5)
    started = time.monotonic()
    with toucan.connector(interactive=True) as connector, pytest.raises(Timeout):
        connector.test_connection()
    # The simulator hangs 5 s: only the short timeout can end the call well before that.
    assert time.monotonic() - started < 4


def test_leaving_the_with_block_closes_every_http_client(team, sim):
    usmart = ConnectionFactory(
        team=team,
        platform="usmart",
        name="uSmart sim",
        base_url=sim.url("usmart"),
        credentials_encrypted=_usmart_credentials(),
    )
    with usmart.connector() as connector:
        clients = list(connector._clients)
        # The API client and the storage client (the signed PUT goes to storage).
        assert len(clients) == 2
        assert not any(c._client.is_closed for c in clients)
    assert all(c._client.is_closed for c in clients)
    connector.close()  # idempotent


def test_closing_streams_then_closes(toucan):
    connector = toucan.connector()
    chunks = connector.closing(iter([b"a", b"b"]))
    assert next(chunks) == b"a"
    assert not connector._clients[0]._client.is_closed
    assert b"".join(chunks) == b"b"
    assert connector._clients == []


def _usmart_credentials() -> str:
    return encrypt_json(
        {"organisation_guid": ORG_GUID, "api_key_id": "usmart-demo-key-id", "api_key_secret": "usmart-demo-key-secret"}
    )
