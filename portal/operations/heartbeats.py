"""Heartbeats of Celery beat and the workers, kept in Redis so every web host sees them.

Never in process memory: the readiness check (portal/health.py) and the operations page run
in web processes on other hosts. Beat calls ``beat_tick()`` on each scheduler loop
(portal/beat.py); every worker calls ``worker_heartbeat()`` from a timer started when it is
ready (``portal.worker_steps.HeartbeatStep``, wired in config/celery_app.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

import redis
from django.conf import settings

BEAT_KEY = "portal:heartbeat:beat"


WORKERS_KEY = "portal:heartbeat:workers"


# A worker silent this long is forgotten (hosts come and go under autoscaling).
FORGET_AFTER_SECONDS = 24 * 3600


@cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def _redis() -> redis.Redis:
    return _client(settings.REDIS_URL)


def _now() -> float:
    return datetime.now(UTC).timestamp()


def _at(value: bytes | str | float) -> datetime:
    return datetime.fromtimestamp(float(value), UTC)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def beat_tick() -> None:
    """Record that Celery beat ran its schedule loop now."""
    _redis().set(BEAT_KEY, _now(), ex=FORGET_AFTER_SECONDS)


def worker_heartbeat(hostname: str) -> None:
    """Record that the worker ``hostname`` (Celery's node name, e.g. ``celery@host``) is alive now."""
    now = _now()
    client = _redis()
    client.hset(WORKERS_KEY, hostname, now)
    stale = [name for name, seen in client.hgetall(WORKERS_KEY).items() if now - float(seen) > FORGET_AFTER_SECONDS]
    if stale:
        client.hdel(WORKERS_KEY, *stale)


def last_beat_tick() -> datetime | None:
    """When beat last ran its schedule loop (UTC), or None if it never did (or not for a day)."""
    value = _redis().get(BEAT_KEY)
    return None if value is None else _at(value)


def worker_heartbeats() -> dict[str, datetime]:
    """Each worker's last heartbeat (UTC), by Celery node name."""
    return {_text(name): _at(seen) for name, seen in _redis().hgetall(WORKERS_KEY).items()}
