"""Prometheus metrics that are the same whichever process answers the scrape.

Events happen in many processes on many hosts (gunicorn workers, Celery workers, beat), so
nothing is counted in process memory: event counters and histograms are ``HINCRBY``s on the
shared Redis, and everything else is read at scrape time from the database (releases,
notification deliveries, uploads) or Redis (queue lengths, heartbeats). Any web process
then answers the same numbers, and a restart loses nothing but what Redis loses.
prometheus-client only renders them (a custom collector), see docs/operations.md."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import redis
from celery import current_app
from django.conf import settings
from django.db.models import Count, Sum
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from connectors.http import Exchange
from portal.models import ChunkedUpload, NotificationDelivery, Release, ReleaseStep, Upload
from portal.operations.heartbeats import last_beat_tick, worker_heartbeats
from portal.operations.log_context import current

log = logging.getLogger(__name__)


PREFIX = "portal:metrics:"


HTTP_KEY = PREFIX + "http_answers"


HTTP_MINUTE_KEY = PREFIX + "http_answers:minute:"  # + the minute since the epoch; kept two hours


STEP_KEY = PREFIX + "step_seconds"


SWEEP_KEY = PREFIX + "sweeper"


SWEEP_LOG_KEY = PREFIX + "sweeps"  # the latest sweeps, newest first: "<timestamp> <count>"


ALERT_FAILURES_KEY = PREFIX + "alert_delivery_failures"


STEP_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)


SEP = "|"


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, decode_responses=True)


def redis_client() -> redis.Redis:
    return _client(settings.REDIS_URL)


def status_class(status_code: int | None) -> str:
    """``2xx``... ``5xx``, or ``none`` when no answer came (timeout, refused, reset)."""
    return f"{status_code // 100}xx" if status_code else "none"


def step_kind(name: str) -> str:
    """A step's kind: its name up to the first colon (``pipeline:<guid>`` -> ``pipeline``), so labels stay few."""
    return name.split(":", 1)[0]


def record_http_answer(exchange: Exchange) -> None:
    """``connectors.http`` observer: one platform answer, labelled with the platform in the log context."""
    platform = current("platform") or "unknown"
    field = f"{platform}{SEP}{status_class(exchange.status_code)}"
    minute_key = f"{HTTP_MINUTE_KEY}{int(time.time() // 60)}"
    try:
        pipe = redis_client().pipeline(transaction=False)
        pipe.hincrby(HTTP_KEY, field, 1)
        pipe.hincrby(minute_key, field, 1)
        pipe.expire(minute_key, 2 * 3600)
        pipe.execute()
    except redis.RedisError:
        log.warning("metrics: platform answer not counted", exc_info=True)


def record_step_finished(*, platform: str, name: str, seconds: float) -> None:
    """A step ended (succeeded or failed) after ``seconds`` since it started."""
    labels = f"{platform}{SEP}{step_kind(name)}"
    try:
        pipe = redis_client().pipeline(transaction=False)
        for bound in STEP_BUCKETS:
            if seconds <= bound:
                pipe.hincrby(STEP_KEY, f"{labels}{SEP}{bound}", 1)
        pipe.hincrby(STEP_KEY, f"{labels}{SEP}+Inf", 1)
        pipe.hincrbyfloat(STEP_KEY, f"{labels}{SEP}sum", seconds)
        pipe.execute()
    except redis.RedisError:
        log.warning("metrics: step duration not recorded", exc_info=True)


def step_finished(step: ReleaseStep, *, platform: str) -> None:
    """Record a step's duration when the engine ends it."""
    if step.started_at is not None:
        record_step_finished(
            platform=platform, name=step.name, seconds=(timezone.now() - step.started_at).total_seconds()
        )


def record_sweep(redispatched: int) -> None:
    """One sweeper run that re-dispatched ``redispatched`` releases (kept for the operations page too)."""
    try:
        pipe = redis_client().pipeline(transaction=False)
        pipe.hincrby(SWEEP_KEY, "runs", 1)
        pipe.hincrby(SWEEP_KEY, "redispatched", redispatched)
        pipe.lpush(SWEEP_LOG_KEY, f"{time.time():.3f} {redispatched}")
        pipe.ltrim(SWEEP_LOG_KEY, 0, 199)
        pipe.execute()
    except redis.RedisError:
        log.warning("metrics: sweep not recorded", exc_info=True)


