"""Liveness of the worker and beat processes, kept in Redis so every web process reads the same.

A worker's main process calls ``worker_heartbeat`` on a timer (``portal.worker_steps``), beat
calls ``beat_tick`` on every scheduler tick (``portal.beat``). Readers only compare the times
with now: a process that stops, or cannot reach Redis, simply ages.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

import redis
from django.conf import settings

BEAT_KEY = "portal:heartbeat:beat"
WORKERS_KEY = "portal:heartbeat:workers"


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def _redis() -> redis.Redis:
    return _client(settings.REDIS_URL)


def _when(raw: bytes | str | None) -> datetime | None:
    if raw is None:
        return None
    return datetime.fromtimestamp(float(raw), tz=UTC)


def beat_tick() -> None:
    """Record that beat's scheduler loop ran now."""
    _redis().set(BEAT_KEY, repr(datetime.now(UTC).timestamp()))


def worker_heartbeat(hostname: str) -> None:
    """Record that the worker ``hostname`` (Celery's node name) is alive now."""
    _redis().hset(WORKERS_KEY, hostname, repr(datetime.now(UTC).timestamp()))


def last_beat_tick() -> datetime | None:
    raw = _redis().get(BEAT_KEY)
    return _when(raw)


def worker_heartbeats() -> dict[str, datetime]:
    """hostname -> last heartbeat, for every worker ever seen (forgetting old ones is the readers' call)."""
    raw = _redis().hgetall(WORKERS_KEY)
    heartbeats: dict[str, datetime] = {}
    for host, value in raw.items():
        when = _when(value)
        if when is not None:
            heartbeats[host.decode() if isinstance(host, bytes) else host] = when
    return heartbeats
