"""Job history exports: the filtered release ledger as CSV or JSON, streamed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import Http404, StreamingHttpResponse
from django.utils import timezone

from portal.filters import ReleaseFilter
from portal.models import Release
from portal.requests import AuthenticatedHttpRequest
from portal.selectors.core import release_history
from portal.selectors.ledger import iter_ledger, ledger_csv, ledger_json

CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}


def filtered_history(request: AuthenticatedHttpRequest, data: Any = None) -> tuple[ReleaseFilter, QuerySet[Release]]:
    """The history's filterset and the releases it selects (all of the user's when unfiltered)."""
    base = release_history(user=request.user)
    filterset = ReleaseFilter(data if data is not None else (request.GET or None), queryset=base, user=request.user)
    return filterset, (filterset.qs if filterset.is_bound and filterset.is_valid() else base)


def ledger_response(records: Iterator[dict[str, Any]], fmt: str) -> StreamingHttpResponse:
    """A download that starts at once and holds one chunk of releases in memory at a time."""
    if fmt not in CONTENT_TYPES:
        raise Http404("CSV or JSON only")
    body = ledger_csv(records) if fmt == "csv" else ledger_json(records)
    response = StreamingHttpResponse(body, content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="releases-{timezone.now():%Y%m%d-%H%M}.{fmt}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


@login_required
def history_export(request: AuthenticatedHttpRequest, fmt: str) -> StreamingHttpResponse:
    """The history's current filters, every matching release, as a ledger file."""
    _filterset, qs = filtered_history(request)
    return ledger_response(iter_ledger(qs), fmt)
