"""Every page at N releases, timed over HTTP through the production app server (docs/scale.md).

Usage: .venv/bin/python bench/history_scale.py [--rows 5000000] [--requests 30] [--refill]

It creates and migrates a PostgreSQL database of its own, ``portal_bench5m`` (another with
--database), and fills it with N releases, one step each, by ``INSERT ... SELECT`` over
``generate_series`` with the secondary indexes dropped during the load and rebuilt after
(a refill happens only when the row count differs, or with --refill). Then it starts gunicorn
(config.settings.production, DEBUG off) on a loopback port, logs a superuser in who is also
an admin of the bench team, and times each measure: 2 warm-up requests per worker, then --requests
timed ones, one after another. One line per measure: ``name p50_ms p95_ms goal_ms ok|FAIL``.
The fill's own time is a goal too: under 5 minutes for 5M releases, indexes included.
Exit status 1 when any p95 misses its goal (or a request does not answer 200), or the fill does.
The app servers' logs go to bench/out/history_scale.log.

The keys below are for this throwaway database only; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import base64
import json
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
FILL_GOAL_S = 300.0  # 5M releases (and their steps), indexes included; scaled for other sizes
FILL_SECONDS: list[float] = []  # the fill of this run, if one happened
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
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--refill", action="store_true")
    parser.add_argument(
        "--baseline", type=int, default=10_000, help="rows of the small history timed alongside; 0: none"
    )
    parser.add_argument("--prepare-only", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


ARGS = parse_args()
LOG = ROOT / "bench" / "out" / "history_scale.log"
LOG.parent.mkdir(exist_ok=True)
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
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402

from portal import tokens  # noqa: E402
from portal.crypto import encrypt_json  # noqa: E402
from portal.models import Connection, Dataset, Mapping, Membership, Release, Role, Team  # noqa: E402
from portal.selectors.core import encode_cursor  # noqa: E402
from portal.selectors.rollups import mapping_duration_trend, platform_stats, release_rollup_days, releases_per_day  # noqa: E402
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
        # One transaction (PostgreSQL's DDL is transactional): a failed load leaves the indexes as they were.
        with transaction.atomic():
            c.execute(
                "TRUNCATE portal_release, portal_releasestep, portal_releaseevent, portal_notificationdelivery CASCADE"
            )
            c.execute("SET LOCAL maintenance_work_mem = '512MB'")
            c.execute("SET LOCAL session_replication_role = replica")  # no FK triggers during the load
            dropped = secondary_indexes(c, "portal_release") + secondary_indexes(c, "portal_releasestep")
            for name, _ in dropped:
                c.execute(f'DROP INDEX "{name}"')
            # Unique constraints too (the release's random uuid key above all): checked once, when re-added.
            c.execute(
                """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
                   WHERE conrelid IN ('portal_release'::regclass, 'portal_releasestep'::regclass) AND contype = 'u'"""
            )
            uniques = c.fetchall()
            for table, name, _ in uniques:
                c.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
            n = len(mappings)
            c.execute(
                f"""
                INSERT INTO portal_release (team_id, mapping_id, dataset_id, platform, params, status, trigger,
                    idempotency_key, request_fingerprint, key, error, cancel_requested, created_at, started_at,
                    finished_at, created_by_id)
                SELECT %(team)s, (%(mappings)s::bigint[])[m], (%(datasets)s::bigint[])[m], (%(platforms)s::text[])[m],
                       '{{}}', st, 'manual', '', '', gen_random_uuid(),
                       CASE WHEN st = 'failed' THEN (%(errors)s::text[])[1 + g %% 5] || ' (job ' || g || ')'
                            ELSE '' END,
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
                    remote_status, message, output, attempts, checks, transient_failures, started_at, finished_at,
                    error, fence, sends)
                SELECT id, 1, 'publish', 'Publish', false,
                       CASE status WHEN 'queued' THEN 'pending' ELSE status END,
                       'job-' || id, '', '', '{}', 1, 1, 0, started_at, finished_at, error, 1, 0
                FROM portal_release
                """
            )
            loaded = time.perf_counter()
            for table, name, definition in uniques:
                c.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')
            for _, definition in dropped:
                c.execute(definition)
        c.execute("VACUUM ANALYZE portal_release")  # the visibility map, for index-only scans
        c.execute("VACUUM ANALYZE portal_releasestep")
        took = time.perf_counter() - start
        FILL_SECONDS.append(took)
        print(
            f"  filled in {took:.0f} s (load {loaded - start:.0f} s, "
            f"{len(dropped) + len(uniques)} indexes {time.perf_counter() - loaded:.0f} s); "
            f"goal {FILL_GOAL_S:.0f} s at 5M: {'ok' if took < FILL_GOAL_S * rows / 5_000_000 else 'FAIL'}",
            flush=True,
        )
    release_rollup_days(days=32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, database: str) -> subprocess.Popen[bytes]:
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
        env={**os.environ, **ENV, "DATABASE_URL": f"{SERVER}/{database}"},
        # The access log of every timed request goes to a file, not the terminal.
        stdout=LOG.open("ab"),
        stderr=subprocess.STDOUT,
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


def prepare(rows: int) -> dict[str, Any]:
    """Fill this process's database, log the bench user in, and pick the pages to time."""
    fill(rows)
    user = get_user_model().objects.get(username="bench")
    browser = Client()
    browser.force_login(user)
    _token, key = tokens.token_create(user=user, name="bench")
    qs = Release.objects.order_by("-created_at", "-id")
    depth = min(4_000_000, rows - 100)
    deep = qs.values("created_at", "id")[depth]
    call_command("collectstatic", interactive=False, verbosity=0)  # the manifest production serves from
    return {
        "rows": Release.objects.order_by().count(),
        "depth": depth,
        "session": browser.cookies["sessionid"].value,
        "key": key,
        "cursor": encode_cursor(deep["created_at"], deep["id"]),
        # DRF's CursorPagination cursor: base64 of a query string holding the position.
        "api_cursor": base64.b64encode(urlencode({"p": str(deep["created_at"])}).encode()).decode(),
        "mapping_url": Mapping.objects.order_by("pk")[0].get_absolute_url(),
        "release_url": reverse("portal:release-detail", args=[qs.values("id")[1000]["id"]]),
        "day": qs.values("created_at")[rows // 2]["created_at"].date().isoformat(),
        "ref": f"job-{qs.values('id')[rows // 3]['id']}",
    }


def measures(target: dict[str, Any], port: int) -> list[tuple[str, Callable[[], httpx.Response]]]:
    base = f"http://127.0.0.1:{port}"
    pages = httpx.Client(base_url=base, cookies={"sessionid": target["session"]}, timeout=120)
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {target['key']}"}, timeout=120)
    history = reverse("portal:history")
    day = target["day"]
    return [
        # The server's floor on this machine now: a page that reads no release (no goal).
        ("floor: login page (redirects)", lambda: pages.get(reverse("login"))),
        ("history first page", lambda: pages.get(history)),
        ("history deep page", lambda: pages.get(history, params={"after": target["cursor"]})),
        ("history platform=tailer", lambda: pages.get(history, params={"platform": "tailer"})),
        ("history status=failed", lambda: pages.get(history, params={"status": "failed"})),
        ("history one day", lambda: pages.get(history, params={"since": day, "until": day})),
        ("history search (matches)", lambda: pages.get(history, params={"q": "schema mismatch"})),
        ("history search (no match)", lambda: pages.get(history, params={"q": "kangaroo"})),
        ("history search remote ref", lambda: pages.get(history, params={"q": target["ref"]})),
        # Hard cases for the planner: punctuation (pg_trgm splits "job-1" into common words),
        # and a common word under a filter that excludes all its matches.
        ("history search 'job-1'", lambda: pages.get(history, params={"q": "job-1"})),
        ("history search schema, succeeded", lambda: pages.get(history, params={"q": "schema", "status": "succeeded"})),
        ("dashboard", lambda: pages.get(reverse("portal:dashboard"))),
        ("mapping page", lambda: pages.get(target["mapping_url"])),
        ("release page", lambda: pages.get(target["release_url"])),
        ("admin releases changelist", lambda: pages.get("/admin/portal/release/")),
        ("API releases first page", lambda: api.get("/api/v1/releases/")),
        ("API releases deep page", lambda: api.get("/api/v1/releases/", params={"cursor": target["api_cursor"]})),
    ]


def p50_p95(samples: list[float]) -> tuple[float, float]:
    return statistics.median(samples), statistics.quantiles(samples, n=20, method="inclusive")[18]


def main() -> int:
    if ARGS.prepare_only:
        print(json.dumps(prepare(ARGS.rows)))
        return 0
    target = prepare(ARGS.rows)
    baseline = None
    if ARGS.baseline:
        # The same pages over a small history, timed in turn with the big one: the ratio shows
        # whether a page's cost grows with the table, whatever the machine's load.
        out = subprocess.run(
            [sys.executable, __file__, "--rows", str(ARGS.baseline), "--prepare-only"]
            + ["--database", f"{ARGS.database}_baseline"],
            check=True,
            capture_output=True,
            text=True,
        )
        baseline = json.loads(out.stdout.strip().splitlines()[-1])
    servers = [start_server(port := free_port(), ARGS.database)]
    runs = [(target, measures(target, port))]
    if baseline:
        servers.append(start_server(port := free_port(), f"{ARGS.database}_baseline"))
        runs.append((baseline, measures(baseline, port)))
    user = get_user_model().objects.get(username="bench")
    mapping = Mapping.objects.order_by("pk")[0]
    # The charts' selectors, timed in this process (the chart pages themselves come with the UI issue).
    charts: list[tuple[str, Callable[[], object]]] = [
        ("chart: releases per day, 30 days", lambda: releases_per_day(user=user)),
        ("chart: platform success/p50/p95", lambda: platform_stats(user=user)),
        ("chart: a mapping's duration trend", lambda: mapping_duration_trend(mapping=mapping)),
    ]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{target['rows']:,} releases, gunicorn --workers {ARGS.workers}, DEBUG off, {ARGS.requests} requests each")
    print(f"{os.cpu_count()} CPUs, load average {load} at the start; deep pages at row {target['depth']:,}")
    if baseline:
        print(f"after each line: p95 over {baseline['rows']:,} releases, timed in turn, and the ratio")
    print(f"{'name':<36} {'p50_ms':>8} {'p95_ms':>8} {'goal_ms':>8}  result")
    failed = False
    try:
        for i, (name, _) in enumerate(runs[0][1]):
            floor = name.startswith("floor")
            samples: list[list[float]] = [[] for _ in runs]
            problem = ""
            for _ in range(2 * ARGS.workers + 1):  # warm-up: every worker has served the page once
                for _t, fetches in runs:
                    fetches[i][1]()
            for _ in range(ARGS.requests):
                for k, (_t, fetches) in enumerate(runs):
                    start = time.perf_counter()
                    response = fetches[i][1]()
                    samples[k].append((time.perf_counter() - start) * 1000)
                    if k == 0 and response.status_code != (302 if floor else 200):
                        problem = f"HTTP {response.status_code}"
            p50, p95 = p50_p95(samples[0])
            ok = floor or (p95 < GOAL_MS and not problem)
            failed |= not ok
            verdict = "info" if floor else ("ok" if ok else "FAIL")
            goal = "-" if floor else f"{GOAL_MS:.0f}"
            line = f"{name:<36} {p50:8.1f} {p95:8.1f} {goal:>8}  {verdict} {problem}".rstrip()
            if baseline:
                base95 = p50_p95(samples[1])[1]
                line += f"   (small: {base95:.1f}, x{p95 / base95:.2f})"
            print(line, flush=True)
        for name, run in charts:
            run()
            chart_samples = []
            for _ in range(ARGS.requests):
                start = time.perf_counter()
                run()
                chart_samples.append((time.perf_counter() - start) * 1000)
            p50, p95 = p50_p95(chart_samples)
            ok = p95 < GOAL_MS
            failed |= not ok
            print(f"{name:<36} {p50:8.1f} {p95:8.1f} {GOAL_MS:8.0f}  {'ok' if ok else 'FAIL'}", flush=True)
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
    if FILL_SECONDS and FILL_SECONDS[0] >= FILL_GOAL_S * ARGS.rows / 5_000_000:
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
