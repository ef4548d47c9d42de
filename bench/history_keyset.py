"""Job history at scale: keyset pages vs OFFSET pages over a million releases.

Usage: .venv/bin/python bench/history_keyset.py [rows]   (default 1,000,000)

Needs the PostgreSQL of `make test` (DATABASE_URL, default postgres://postgres@127.0.0.1:5432).
It creates and migrates a database of its own, `portal_bench`, fills it with
generate_series (about a minute for a million rows), then times the history query
the page runs: the first page, a page deep in the history reached by cursor, and the
same depth by OFFSET, with and without a status filter. It prints the figures.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
server = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal").rsplit("/", 1)[0]
os.environ["DATABASE_URL"] = f"{server}/portal_bench"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

import psycopg  # noqa: E402

with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
    if not admin.execute("SELECT 1 FROM pg_database WHERE datname = 'portal_bench'").fetchone():
        admin.execute("CREATE DATABASE portal_bench")

import django  # noqa: E402

django.setup()
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from portal.models import Release  # noqa: E402
from portal.selectors.core import encode_cursor, keyset_page  # noqa: E402

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
PAGE = 50


def setup() -> None:
    call_command("migrate", verbosity=0)
    with connection.cursor() as c:
        c.execute("SELECT count(*) FROM portal_release")
        if c.fetchone()[0] >= ROWS:
            return
        print(f"Filling portal_bench with {ROWS:,} releases…", flush=True)
        c.execute("TRUNCATE portal_release, portal_mapping, portal_dataset, portal_connection, portal_team CASCADE")
        c.execute("INSERT INTO portal_team (name, created_at) VALUES ('Bench', now()) RETURNING id")
        team = c.fetchone()[0]
        c.execute(
            "INSERT INTO portal_connection (team_id, platform, name, base_url, credentials_encrypted, state, last_test_message, created_at, updated_at) VALUES (%s, 'toucan', 'c', 'http://x', '', 'enabled', '', now(), now()) RETURNING id",
            [team],
        )
        conn = c.fetchone()[0]
        datasets, mappings = [], []
        for i in range(20):
            c.execute(
                "INSERT INTO portal_dataset (team_id, name, description, state, created_at) VALUES (%s, %s, '', 'enabled', now()) RETURNING id",
                [team, f"d{i}"],
            )
            datasets.append(c.fetchone()[0])
            c.execute(
                "INSERT INTO portal_mapping (team_id, dataset_id, connection_id, name, target, default_params, state, remote_state, created_at, updated_at) VALUES (%s, %s, %s, 'm', '{}', '{}', 'enabled', '', now(), now()) RETURNING id",
                [team, datasets[-1], conn],
            )
            mappings.append(c.fetchone()[0])
        c.execute(
            """
            INSERT INTO portal_release (team_id, mapping_id, dataset_id, platform, params, status, trigger, idempotency_key, key, error, cancel_requested, created_at)
            SELECT %s, (ARRAY[%s])[1 + g %% 20], (ARRAY[%s])[1 + g %% 20], 'toucan', '{}',
                   (ARRAY['succeeded','succeeded','succeeded','failed','cancelled'])[1 + g %% 5], 'manual', '', gen_random_uuid(), '', false,
                   now() - (g || ' seconds')::interval
            FROM generate_series(1, %s) AS g
            """.replace("ARRAY[%s]", "ARRAY[" + ",".join(["%s"] * 20) + "]"),
            [team, *mappings, *datasets, ROWS],
        )
        c.execute("ANALYZE portal_release")


def timed(fn, repeat: int = 7) -> float:
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main() -> None:
    setup()
    # What the page runs: the user's teams, newest first.
    team_ids = list(Release.objects.values_list("team_id", flat=True).distinct())
    qs = Release.objects.filter(team_id__in=team_ids)
    depth = ROWS // 2
    cursor_row = qs.order_by("-created_at", "-id").values("created_at", "id")[depth]
    cursor = encode_cursor(cursor_row["created_at"], cursor_row["id"])
    failed = qs.filter(status="failed")
    failed_row = failed.order_by("-created_at", "-id").values("created_at", "id")[depth // 5]
    failed_cursor = encode_cursor(failed_row["created_at"], failed_row["id"])
    results = {
        "first page (keyset)": timed(lambda: keyset_page(qs, cursor=None, size=PAGE)),
        f"page at row {depth:,} (keyset)": timed(lambda: keyset_page(qs, cursor=cursor, size=PAGE)),
        f"page at row {depth:,} (OFFSET, for comparison)": timed(
            lambda: list(qs.order_by("-created_at", "-id")[depth : depth + PAGE]), repeat=3
        ),
        "status=failed, first page (keyset)": timed(lambda: keyset_page(failed, cursor=None, size=PAGE)),
        "status=failed, deep page (keyset)": timed(lambda: keyset_page(failed, cursor=failed_cursor, size=PAGE)),
    }
    print(f"\nJob history over {Release.objects.count():,} releases, {PAGE} rows a page (median ms):")
    for name, ms in results.items():
        print(f"  {name:<48} {ms:9.2f} ms")


if __name__ == "__main__":
    main()