def on_task_postrun(sender: Any = None, task: Any = None, retval: Any = None, state: str = "", **kwargs: Any) -> None:
    """Celery ``task_postrun`` receiver: the sweeper task returns how many releases it re-dispatched."""
    if getattr(task, "name", "") == "portal.tasks.release_sweep_task" and state == "SUCCESS":
        record_sweep(int(retval or 0))


def record_alert_delivery_failure() -> None:
    try:
        redis_client().incr(ALERT_FAILURES_KEY)
    except redis.RedisError:
        log.warning("metrics: alert delivery failure not counted", exc_info=True)


def recent_http_answers(*, minutes: int) -> list[tuple[str, str, int]]:
    """(platform, status class, count) of the platform answers of the last ``minutes`` minutes."""
    now = int(time.time() // 60)
    pipe = redis_client().pipeline(transaction=False)
    for minute in range(now - minutes + 1, now + 1):
        pipe.hgetall(f"{HTTP_MINUTE_KEY}{minute}")
    totals: dict[tuple[str, str], int] = {}
    for answers in pipe.execute():
        for field, value in answers.items():
            if labels := _split(field, 2):
                key = (labels[0], labels[1])
                totals[key] = totals.get(key, 0) + int(value)
    return [(platform, klass, count) for (platform, klass), count in sorted(totals.items())]


def recent_sweeps(limit: int = 200) -> list[tuple[datetime, int]]:
    """(when, re-dispatched) of the latest sweeper runs, newest first."""
    rows: list[str] = redis_client().lrange(SWEEP_LOG_KEY, 0, limit - 1)  # type: ignore[assignment]  # sync client
    sweeps = []
    for row in rows:
        stamp, count = row.split()
        sweeps.append((datetime.fromtimestamp(float(stamp), tz=UTC), int(count)))
    return sweeps


def queue_names() -> list[str]:
    """The Celery queues: the default one and any configured or routed."""
    conf = current_app.conf
    names = {conf.task_default_queue}
    # CELERY_TASK_QUEUES is a dict of names (settings) or kombu Queue objects.
    names |= {queue if isinstance(queue, str) else queue.name for queue in conf.task_queues or ()}
    routes = conf.task_routes
    if isinstance(routes, dict):
        names |= {route["queue"] for route in routes.values() if isinstance(route, dict) and "queue" in route}
    return sorted(names)


def queue_lengths() -> dict[str, int]:
    """Messages waiting in each queue's Redis lists (kombu keeps one list per priority step)."""
    client = redis_client()
    lengths = {}
    for name in queue_names():
        keys = [name] + [f"{name}\x06\x16{priority}" for priority in (3, 6, 9)]
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.llen(key)
        lengths[name] = sum(pipe.execute())
    return lengths


def _split(field: str, parts: int) -> list[str] | None:
    values = field.split(SEP)
    return values if len(values) == parts else None


DB_CACHE_KEY = PREFIX + "database_figures"


def database_figures() -> dict[str, Any]:
    """The figures counted in the database. Shared in Redis for PORTAL_METRICS_DB_CACHE_SECONDS, so
    frequent scrapes of several processes cost one set of queries (a count over every release is a
    scan at millions of rows) and every process answers the same values."""
    ttl = settings.PORTAL_METRICS_DB_CACHE_SECONDS
    client = redis_client()
    if ttl > 0:
        try:
            cached = client.get(DB_CACHE_KEY)
            if cached:
                figures: dict[str, Any] = json.loads(cached)
                return figures
        except redis.RedisError:
            log.warning("metrics: cache unreadable", exc_info=True)
    failed = [NotificationDelivery.Status.RETRYING, NotificationDelivery.Status.FAILED]
    figures = {
        "releases": [
            (row["status"], row["platform"], row["n"])
            for row in Release.objects.order_by().values("status", "platform").annotate(n=Count("id"))
        ],
        "delivery_failures": [
            (row["channel__kind"], row["n"])
            for row in NotificationDelivery.objects.filter(status__in=failed)
            .order_by()
            .values("channel__kind")
            .annotate(n=Count("id"))
        ],
        "uploads": Upload.objects.aggregate(n=Count("id"), size=Sum("size")),
        "unfinished": ChunkedUpload.objects.filter(upload__isnull=True).aggregate(n=Count("id"), size=Sum("offset")),
    }
    if ttl > 0:
        try:
            client.set(DB_CACHE_KEY, json.dumps(figures), ex=max(1, int(ttl)))
        except redis.RedisError:
            log.warning("metrics: cache not written", exc_info=True)
    return figures


class PortalCollector(Collector):
    """Reads every metric at scrape time (see the module docstring)."""

    def collect(self) -> Iterator[Metric]:
        yield from self._releases()
        yield from self._events()
        yield from self._liveness()
        yield from self._notifications_and_uploads()

    def _releases(self) -> Iterable[Metric]:
        releases = GaugeMetricFamily(
            "portal_releases", "Releases by status and platform", labels=["status", "platform"]
        )
        for status, platform, count in database_figures()["releases"]:
            releases.add_metric([status, platform], count)
        yield releases

    def _events(self) -> Iterable[Metric]:
        client = redis_client()
        http = CounterMetricFamily(
            "portal_platform_http_answers", "Platform HTTP answers by status class", labels=["platform", "status_class"]
        )
        answers: dict[str, str] = client.hgetall(HTTP_KEY)  # type: ignore[assignment]  # sync client
        for field, value in sorted(answers.items()):
            if labels := _split(field, 2):
                http.add_metric(labels, float(value))
        yield http

        steps: dict[tuple[str, str], dict[str, float]] = {}
        raw: dict[str, str] = client.hgetall(STEP_KEY)  # type: ignore[assignment]  # sync client
        for field, value in raw.items():
            if parts := _split(field, 3):
                steps.setdefault((parts[0], parts[1]), {})[parts[2]] = float(value)
        histogram = HistogramMetricFamily(
            "portal_step_duration_seconds",
            "Duration of finished release steps, from start to end",
            labels=["platform", "kind"],
        )
        for (platform, kind), values in sorted(steps.items()):
            buckets = [(str(bound), values.get(str(bound), 0.0)) for bound in STEP_BUCKETS]
            buckets.append(("+Inf", values.get("+Inf", 0.0)))
            histogram.add_metric([platform, kind], buckets=buckets, sum_value=values.get("sum", 0.0))
        yield histogram

        sweeper: dict[str, str] = client.hgetall(SWEEP_KEY)  # type: ignore[assignment]  # sync client
        yield CounterMetricFamily(
            "portal_sweeper_redispatches",
            "Releases re-dispatched by the sweeper",
            value=float(sweeper.get("redispatched", 0)),
        )
        yield CounterMetricFamily("portal_sweeper_runs", "Sweeper runs", value=float(sweeper.get("runs", 0)))
        yield CounterMetricFamily(
            "portal_alert_delivery_failures",
            "Alert messages a channel did not take",
            value=float(client.get(ALERT_FAILURES_KEY) or 0),
        )

    def _liveness(self) -> Iterable[Metric]:
        queues = GaugeMetricFamily("portal_celery_queue_length", "Messages waiting in a Celery queue", labels=["queue"])
        for name, length in queue_lengths().items():
            queues.add_metric([name], length)
        yield queues
        now = datetime.now(UTC)
        workers = GaugeMetricFamily(
            "portal_worker_heartbeat_age_seconds", "Seconds since a worker's last heartbeat", labels=["worker"]
        )
        for host, when in sorted(worker_heartbeats().items()):
            workers.add_metric([host], (now - when).total_seconds())
        yield workers
        tick = last_beat_tick()
        if tick is not None:
            yield GaugeMetricFamily(
                "portal_beat_heartbeat_age_seconds",
                "Seconds since beat's last tick",
                value=(now - tick).total_seconds(),
            )

    def _notifications_and_uploads(self) -> Iterable[Metric]:
        failures = CounterMetricFamily(
            "portal_notification_delivery_failures",
            "Release notification attempts that failed, by channel kind",
            labels=["kind"],
        )
        figures = database_figures()
        for kind, count in figures["delivery_failures"]:
            failures.add_metric([kind], count)
        yield failures
        uploads, unfinished = figures["uploads"], figures["unfinished"]
        yield CounterMetricFamily("portal_uploads", "Files uploaded", value=uploads["n"])
        yield CounterMetricFamily("portal_upload_bytes", "Bytes uploaded", value=uploads["size"] or 0)
        yield GaugeMetricFamily("portal_uploads_unfinished", "Chunked uploads not completed", value=unfinished["n"])
        yield GaugeMetricFamily(
            "portal_uploads_unfinished_bytes",
            "Bytes received by unfinished chunked uploads",
            value=unfinished["size"] or 0,
        )
