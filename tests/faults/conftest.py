"""The fault suite's machinery: a private redis-server it starts and kills, real Celery
worker processes and a beat (the sweeper every second) on that Redis, and the checks
every case ends with.

The test process publishes to the private Redis too (the Celery app's broker is
switched for the suite and switched back after), so a release created here is run by
the suite's workers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis as redis_client

from tests.simulator import ROOT, free_port


class PrivateRedis:
    """A redis-server of the suite's own, on a free loopback port, with nothing on disk."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis_client.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client.ping()
                return
            except redis_client.RedisError:
                time.sleep(0.05)
        raise RuntimeError("the private redis-server did not start")

    def kill(self) -> None:
        """SIGKILL: everything in it is gone, as after a crash."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def client(self) -> redis_client.Redis:
        return redis_client.Redis.from_url(self.url)


def children(pid: int) -> list[int]:
    """The direct child processes of ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


class Fleet:
    """Worker processes (prefork, 2 children each) and a beat, on the private Redis, each
    run as the Procfile runs them: under ``scripts/restart-on-exit``, which starts a
    worker again when it exits (Celery's Redis transport can die on a reconnect)."""

    def __init__(self, env: dict[str, str], logdir: Path, workers: int = 2) -> None:
        self.env, self.logdir, self.count = env, logdir, workers
        self.wrappers: list[subprocess.Popen[bytes]] = []
        self.started = 0

    def _spawn(self, args: list[str], name: str) -> subprocess.Popen[bytes]:
        self.started += 1
        log = open(self.logdir / f"{name}-{self.started}.log", "wb")  # noqa: SIM115 - lives as long as the process
        return subprocess.Popen(
            [str(ROOT / "scripts" / "restart-on-exit"), sys.executable, "-m", "celery", "-A", "config", *args],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def masters(self) -> list[int]:
        """The Celery worker main processes (children of the wrappers, not their sleeps)."""
        found = []
        for wrapper in self.wrappers[: self.count]:
            for pid in children(wrapper.pid):
                try:
                    if b"celery" in (Path("/proc") / str(pid) / "cmdline").read_bytes():
                        found.append(pid)
                except OSError:
                    continue
        return found

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            masters = self.masters()
            if len(masters) == self.count and all(len(children(m)) >= 2 for m in masters):
                return
            time.sleep(0.1)
        raise RuntimeError("the workers did not start")

    def start(self) -> None:
        for _ in range(self.count):
            name = f"fault{self.started}@%h"
            args = ["worker", "--loglevel", "INFO", "--concurrency", "2", "--pool", "prefork", "-n", name]
            self.wrappers.append(
                self._spawn([*args, "--without-heartbeat", "--without-gossip", "--without-mingle"], "worker")
            )
        beat = ["beat", "--loglevel", "INFO", "-S", "celery.beat:PersistentScheduler", "-s", str(self.logdir / "beat")]
        self.wrappers.append(self._spawn(beat, "beat"))
        self.wait_ready()

    def pool_children(self) -> list[int]:
        return [pid for master in self.masters() for pid in children(master)]

    def kill_children(self) -> int:
        """SIGKILL every pool child (the masters start new ones)."""
        pids = self.pool_children()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)

    def kill_worker(self) -> None:
        """SIGKILL one whole worker, master and children; its wrapper starts it again."""
        master = self.masters()[0]
        pids = [master, *children(master)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.wait_ready()

    def stop(self) -> None:
        for wrapper in self.wrappers:
            if wrapper.poll() is None:
                wrapper.terminate()
        for wrapper in self.wrappers:
            try:
                wrapper.wait(timeout=15)
            except subprocess.TimeoutExpired:
                wrapper.kill()


@pytest.fixture(scope="session")
def private_redis(tmp_path_factory):
    server = PrivateRedis(tmp_path_factory.mktemp("redis"))
    yield server
    server.kill()


@pytest.fixture(scope="session")
def fleet(django_db_setup, django_db_blocker, private_redis, media_root, tmp_path_factory):
    """The suite's workers and beat. Beat runs the sweeper every second."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": private_redis.url,
        "PORTAL_MEDIA_ROOT": str(media_root),
        "PORTAL_SWEEP_SECONDS": "1",
        "PORTAL_LOST_SECONDS": "8",
        # A short visibility timeout: countdowns stay under 3 s, longer waits live in the database.
        "PORTAL_BROKER_VISIBILITY_TIMEOUT": "6",
    }
    fleet = Fleet(env, tmp_path_factory.mktemp("fleet"))
    fleet.start()
    yield fleet
    fleet.stop()


@pytest.fixture
def broker(fleet, private_redis, settings):
    """Point this process's Celery app at the private Redis for the test."""
    from config.celery_app import app

    def switch(url: str) -> None:
        app.conf.broker_url = url
        # Both pools are rebuilt on the new URL at the next publish (the old ones stay open:
        # kombu keeps producer pools by connection, and closing one breaks its later reuse).
        app._pool = None
        app.amqp._producer_pool = None

    previous = app.conf.broker_url
    settings.CELERY_BROKER_URL = private_redis.url
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {**settings.CELERY_BROKER_TRANSPORT_OPTIONS, "visibility_timeout": 6}
    if private_redis.process is None:
        private_redis.start()
    switch(private_redis.url)
    yield private_redis
    if private_redis.process is None:
        private_redis.start()
    switch(previous)
