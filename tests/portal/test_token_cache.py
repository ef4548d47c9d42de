"""Platform tokens are fetched once per connection, shared by every task, encrypted in Redis."""

from __future__ import annotations

import time

import pytest
import redis
from django.conf import settings

from connectors.tailer import TailerTarget
from portal.crypto import encrypt_json
from simulators.tailer import TailerSimulator
from tests.factories import ConnectionFactory

pytestmark = pytest.mark.django_db

TARGET = TailerTarget(
    account="000099",
    environment="DEV",
    configuration_type="table-to-table",
    configuration_id="000099_iowa_liquor_prepare_pda",
)


@pytest.fixture
def connection(team, sim):
    redis.Redis.from_url(settings.REDIS_URL).delete(
        *redis.Redis.from_url(settings.REDIS_URL).keys("portal:token:*") or ["-"]
    )
    return ConnectionFactory(
        team=team,
        platform="tailer",
        name="Tailer sim",
        base_url=sim.url("tailer"),
        credentials_encrypted=encrypt_json(TailerSimulator.demo(sim.url("tailer"))["credentials"]),
    )


def test_every_task_of_a_connection_shares_one_token(connection, sim):
    for _ in range(3):  # three tasks, each building its connector afresh
        connection.connector().last_runs(TARGET, limit=1)
    assert sim.state("tailer")["token_fetches"] == 1
    stored = [
        redis.Redis.from_url(settings.REDIS_URL).get(k)
        for k in redis.Redis.from_url(settings.REDIS_URL).keys("portal:token:*")
    ]
    assert len(stored) == 1
    assert b"eyJ" not in stored[0], "the JWT is stored encrypted"


def test_new_credentials_fetch_a_new_token(connection, sim):
    connection.connector().last_runs(TARGET, limit=1)
    connection.credentials_encrypted = encrypt_json(TailerSimulator.demo(sim.url("tailer"))["credentials"])
    connection.save()
    connection.connector().last_runs(TARGET, limit=1)
    assert sim.state("tailer")["token_fetches"] == 2


def test_a_token_is_shared_only_until_shortly_before_its_expiry(connection, sim):
    # exp is in whole seconds: the token lives 3 to 4 s, kept in Redis until a tenth of that before.
    sim.config("tailer", token_ttl=4)
    connection.connector().last_runs(TARGET, limit=1)
    connection.connector().last_runs(TARGET, limit=1)
    assert sim.state("tailer")["token_fetches"] == 1
    time.sleep(4.2)
    connection.connector().last_runs(TARGET, limit=1)
    assert sim.state("tailer")["token_fetches"] == 2
    assert sim.state("tailer")["auth_failures"] == 0
