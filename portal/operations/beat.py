"""The scheduler Celery beat runs: django-celery-beat's, behind a lease lock in Redis, with a heartbeat.

Exactly one beat acts at a time, even if two are started by mistake (two hosts, a deploy
that overlaps, a restarted container). Each beat, on each loop:

* holds the lock: renews its lease (``PORTAL_BEAT_LOCK_SECONDS``), records ``beat_tick()``
  and runs the due entries;
* does not hold it: tries to take it (``SET NX PX``); if another beat holds it, sends nothing
  and asks again in a few seconds. A beat that dies stops renewing: its lease runs out and a
  waiting beat takes over within one lease.

A beat that cannot renew (Redis unreachable, or its lease ran out while it was frozen and
another took over) stops sending at once. docs/deploy.md ("One scheduler") says more."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import uuid
from typing import Any

import redis
from django.conf import settings
from django_celery_beat.schedulers import DatabaseScheduler

from portal.operations.alerts import alerts_check, check_is_stale
from portal.operations.heartbeats import beat_tick

logger = logging.getLogger(__name__)


LOCK_KEY = "portal:beat:lock"


# Renew only if the lease is still ours (compare-and-set), so a beat never extends another's lease.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


_PROCESS_TOKEN = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class BeatLock:
    """A lease in Redis held by one beat: ``acquire_or_renew()`` says whether this beat may act now."""

    def __init__(self, client: redis.Redis, lease_seconds: float, key: str = LOCK_KEY) -> None:
        self.client, self.key = client, key
        self.lease_ms = int(lease_seconds * 1000)
        # One token per process: celery beat builds its scheduler more than once (banner, service), and
        # every instance in the process is the same beat.
        self.token = _PROCESS_TOKEN
        self.held = False

    def acquire_or_renew(self) -> bool:
        try:
            if self.held:
                self.held = bool(self.client.eval(_RENEW, 1, self.key, self.token, self.lease_ms))
                if not self.held:
                    logger.warning("Beat lost the scheduler lock; it stops sending until it holds it again")
            else:
                self.held = bool(self.client.set(self.key, self.token, nx=True, px=self.lease_ms)) or bool(
                    self.client.eval(_RENEW, 1, self.key, self.token, self.lease_ms)
                )
                if self.held:
                    logger.info("Beat %s holds the scheduler lock: it now sends the schedules", self.token)
        except redis.RedisError:
            if self.held:
                logger.warning("Beat cannot reach Redis to renew the scheduler lock; it stops sending")
            self.held = False
        return self.held

    def holder(self) -> str | None:
        value = self.client.get(self.key)
        return None if value is None else _text(value)

    def release(self) -> None:
        with contextlib.suppress(redis.RedisError):  # if Redis is unreachable the lease runs out by itself
            self.client.eval(_RELEASE, 1, self.key, self.token)
        self.held = False


class LockedDatabaseScheduler(DatabaseScheduler):
    """django-celery-beat's DatabaseScheduler that acts only while it holds the beat lock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Save each entry's last run at once, so a beat that takes over does not run it again.
        kwargs.setdefault("sync_every_tasks", 1)
        lease = float(settings.PORTAL_BEAT_LOCK_SECONDS)
        self.lock = BeatLock(redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2), lease)
        # Ask for the lock (or renew it) at least three times per lease.
        self.standby_interval = max(0.5, lease / 3)
        super().__init__(*args, **kwargs)
        self.max_interval: float = min(float(self.max_interval), self.standby_interval)
        if not self.lock.acquire_or_renew():
            logger.info("Another beat holds the scheduler lock (%s): this one waits", self.lock.holder())

    def tick(self, *args: Any, **kwargs: Any) -> float:
        was_held = self.lock.held
        if not self.lock.acquire_or_renew():
            return self.standby_interval
        if not was_held:
            # Taking over: read every entry's last run from the database, as the previous beat left it.
            self._initial_read = True
            self._heap = None
        try:
            beat_tick()
            # The scheduled alerts check needs a worker; with none running it for a while, beat runs it
            # itself, so "no worker" is still reported.
            if check_is_stale():
                alerts_check()
        except Exception:  # Redis or the database away: beat keeps scheduling
            logger.warning("beat heartbeat or alerts check failed", exc_info=True)
        return float(super().tick(*args, **kwargs))

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.lock.release()
