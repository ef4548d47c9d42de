"""The operations page (admins: is it healthy?) and the Prometheus endpoint.

Who sees the page: staff users see every team; a team admin sees the global health (workers,
beat, queues, platform error rates) and the releases, deliveries and uploads of the teams they
administer. Anyone else gets 403."""

from __future__ import annotations

import hmac
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from portal import permissions
from portal.models import Release
from portal.operations.alerts import open_alerts
from portal.operations.metrics import PortalCollector, queue_lengths
from portal.operations.selectors import (
    alert_conf,
    beat,
    failed_deliveries,
    failing_connections,
    overdue_releases,
    overdue_steps,
    platform_error_rates,
    releases_with_failed_deliveries,
    step_late_since,
    sweeper_activity,
    unfinished_uploads,
    workers,
)
from portal.permissions import MANAGE
from portal.requests import AuthenticatedHttpRequest


def ops_team_ids(user: Any) -> list[int] | None:
    """None (every team) for staff; the teams a team admin manages; PermissionDenied otherwise."""
    if user.is_staff:
        return None
    teams = list(permissions.teams_for(user, MANAGE).values_list("pk", flat=True))
    if not teams:
        raise PermissionDenied("The operations page is for admins.")
    return teams


def ops_context(team_ids: list[int] | None) -> dict[str, Any]:
    day_ago = timezone.now() - timedelta(days=1)
    overdue = overdue_steps(older_than=alert_conf("STEP_OVERDUE_SECONDS"), team_ids=team_ids)
    oldest = overdue.first()
    return {
        "workers": workers(),
        "beat": beat(),
        "queues": queue_lengths(),
        "overdue_count": overdue.count(),
        "oldest_overdue": oldest,
        "oldest_overdue_since": step_late_since(oldest) if oldest else None,
        "sweeper": sweeper_activity(),
        "error_rates": platform_error_rates(minutes=60),
        "failed_deliveries": failed_deliveries(since=day_ago, team_ids=team_ids).count(),
        "unfinished_uploads": unfinished_uploads(team_ids=team_ids),
        "failing_connections": failing_connections(team_ids=team_ids),
        "running": _scope(Release.objects.filter(status="running"), team_ids).count(),
        "queued": _scope(Release.objects.filter(status="queued"), team_ids).count(),
        "alerts": open_alerts(team_ids=team_ids),
        "now": timezone.now(),
    }


def _scope(queryset: Any, team_ids: list[int] | None) -> Any:
    return queryset if team_ids is None else queryset.filter(team_id__in=team_ids)


@login_required
@never_cache
def ops(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The page; htmx refreshes its ``ops-live`` partial every few seconds."""
    context = ops_context(ops_team_ids(request.user))
    template = "portal/ops.html#ops-live" if request.htmx else "portal/ops.html"
    return render(request, template, context)


OPS_LISTS = {
    "overdue": "Releases with a step overdue",
    "failed-notifications": "Releases whose notification failed (last 24 h)",
}


@login_required
def ops_releases(request: AuthenticatedHttpRequest, what: str) -> HttpResponse:
    """The releases behind a number of the operations page."""
    team_ids = ops_team_ids(request.user)
    if what == "overdue":
        releases = overdue_releases(team_ids=team_ids)
    elif what == "failed-notifications":
        releases = releases_with_failed_deliveries(since=timezone.now() - timedelta(days=1), team_ids=team_ids)
    else:
        raise Http404("No such list")
    releases = releases.select_related("dataset", "mapping", "created_by").order_by("-created_at", "-id")[:200]
    return render(request, "portal/ops_releases.html", {"title": OPS_LISTS[what], "releases": releases})


def metrics_allowed(request: AuthenticatedHttpRequest) -> bool:
    """With PORTAL_METRICS_TOKEN set, the scraper must send ``Authorization: Bearer <token>``."""
    token = settings.PORTAL_METRICS_TOKEN
    if not token:
        return not settings.PORTAL_METRICS_REQUIRE_TOKEN
    sent = request.headers.get("Authorization", "")
    return sent.startswith("Bearer ") and hmac.compare_digest(sent[7:].encode(), token.encode())


@require_GET
@never_cache
def metrics(request: AuthenticatedHttpRequest) -> HttpResponse:
    if not settings.PORTAL_METRICS_TOKEN and settings.PORTAL_METRICS_REQUIRE_TOKEN:
        raise Http404("Metrics are off: set PORTAL_METRICS_TOKEN")
    if not metrics_allowed(request):
        response = HttpResponse("A bearer token is needed.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PortalCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
