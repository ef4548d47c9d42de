"""``/healthz`` (liveness) and ``/readyz`` (readiness) for load balancers and orchestrators.

Readiness runs django-health-check's checks (database, Redis broker, storage) and two of
ours (a worker heartbeat and a beat heartbeat, portal/heartbeats.py), all concurrently, and
answers JSON with each check's status and latency. No login; no configuration in the
answer: a failed check says only what failed, never a host, a URL or a key (the details go
to the log)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from health_check.base import HealthCheck
from health_check.checks import Database, Storage
from health_check.contrib.redis import Redis
from health_check.exceptions import HealthCheckException, ServiceUnavailable
from health_check.views import HealthCheckView
from redis.asyncio import Redis as AsyncRedis

from portal.operations.heartbeats import last_beat_tick, worker_heartbeats


def _fresh(seen: datetime.datetime | None, max_age: float) -> bool:
    return seen is not None and (timezone.now() - seen).total_seconds() <= max_age


@dataclasses.dataclass
class WorkerHeartbeat(HealthCheck):
    """At least one Celery worker beat within ``PORTAL_HEALTH_WORKER_MAX_AGE`` seconds."""

    def run(self) -> None:
        max_age = settings.PORTAL_HEALTH_WORKER_MAX_AGE
        if not any(_fresh(seen, max_age) for seen in worker_heartbeats().values()):
            raise ServiceUnavailable(f"no worker heartbeat in {max_age:g} s")


@dataclasses.dataclass
class BeatHeartbeat(HealthCheck):
    """The acting Celery beat ticked within ``PORTAL_HEALTH_BEAT_MAX_AGE`` seconds."""

    def run(self) -> None:
        max_age = settings.PORTAL_HEALTH_BEAT_MAX_AGE
        if not _fresh(last_beat_tick(), max_age):
            raise ServiceUnavailable(f"no beat tick in {max_age:g} s")


def _checks() -> list[tuple[str, HealthCheck]]:
    return [
        ("database", Database()),
        ("broker", Redis(client_factory=lambda: AsyncRedis.from_url(settings.CELERY_BROKER_URL))),
        ("storage", Storage()),
        ("worker", WorkerHeartbeat()),
        ("beat", BeatHeartbeat()),
    ]


# Messages we wrote ourselves may be shown; a library's or a driver's may name hosts, so they are not.
_OWN_MESSAGES = (WorkerHeartbeat, BeatHeartbeat)


def _public_error(check: HealthCheck, error: HealthCheckException) -> str:
    return str(error.message) if isinstance(check, _OWN_MESSAGES) else "unavailable"


@method_decorator([login_not_required, never_cache], name="dispatch")
class ReadinessView(HealthCheckView):
    """200 when every check passes, else 503; JSON whatever the Accept header says."""

    async def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        named = _checks()
        with self.get_executor() as executor:
            results = await asyncio.gather(*(check.get_result(executor) for _, check in named))
        checks: dict[str, dict[str, Any]] = {}
        for (name, check), result in zip(named, results, strict=True):
            entry: dict[str, Any] = {
                "status": "ok" if result.error is None else "fail",
                "latency_ms": round(result.time_taken * 1000, 1),
            }
            if result.error is not None:
                entry["error"] = _public_error(check, result.error)
            checks[name] = entry
        ok = all(entry["status"] == "ok" for entry in checks.values())
        return JsonResponse({"status": "ok" if ok else "fail", "checks": checks}, status=200 if ok else 503)


@login_not_required
@never_cache
def liveness(request: HttpRequest) -> JsonResponse:
    """The process answers: nothing else is checked (a restart would not fix a database outage)."""
    return JsonResponse({"status": "ok"})
