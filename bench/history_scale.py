"""Every page at N releases, timed over HTTP through the production app server (docs/scale.md).

Usage: .venv/bin/python bench/history_scale.py [--rows 5000000] [--requests 30] [--refill]

It creates and migrates a PostgreSQL database of its own, ``portal_bench5m`` (another with
--database), and fills it with N releases, one step each, by ``INSERT ... SELECT`` over
``generate_series`` with the secondary indexes dropped during the load and rebuilt after
(a refill happens only when the row count differs, or with --refill). Then it starts gunicorn
(config.settings.production, DEBUG off) on a loopback port, logs a superuser in who is also
an admin of the bench team, and times each measure: 2 warm-up requests, then --requests
timed ones, one after another. One line per measure: ``name p50_ms p95_ms goal_ms ok|FAIL``.
Exit status 1 when any p95 misses its goal (or a request does not answer 200).

The keys below are for this throwaway database only; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL_MS = 50.0
PLATFORMS = ["toucan", "tonalytica", "tailer", "usmart", "datahq"]
# Failed releases carry one of these errors; the searches below rely on them.
ERRORS = [
    "Platform refused the upload: quota exceeded",
    "Schema mismatch on column amount",
    "Timed out waiting for the platform job",
    "Authentication expired; reconnect the account",
    "Rate limited by the platform, gave up after 5 tries",
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--database", default="portal_bench5m")
    parser.add_argument("--port", type=int, default=0, help="default: a free loopback port")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--refill", action="store_true")
    return parser.parse_args()


ARGS = parse_args()
SERVER = os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")
ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "DATABASE_URL": f"{SERVER}/{ARGS.database}",
    "DJANGO_SECRET_KEY": "bench-only-secret-key-" + "x" * 40,
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "PORTAL_CREDENTIAL_KEYS": base64.urlsafe_b64encode(b"bench-only-fernet-key-0123456789").decode(),
    "DJANGO_SECURE_SSL_REDIRECT": "false",
    "DJANGO_DEBUG": "false",
    "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/6"),
}
os.environ.update(ENV)

import psycopg  # noqa: E402

with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
    if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [ARGS.database]).fetchone():
        admin.execute(f'CREATE DATABASE "{ARGS.database}"')

import django  # noqa: E402

django.setup()

import httpx  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402

from portal import rollups, selectors, tokens  # noqa: E402
from portal.crypto import encrypt_json  # noqa: E402
from portal.models import Connection, Dataset, Mapping, Membership, Release, Role, Team  # noqa: E402
from simulators.app import simulator_class  # noqa: E402


def secondary_indexes(cursor: Any, table: str) -> list[tuple[str, str]]:
    """(name, definition) of the indexes that back no constraint: dropped for the load."""
    cursor.execute(
        """SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
           WHERE x.indrelid = %s::regclass AND NOT x.indisprimary
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)""",
        [table],
    )
    return list(cursor.fetchall())


def objects() -> tuple[Team, list[Mapping]]:
    """The bench team, its connections (one per platform) and 8 mappings on each."""
    team, created = Team.objects.get_or_create(name="Bench")
    if not created:
        return team, list(Mapping.objects.filter(team=team).order_by("pk"))
    mappings = []
    for slug in PLATFORMS:
        demo = simulator_class(slug).demo(f"http://127.0.0.1:9/{slug}")
        assert demo is not None, f"the {slug} simulator has no demo"
        conn = Connection.objects.create(
            team=team,
            platform=slug,
            name=demo["name"],
            base_url=f"http://127.0.0.1:9/{slug}",
            credentials_encrypted=encrypt_json(demo["credentials"]),
        )
        spec = demo["mappings"][0]
        for i in range(8):
            dataset, _ = Dataset.objects.get_or_create(team=team, name=f"{spec['dataset']} {slug} {i}")
            mappings.append(
                Mapping.objects.create(
                    team=team, dataset=dataset, connection=conn, name=f"{spec['name']} {i}", target=spec["target"]
                )
            )
    return team, mappings


def fill(rows: int) -> None:
    call_command("migrate", verbosity=0)
    team, mappings = objects()
    User = get_user_model()
    user = User.objects.filter(username="bench").first() or User.objects.create_superuser(
        "bench", "b@example.com", None
    )
    Membership.objects.get_or_create(team=team, user=user, defaults={"role": Role.ADMIN})
    with connection.cursor() as c:
        c.execute("SELECT count(*) FROM portal_release")
        if c.fetchone()[0] == rows and not ARGS.refill:
            return
        print(f"Filling {ARGS.database} with {rows:,} releases and {rows:,} steps…", flush=True)
        start = time.perf_counter()
        c.execute("TRUNCATE portal_release, portal_releasestep, portal_releaseevent, portal_notificationdelivery")
        c.execute("SET maintenance_work_mem = '512MB'")
        c.execute("SET session_replication_role = replica")  # no FK triggers during the load
        dropped = secondary_indexes(c, "portal_release") + secondary_indexes(c, "portal_releasestep")
        for name, _ in dropped:
            c.execute(f'DROP INDEX "{name}"')
        n = len(mappings)
        c.execute(
            f"""
            INSERT INTO portal_release (team_id, mapping_id, dataset_id, platform, params, status, trigger,
                idempotency_key, key, error, cancel_requested, created_at, started_at, finished_at, created_by_id)
            SELECT %(team)s, (%(mappings)s::bigint[])[m], (%(datasets)s::bigint[])[m], (%(platforms)s::text[])[m],
                   '{{}}', st, 'manual', '', gen_random_uuid(),
                   CASE WHEN st = 'failed' THEN (%(errors)s::text[])[1 + g %% 5] || ' (job ' || g || ')' ELSE '' END,
                   false, at, at + interval '1 second',
                   CASE WHEN st IN ('queued', 'running') THEN NULL
                        ELSE at + interval '1 second' + ((20 + (g * 37) %% 600) || ' seconds')::interval END,
                   CASE WHEN g %% 3 = 0 THEN NULL ELSE %(user)s END
            FROM (
                SELECT g, 1 + (g * 7) %% {n} AS m, now() - g * interval '3 seconds' AS at,
                       CASE WHEN g <= 5 THEN 'running' WHEN g <= 8 THEN 'queued'
                            WHEN (g * 7919) %% 100 < 80 THEN 'succeeded'
                            WHEN (g * 7919) %% 100 < 95 THEN 'failed' ELSE 'cancelled' END AS st
                FROM generate_series(1::bigint, %(rows)s::bigint) AS g
            ) AS s
            """,
            {
                "team": team.pk,
                "mappings": [m.pk for m in mappings],
                "datasets": [m.dataset_id for m in mappings],
                "platforms": [m.connection.platform for m in mappings],
                "errors": ERRORS,
                "user": user.pk,
                "rows": rows,
            },
        )
        c.execute(
            """
            INSERT INTO portal_releasestep (release_id, position, name, label, idempotent, status, remote_ref,
                remote_status, message, output, attempts, checks, transient_failures, started_at, finished_at, error)
            SELECT id, 1, 'publish', 'Publish', false,
                   CASE status WHEN 'queued' THEN 'pending' ELSE status END,
                   'job-' || id, '', '', '{}', 1, 1, 0, started_at, finished_at, error
            FROM portal_release
            """
        )
        loaded = time.perf_counter()
        for _, definition in dropped:
            c.execute(definition)
        c.execute("SET session_replication_role = DEFAULT")
        c.execute("VACUUM ANALYZE portal_release")  # the visibility map, for index-only scans
        c.execute("VACUUM ANALYZE portal_releasestep")
        print(
            f"  filled in {time.perf_counter() - start:.0f} s (load {loaded - start:.0f} s, "
            f"{len(dropped)} indexes {time.perf_counter() - loaded:.0f} s)",
            flush=True,
        )
    rollups.release_rollup_days(days=32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "gunicorn"),
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(ARGS.workers),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, **ENV},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/login/", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("gunicorn did not answer on /login/ within 30 s")


def timed(fetch: Callable[[], httpx.Response], n: int, expect: int = 200) -> tuple[float, float, str]:
    problem = ""
    for _ in range(2):
        fetch()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        response = fetch()
        samples.append((time.perf_counter() - start) * 1000)
        if response.status_code != expect:
            problem = f"HTTP {response.status_code}"
    p95 = statistics.quantiles(samples, n=20, method="inclusive")[18]
    return statistics.median(samples), p95, problem


def timed_call(run: Callable[[], object], n: int) -> tuple[float, float]:
    run()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), statistics.quantiles(samples, n=20, method="inclusive")[18]


def main() -> int:
    fill(ARGS.rows)
    user = get_user_model().objects.get(username="bench")
    browser = Client()
    browser.force_login(user)
    session = browser.cookies["sessionid"].value
    _token, key = tokens.token_create(user=user, name="bench")

    qs = Release.objects.order_by("-created_at", "-id")
    depth = min(4_000_000, ARGS.rows - 100)
    deep = qs.values("created_at", "id")[depth]
    cursor = selectors.encode_cursor(deep["created_at"], deep["id"])
    # DRF's CursorPagination cursor: base64 of a query string holding the position.
    api_cursor = base64.b64encode(urlencode({"p": str(deep["created_at"])}).encode()).decode()
    mapping = Mapping.objects.order_by("pk")[0]
    release = qs.values("id")[1000]
    middle = qs.values("created_at")[ARGS.rows // 2]["created_at"].date().isoformat()
    ref = f"job-{qs.values('id')[ARGS.rows // 3]['id']}"

    history = reverse("portal:history")
    call_command("collectstatic", interactive=False, verbosity=0)  # the manifest production serves from
    port = ARGS.port or free_port()
    server = start_server(port)
    pages = httpx.Client(base_url=f"http://127.0.0.1:{port}", cookies={"sessionid": session}, timeout=120)
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=120)
    measures: list[tuple[str, Callable[[], httpx.Response]]] = [
        # The server's floor on this machine now: a page that reads no release (no goal).
        ("floor: login page (redirects)", lambda: pages.get(reverse("login"))),
        ("history first page", lambda: pages.get(history)),
        (f"history page at row {depth:,}", lambda: pages.get(history, params={"after": cursor})),
        ("history platform=tailer", lambda: pages.get(history, params={"platform": "tailer"})),
        ("history status=failed", lambda: pages.get(history, params={"status": "failed"})),
        ("history one day", lambda: pages.get(history, params={"since": middle, "until": middle})),
        ("history search (matches)", lambda: pages.get(history, params={"q": "schema mismatch"})),
        ("history search (no match)", lambda: pages.get(history, params={"q": "kangaroo"})),
        ("history search remote ref", lambda: pages.get(history, params={"q": ref})),
        ("dashboard", lambda: pages.get(reverse("portal:dashboard"))),
        ("mapping page", lambda: pages.get(mapping.get_absolute_url())),
        ("release page", lambda: pages.get(reverse("portal:release-detail", args=[release["id"]]))),
        ("admin releases changelist", lambda: pages.get("/admin/portal/release/")),
        ("API releases first page", lambda: api.get("/api/v1/releases/")),
        (f"API releases at row {depth:,}", lambda: api.get("/api/v1/releases/", params={"cursor": api_cursor})),
    ]
    failed = False
    # The charts' selectors, timed in this process (the chart pages themselves come with the UI issue).
    charts: list[tuple[str, Callable[[], object]]] = [
        ("chart: releases per day, 30 days", lambda: rollups.releases_per_day(user=user)),
        ("chart: platform success/p50/p95", lambda: rollups.platform_stats(user=user)),
        ("chart: a mapping's duration trend", lambda: rollups.mapping_duration_trend(mapping=mapping)),
    ]
    count = Release.objects.order_by().count()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{count:,} releases, gunicorn --workers {ARGS.workers}, DEBUG off, {ARGS.requests} requests each")
    print(f"{os.cpu_count()} CPUs, load average {load} at the start")
    print(f"{'name':<36} {'p50_ms':>8} {'p95_ms':>8} {'goal_ms':>8}  result")
    try:
        for name, fetch in measures:
            p50, p95, problem = timed(fetch, ARGS.requests, expect=302 if name.startswith("floor") else 200)
            if name.startswith("floor"):
                print(f"{name:<36} {p50:8.1f} {p95:8.1f} {'-':>8}  info")
                continue
            ok = p95 < GOAL_MS and not problem
            failed |= not ok
            print(f"{name:<36} {p50:8.1f} {p95:8.1f} {GOAL_MS:8.0f}  {'ok' if ok else 'FAIL'} {problem}".rstrip())
        for name, run in charts:
            p50, p95 = timed_call(run, ARGS.requests)
            ok = p95 < GOAL_MS
            failed |= not ok
            print(f"{name:<36} {p50:8.1f} {p95:8.1f} {GOAL_MS:8.0f}  {'ok' if ok else 'FAIL'}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
