"""The release engine's throughput and frugality, with the production timings.

Usage: .venv/bin/python bench/engine_throughput.py [releases] [big]   (default 200 and 2000; big 0 skips it)

It starts its own redis-server (a free loopback port), the simulators, one Celery worker
of 2 prefork processes and a beat (the sweeper), on a PostgreSQL database of its own,
`portal_bench_engine` (DATABASE_URL's server). Each release runs one Toucan operation
that takes 10 s on the simulator. Two runs:

1. `releases` releases triggered at once: every one must be terminal within 20 s of the
   first trigger. Reports Celery tasks, Redis commands and database commits per release.
2. `big` releases at once (2,000 concurrent remote jobs): completion time, the queue's
   peak (goal: about one task per release at most) and its length at the end (goal: 0),
   and duplicate mutating calls (goal: 0).

Prints each figure with its goal and exits 1 on a miss.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402

from tests.simulator import SimulatorProcess, free_port  # noqa: E402

SERVER = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal").rsplit("/", 1)[0]
DB_NAME = "portal_bench_engine"
REDIS_PORT = free_port()
WORK = Path(tempfile.mkdtemp(prefix="bench-engine-"))
ENV = {
    **os.environ,
    "DJANGO_SETTINGS_MODULE": "config.settings.local",
    "DJANGO_DEBUG": "false",
    "DATABASE_URL": f"{SERVER}/{DB_NAME}",
    "REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
    "PORTAL_CREDENTIAL_KEYS": Fernet.generate_key().decode(),
    "PORTAL_MEDIA_ROOT": str(WORK / "media"),
}
os.environ.update(ENV)

import psycopg  # noqa: E402

with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
    admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME}")
    admin.execute(f"CREATE DATABASE {DB_NAME}")

import django  # noqa: E402

django.setup()
import redis  # noqa: E402
from django.core.files.uploadedfile import SimpleUploadedFile  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from portal.crypto import encrypt_json  # noqa: E402
from portal.models import (  # noqa: E402
    TERMINAL_RELEASE,
    Connection,
    Dataset,
    Mapping,
    Membership,
    Release,
    ReleaseStatus,
    Team,
)
from portal.services.mappings import params_validate  # noqa: E402
from portal.services.releases import release_create  # noqa: E402
from portal.services.uploads import upload_create  # noqa: E402

JOB_SECONDS = 10.0


def spawn(args: list[str], name: str) -> subprocess.Popen[bytes]:
    log = open(WORK / f"{name}.log", "wb")  # noqa: SIM115 - open for the process's life
    return subprocess.Popen(args, cwd=ROOT, env=ENV, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(log: Path, word: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and word in log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{log.name}: not ready in {timeout} s")


def commits() -> int:
    with connection.cursor() as c:
        c.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s", [DB_NAME])
        return int(c.fetchone()[0])


def redis_calls(client: redis.Redis) -> int:
    return sum(int(v["calls"]) for k, v in client.info("commandstats").items())


def tasks_done() -> int:
    lines = (WORK / "worker.log").read_text(errors="replace").splitlines()
    return sum(1 for line in lines if "release_advance_task[" in line and " succeeded in " in line)


def run(count: int, mapping: Mapping, upload, user, client: redis.Redis, sim: SimulatorProcess) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Trigger ``count`` releases at once and follow them to their end."""
    sim.reset("toucan")
    sim.config("toucan", delay=JOB_SECONDS / 2)  # pending one delay, running one: 10 s
    params = params_validate(mapping=mapping, data={"operations": ["release"], "upload": False})
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], int(client.llen("celery")))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    tasks_before, calls_before, commits_before = tasks_done(), redis_calls(client), commits()
    first = time.monotonic()
    ids = [release_create(mapping=mapping, upload=upload, params=params, actor=user).pk for _ in range(count)]
    triggered = time.monotonic() - first
    trigger_commits = commits() - commits_before
    deadline = first + max(120.0, count * 0.2)
    while time.monotonic() < deadline:
        if Release.objects.filter(pk__in=ids).exclude(status__in=TERMINAL_RELEASE).count() == 0:
            break
        time.sleep(0.25)
    done = time.monotonic() - first
    time.sleep(2)  # let the last tasks finish and the queue settle
    stop.set()
    sampler.join()
    statuses = set(Release.objects.filter(pk__in=ids).values_list("status", flat=True))
    duplicates = sum(1 for key, n in sim.state("toucan")["mutations"].items() if n > 1 and not key.startswith("-"))
    return {
        "count": count,
        "trigger_s": triggered,
        "done_s": done,
        "all_succeeded": float(statuses == {ReleaseStatus.SUCCEEDED}),
        "tasks": (tasks_done() - tasks_before) / count,
        "redis": (redis_calls(client) - calls_before) / count,
        "commits": (commits() - commits_before - trigger_commits) / count,
        "trigger_commits": trigger_commits / count,
        "peak": peak[0],
        "left": int(client.llen("celery")),
        "notify_left": int(client.llen("notify")),
        "duplicates": duplicates,
    }


