"""The web tier under a steady load: gunicorn (production settings, DEBUG off) against runserver.

Usage: .venv/bin/python bench/web_throughput.py [seconds]   (default 30)

Needs the PostgreSQL of `make test` (DATABASE_URL, default postgres://postgres@127.0.0.1:5432) and
a Redis (REDIS_URL, default redis://127.0.0.1:6379/0; nothing is queued). It creates and migrates a
database of its own, `portal_bench_web`, with 300 releases of six steps each, then asks for the
release-status partial (the htmx poll of a live release page) and the history page at a fixed
50 requests/s for 30 s each (an open loop: latency counts from when a request was due, so a server
that falls behind is charged for the queue), first from gunicorn (deploy/web.sh: 4 sync processes,
GUNICORN_THREADS=1, after 20 warm-up requests a page), then from `manage.py runserver` in the same run. Everything stays on loopback.

Goal: status partial p95 under 25 ms through gunicorn. Exits 1 on a miss.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SERVER = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal").rsplit("/", 1)[0]
DATABASE_URL = f"{SERVER}/portal_bench_web"
SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
RATE = 50.0
GOAL_P95_MS = 25.0
PASSWORD = "bench-password-1f0e"  # noqa: S105 - a user of the throwaway bench database
ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PORTAL_", "GUNICORN_", "DATABASE_URL"))},
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "DJANGO_SECRET_KEY": "bench-" + "x" * 50,
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
    "DJANGO_SECURE_SSL_REDIRECT": "false",
    "DJANGO_SECURE_COOKIES": "false",
    # The pages' {% static %} names without a collectstatic run (whitenoise is not measured here).
    "DJANGO_STATICFILES_BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage",
    "DATABASE_URL": DATABASE_URL,
    "PORTAL_CREDENTIAL_KEYS": "pbo6sn4W8bWgaS_TXJcOBegpfdMBa6i_KcMu_4Z9xdg=",
    "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    "GUNICORN_WORKERS": "4",
    "GUNICORN_THREADS": "1",
    "GUNICORN_ACCESS_LOG": "",
    "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    "PYTHONPATH": str(ROOT),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed() -> int:
    """Create the database and its rows once; return the id of a running release."""
    import psycopg

    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = 'portal_bench_web'").fetchone():
            admin.execute("CREATE DATABASE portal_bench_web")
    os.environ.update(ENV)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone

    from portal.models import Release, ReleaseStep, StepStatus
    from tests.factories import DatasetFactory, MappingFactory, MembershipFactory, ReleaseFactory

    call_command("migrate", verbosity=0)
    running = Release.objects.filter(status="running").order_by("pk").first()
    if running is not None:
        return running.pk
    user = get_user_model().objects.create_user("bench", password=PASSWORD)
    dataset = DatasetFactory(name="Sales")
    MembershipFactory(team=dataset.team, user=user, role="admin")
    mapping = MappingFactory(dataset=dataset, name="Sales on Toucan")
    now = timezone.now()
    for index in range(300):
        made = ReleaseFactory(mapping=mapping, created_by=user, status="succeeded" if index else "running")
        release = cast(Release, made)
        for position in range(6):
            done = index or position < 3
            ReleaseStep.objects.create(
                release=release,
                position=position,
                name=f"operation:{position}",
                label=f"Operation {position}",
                status=StepStatus.SUCCEEDED if done else StepStatus.WAITING,
                started_at=now,
                finished_at=now if done else None,
                remote_ref=f"op-{index}-{position}",
            )
        if index == 0:
            running = release
    assert running is not None
    return running.pk


def wait_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited ({process.returncode})")
        try:
            httpx.get(url + "/healthz", timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not start in 60 s")


def logged_in(base: str) -> httpx.Cookies:
    with httpx.Client(base_url=base) as client:
        page = client.get("/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token is not None
        answer = client.post(
            "/login/", data={"username": "bench", "password": PASSWORD, "csrfmiddlewaretoken": token[1]}
        )
        assert answer.status_code == 302, answer.status_code
        return client.cookies


def load(base: str, path: str, cookies: httpx.Cookies, headers: dict[str, str]) -> tuple[list[float], int]:
    """RATE requests/s for SECONDS; each latency counts from when the request was due."""
    local = threading.local()
    count = int(RATE * SECONDS)
    start = time.monotonic() + 0.5
    errors = 0
    lock = threading.Lock()

    def one(index: int) -> float:
        nonlocal errors
        due = start + index / RATE
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=base, cookies=cookies, headers=headers, timeout=60)
        response = client.get(path)
        if response.status_code not in (200, 286):
            with lock:
                errors += 1
        return (time.monotonic() - due) * 1000

    with ThreadPoolExecutor(max_workers=64) as pool:
        latencies = list(pool.map(one, range(count)))
    return latencies, errors


WARMUP = 20  # requests per page before timing


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def serve(kind: str, port: int) -> subprocess.Popen[bytes]:
    if kind == "gunicorn":
        argv = [str(ROOT / "deploy" / "web.sh")]
        env = {**ENV, "GUNICORN_BIND": f"127.0.0.1:{port}"}
    else:
        argv = [sys.executable, str(ROOT / "manage.py"), "runserver", f"127.0.0.1:{port}", "--noreload"]
        env = ENV
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def main() -> int:
    release_id = seed()
    pages = {
        "status partial": (f"/releases/{release_id}/status/", {"HX-Request": "true"}),
        "history page": ("/releases/", {}),
    }
    rows: list[tuple[str, str, float, float, float, int]] = []
    for kind in ("gunicorn", "runserver"):
        port = free_port()
        process = serve(kind, port)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_up(base, process)
            cookies = logged_in(base)
            # Steady state: each page's templates compiled and database connections open in every process.
            for path, headers in pages.values():
                for _ in range(WARMUP):
                    httpx.get(base + path, cookies=cookies, headers=headers)
            for name, (path, headers) in pages.items():
                latencies, errors = load(base, path, cookies, headers)
                rows.append(
                    (
                        kind,
                        name,
                        percentile(latencies, 50),
                        percentile(latencies, 95),
                        percentile(latencies, 99),
                        errors,
                    )
                )
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)

    print(f"\n{RATE:.0f} requests/s for {SECONDS:.0f} s each, loopback, DEBUG off, latency from when each was due\n")
    print(f"{'server':<10} {'page':<15} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9} {'errors':>7}")
    for kind, name, p50, p95, p99, errors in rows:
        print(f"{kind:<10} {name:<15} {p50:>9.1f} {p95:>9.1f} {p99:>9.1f} {errors:>7}")
    status = {(kind, name): p95 for kind, name, _, p95, _, _ in rows}
    gunicorn, runserver = status[("gunicorn", "status partial")], status[("runserver", "status partial")]
    ok = gunicorn < GOAL_P95_MS and not any(row[5] for row in rows if row[0] == "gunicorn")
    print(
        f"\nstatus partial p95 through gunicorn: {gunicorn:.1f} ms (goal < {GOAL_P95_MS:.0f} ms)"
        f" {'OK' if ok else 'MISSED'}; runserver: {runserver:.1f} ms ({runserver / gunicorn:.1f}x)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
