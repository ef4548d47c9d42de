"""Processes of our own for the operations tests: workers and beat we can stop, gunicorn, a webhook receiver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis
from django.conf import settings

from tests.simulator import ROOT

OPS_KEYS = ("portal:heartbeat:*", "portal:metrics:*", "portal:alerts:*")


def clear_ops_keys() -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    for pattern in OPS_KEYS:
        for key in client.scan_iter(pattern):
            client.delete(key)


@pytest.fixture(autouse=True)
def _clean_ops_state():
    """Heartbeats, counters and the alerts lock start empty, and are left empty for other tests."""
    clear_ops_keys()
    yield
    clear_ops_keys()


def db_url() -> str:
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def process_env(media_root: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": db_url(),
        "REDIS_URL": settings.REDIS_URL,
        "PORTAL_MEDIA_ROOT": str(media_root),
        **extra,
    }


class Process:
    """A child process logging to a file, with helpers to wait on what it writes."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str]):
        self.args, self.log_path, self.env = args, log_path, env
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self._log = open(self.log_path, "a")  # noqa: SIM115 - open for the life of the child process
        self.process = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.log_path.read_text()

    def wait_for_log(self, needle: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.args[:5]} exited:\n{self.text()[-3000:]}")
            time.sleep(0.2)
        raise RuntimeError(f"{needle!r} not logged in {timeout} s:\n{self.text()[-3000:]}")

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
        self._log.close()


def celery_worker(name: str, log_path: Path, media_root: Path, **env: str) -> Process:
    process = Process(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-n",
            f"{name}@%h",
            "--loglevel",
            "INFO",
            "--concurrency",
            "1",
            "--pool",
            "prefork",
            "--without-gossip",
            "--without-mingle",
        ],
        log_path,
        process_env(media_root, **env),
    )
    process.wait_for_log("ready")
    return process


def celery_beat(log_path: Path, media_root: Path, **env: str) -> Process:
    schedule = log_path.with_suffix(".schedule")
    process = Process(
        [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO", "-s", str(schedule)],
        log_path,
        process_env(media_root, **env),
    )
    return process


@pytest.fixture
def ops_processes(tmp_path, media_root):
    """Start workers and beat on demand; everything started is stopped at the end."""
    started: list[Process] = []

    class Starter:
        def worker(self, name: str, **env: str) -> Process:
            process = celery_worker(name, tmp_path / f"worker-{name}.log", media_root, **env)
            started.append(process)
            return process

        def beat(self, **env: str) -> Process:
            process = celery_beat(tmp_path / "beat.log", media_root, **env)
            started.append(process)
            return process

    yield Starter()
    for process in started:
        process.stop()


class Receiver(ThreadingHTTPServer):
    """A webhook receiver on loopback: every JSON body posted to it, in order."""

    def __init__(self):
        self.bodies: list[dict] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                length = int(self.headers.get("Content-Length", 0))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):  # silence
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def events(self, kind: str | None = None) -> list[tuple[str, str]]:
        return [(b["event"], b["key"]) for b in self.bodies if kind is None or b["kind"] == kind]


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.shutdown()
    server.server_close()
