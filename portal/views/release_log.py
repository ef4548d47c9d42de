"""The release page's log: earlier lines on demand, and the full log as a download."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render

from portal.models import Release
from portal.permissions import VIEW, get_for_user
from portal.requests import AuthenticatedHttpRequest
from portal.selectors.release_log import PAGE, log_lines, log_page


@login_required
def release_log_earlier(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """Lines before ``?before=<event id>``: list items and a new "earlier" button (htmx)."""
    release = get_for_user(request.user, Release.objects.all(), VIEW, pk=pk)
    before = request.GET.get("before", "")
    page = log_page(release=release, before=int(before) if before.isdigit() else None, limit=PAGE)
    return render(request, "portal/_log_lines.html", {"release": release, "log": page})


@login_required
def release_log_download(request: AuthenticatedHttpRequest, pk: int) -> StreamingHttpResponse:
    release = get_for_user(request.user, Release.objects.all(), VIEW, pk=pk)
    response = StreamingHttpResponse(log_lines(release=release), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="release-{release.pk}.log"'
    return response
