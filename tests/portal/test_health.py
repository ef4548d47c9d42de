"""/healthz and /readyz: real PostgreSQL, Redis, a moto S3 server and a real worker; nothing mocked."""

from __future__ import annotations

import time

import pytest
import redis

from config.storage import s3_storage as s3_entry
from portal.operations.heartbeats import (
    BEAT_KEY,
    WORKERS_KEY,
    beat_tick,
    last_beat_tick,
    worker_heartbeat,
    worker_heartbeats,
)
from tests.helpers import wait_for
from tests.simulator import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_heartbeats(settings):
    """Each test starts with no heartbeat recorded (other tests' workers may have left some)."""
    redis.Redis.from_url(settings.REDIS_URL).delete(BEAT_KEY, WORKERS_KEY)


def test_liveness_answers_without_login_or_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_readiness_fails_without_worker_and_beat_heartbeats(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    checks = body["checks"]
    assert {name: check["status"] for name, check in checks.items()} == {
        "database": "ok",
        "broker": "ok",
        "storage": "ok",
        "worker": "fail",
        "beat": "fail",
    }
    assert checks["worker"]["error"] == "no worker heartbeat in 60 s"
    assert all(isinstance(check["latency_ms"], float) for check in checks.values())


def test_readiness_passes_with_fresh_heartbeats_and_fails_when_they_age(client, settings):
    worker_heartbeat("celery@worker-1")
    beat_tick()
    response = client.get("/readyz", HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response.json()["status"] == "ok"
    settings.PORTAL_HEALTH_BEAT_MAX_AGE = 0.05
    time.sleep(0.1)
    body = client.get("/readyz").json()
    assert body["checks"]["beat"] == {
        "status": "fail",
        "latency_ms": body["checks"]["beat"]["latency_ms"],
        "error": "no beat tick in 0.05 s",
    }
    assert body["checks"]["worker"]["status"] == "ok"


def test_heartbeats_are_shared_through_redis():
    assert last_beat_tick() is None and worker_heartbeats() == {}
    worker_heartbeat("celery@a")
    worker_heartbeat("celery@b")
    beat_tick()
    seen = worker_heartbeats()
    assert set(seen) == {"celery@a", "celery@b"}
    tick = last_beat_tick()
    assert tick is not None and tick.tzinfo is not None and all(t <= tick for t in seen.values())


def test_readiness_names_what_is_down_and_leaks_no_configuration(client, settings, s3_server):
    dead = free_port()
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{dead}/7"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": s3_entry({**s3_server.env(), "PORTAL_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}),
    }
    worker_heartbeat("celery@worker-1")
    beat_tick()
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["broker"] == {**checks["broker"], "status": "fail", "error": "unavailable"}
    assert checks["storage"]["status"] == "fail" and checks["storage"]["error"] == "unavailable"
    assert checks["database"]["status"] == "ok"
    text = response.content.decode()
    for secret in ("127.0.0.1", str(dead), s3_server.bucket, s3_server.secret_key, "redis://", "postgres"):
        assert secret not in text


def test_readiness_checks_the_s3_storage(client, s3_storage):
    worker_heartbeat("celery@worker-1")
    beat_tick()
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert not s3_storage.keys("health_check_storage_test/"), "the probe object is deleted"


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_real_worker_beats_on_its_own(celery_worker_process, settings):
    seen = wait_for(worker_heartbeats, timeout=30, message="the worker's heartbeat")
    assert all(name.startswith("celery@") for name in seen)
