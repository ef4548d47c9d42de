"""The Ctrl-K / Cmd-K jump-to box: datasets, mappings, connections and releases by name or id."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import JsonResponse

from portal.requests import AuthenticatedHttpRequest
from portal.selectors.core import connection_list, dataset_list, mapping_list, release_history

PER_KIND = 6


@login_required
def jump(request: AuthenticatedHttpRequest) -> JsonResponse:
    """``?q=`` → up to PER_KIND matches of each kind the user may see, as label and URL."""
    q = request.GET.get("q", "").strip()[:100]
    if not q:
        return JsonResponse({"results": []})
    digits = q.lstrip("#")
    by_id = Q(pk=int(digits)) if digits.isdigit() and len(digits) < 12 else Q(pk__in=[])
    results: list[dict[str, Any]] = []
    for release in release_history(user=request.user).filter(by_id)[:1]:
        results.append(
            {
                "kind": "release",
                "label": f"Release #{release.pk} · {release.mapping.name}",
                "url": release.get_absolute_url(),
            }
        )
    for dataset in dataset_list(user=request.user).filter(Q(name__icontains=q) | by_id)[:PER_KIND]:
        results.append({"kind": "dataset", "label": dataset.name, "url": dataset.get_absolute_url()})
    for mapping in mapping_list(user=request.user).filter(Q(name__icontains=q) | by_id)[:PER_KIND]:
        results.append(
            {"kind": "mapping", "label": f"{mapping.dataset.name} → {mapping.name}", "url": mapping.get_absolute_url()}
        )
    for connection in connection_list(user=request.user).filter(Q(name__icontains=q) | by_id)[:PER_KIND]:
        results.append(
            {
                "kind": "connection",
                "label": f"{connection.name} ({connection.get_platform_display()})",
                "url": connection.get_absolute_url(),
            }
        )
    return JsonResponse({"results": results})