def main() -> int:
    small = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    big = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    redis_server = subprocess.Popen(
        ["redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=WORK,
        stdout=subprocess.DEVNULL,
    )
    sim = SimulatorProcess(delay=JOB_SECONDS / 2)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        call_command("migrate", verbosity=0)
        client = redis.Redis(port=REDIS_PORT)
        for _ in range(50):
            try:
                client.ping()
                break
            except redis.RedisError:
                time.sleep(0.1)
        celery = [sys.executable, "-m", "celery", "-A", "config"]
        processes.append(
            spawn([*celery, "worker", "--loglevel", "INFO", "--concurrency", "2", "--without-gossip"], "worker")
        )
        processes.append(
            spawn([*celery, "beat", "-S", "celery.beat:PersistentScheduler", "-s", str(WORK / "beat")], "beat")
        )
        wait_ready(WORK / "worker.log", "ready")

        from django.contrib.auth import get_user_model

        team = Team.objects.create(name="Bench")
        user = get_user_model().objects.create_user("bench", password="bench-password-1")
        Membership.objects.create(team=team, user=user, role="operator")
        demo = __import__("simulators.toucan", fromlist=["ToucanSimulator"]).ToucanSimulator.demo(sim.url("toucan"))
        conn = Connection.objects.create(
            team=team,
            platform="toucan",
            name="Toucan",
            base_url=sim.url("toucan"),
            credentials_encrypted=encrypt_json(demo["credentials"]),
        )
        dataset = Dataset.objects.create(team=team, name="Sales")
        mapping = Mapping.objects.create(
            team=team, dataset=dataset, connection=conn, name="m", target=demo["mappings"][0]["target"]
        )
        upload = upload_create(
            dataset=dataset, file=SimpleUploadedFile("sales.csv", b"region,amount\nnorth,1\n"), actor=user
        )

        misses = 0

        def line(label: str, value: str, goal: str, ok: bool | None = None) -> None:
            nonlocal misses
            mark = "" if ok is None else ("  ok" if ok else "  MISS")
            misses += ok is False
            print(f"  {label:<44} {value:>12}   goal {goal}{mark}")

        if small:
            a = run(small, mapping, upload, user, client, sim)
            print(f"\n{small} releases of {JOB_SECONDS:.0f} s remote jobs, 1 worker of 2 processes")
            line("triggered in", f"{a['trigger_s']:.1f} s", "(report)")
            line("all terminal after the first trigger", f"{a['done_s']:.1f} s", "<= 20 s", a["done_s"] <= 20)
            line("all succeeded", "yes" if a["all_succeeded"] else "no", "yes", bool(a["all_succeeded"]))
            line("Celery tasks per release", f"{a['tasks']:.1f}", "(report)")
            line("Redis commands per release", f"{a['redis']:.0f}", "(report)")
            line("DB commits per release (engine)", f"{a['commits']:.1f}", "(report)")
            line("DB commits per release (trigger)", f"{a['trigger_commits']:.1f}", "(report)")
            line("duplicate mutating calls", f"{a['duplicates']}", "0", a["duplicates"] == 0)
        if big:
            b = run(big, mapping, upload, user, client, sim)
            print(f"\n{big} concurrent remote jobs")
            line("triggered in", f"{b['trigger_s']:.1f} s", "(report)")
            line("all terminal after the first trigger", f"{b['done_s']:.1f} s", "(report)")
            line("all succeeded", "yes" if b["all_succeeded"] else "no", "yes", bool(b["all_succeeded"]))
            line("queue peak (tasks)", f"{b['peak']}", f"<= {int(big * 1.1)}", b["peak"] <= big * 1.1)
            line("release queue at the end", f"{b['left']}", "0", b["left"] == 0)
            line("notifications still queued at the end", f"{b['notify_left']}", "(report)")
            line("duplicate mutating calls", f"{b['duplicates']}", "0", b["duplicates"] == 0)
        return 1 if misses else 0
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        sim.stop()
        redis_server.kill()
        connection.close()


if __name__ == "__main__":
    sys.exit(main())
