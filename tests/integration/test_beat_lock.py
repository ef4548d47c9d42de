"""One scheduler: two real Celery beat processes on real Redis and PostgreSQL; only one sends, the other takes over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from django.conf import settings

from portal.operations.beat import LOCK_KEY
from portal.operations.heartbeats import BEAT_KEY, last_beat_tick
from tests.helpers import wait_for
from tests.simulator import ROOT

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

SENT = "Sending due task release-sweeper"


class Beat:
    def __init__(self, name: str, tmp_path: Path) -> None:
        db = settings.DATABASES["default"]
        self.log_path = tmp_path / f"beat-{name}.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO"],
            cwd=tmp_path,
            env={
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "DJANGO_SETTINGS_MODULE": "config.settings.test",
                "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
                "REDIS_URL": settings.CELERY_BROKER_URL,
                "PORTAL_BEAT_LOCK_SECONDS": "2",
                "PORTAL_SWEEP_SECONDS": "0.5",
            },
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def text(self) -> str:
        return self.log_path.read_text()

    def sent(self) -> int:
        return self.text().count(SENT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


@pytest.fixture
def beats(tmp_path):
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(LOCK_KEY, BEAT_KEY)
    started: list[Beat] = []
    yield lambda name: started.append(Beat(name, tmp_path)) or started[-1]
    for beat in started:
        beat.stop()
    client.delete(LOCK_KEY)


def test_only_one_beat_sends_and_the_other_takes_over_when_it_dies(beats):
    first = beats("first")
    wait_for(lambda: first.sent() >= 2, timeout=30, message="the first beat to send the sweeper")
    second = beats("second")
    wait_for(lambda: "this one waits" in second.text(), timeout=30, message="the second beat to wait")
    sent_before = first.sent()
    wait_for(lambda: first.sent() >= sent_before + 4, timeout=20, message="the first beat to keep sending")
    assert second.sent() == 0, "the waiting beat sends nothing"
    holder = redis.Redis.from_url(settings.REDIS_URL).get(LOCK_KEY)
    assert holder is not None and f":{first.process.pid}:" in holder.decode()

    first.process.send_signal(signal.SIGKILL)  # no clean shutdown: the lease must run out
    first.process.wait()
    wait_for(lambda: second.sent() >= 2, timeout=20, message="the second beat to take over")
    assert "holds the scheduler lock" in second.text()
    holder = redis.Redis.from_url(settings.REDIS_URL).get(LOCK_KEY)
    assert holder is not None and f":{second.process.pid}:" in holder.decode()
    tick = last_beat_tick()
    assert tick is not None


def test_a_beat_that_stops_cleanly_hands_over_at_once(beats):
    first = beats("first")
    wait_for(lambda: first.sent() >= 1, timeout=30, message="the first beat to send")
    second = beats("second")
    wait_for(lambda: "this one waits" in second.text(), timeout=30, message="the second beat to wait")
    first.stop()  # SIGTERM: beat closes its scheduler, which releases the lock
    holder = redis.Redis.from_url(settings.REDIS_URL).get(LOCK_KEY)
    assert holder is None or f":{second.process.pid}:" in holder.decode(), "the stopped beat let go of the lock"
    wait_for(lambda: second.sent() >= 1, timeout=10, message="the second beat to take over")
