"""The dashboard."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render

from portal.requests import AuthenticatedHttpRequest
from portal.selectors.core import connection_list, failing_mappings, open_release_count, release_history
from portal.selectors.stats import dashboard_daily_counts, dashboard_platform_stats


@login_required
def dashboard(request: AuthenticatedHttpRequest) -> HttpResponse:
    user = request.user
    return render(
        request,
        "portal/dashboard.html",
        {
            "recent": release_history(user=user)[:10],
            "failing": failing_mappings(user=user),
            "connections": connection_list(user=user),
            "running_count": open_release_count(user=user),
            "daily": dashboard_daily_counts(user=user),
            "platform_stats": dashboard_platform_stats(user=user),
        },
    )
