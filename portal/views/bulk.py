"""Bulk actions from the job history: preview, then confirm (portal.bulk)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from portal.exceptions import ApplicationError
from portal.models import Release
from portal.requests import AuthenticatedHttpRequest
from portal.selectors.core import release_history
from portal.selectors.ledger import iter_ledger
from portal.services.bulk import BULK_LIMIT, bulk_apply, bulk_plan
from portal.views.history import filtered_history, ledger_response


def _chosen(request: AuthenticatedHttpRequest) -> QuerySet[Release]:
    """The releases the form names: its ticked ids, or every release the filter matches."""
    if request.POST.get("scope") == "filter":
        _filterset, qs = filtered_history(request, QueryDict(request.POST.get("filter", "")))
        return qs
    ids = [int(i) for i in request.POST.getlist("ids") if i.isdigit()]
    return release_history(user=request.user).filter(pk__in=ids)


@login_required
@require_POST
def history_bulk(request: AuthenticatedHttpRequest) -> HttpResponse | StreamingHttpResponse:
    back = reverse("portal:history") + (f"?{request.POST['filter']}" if request.POST.get("filter") else "")
    try:
        plan = bulk_plan(user=request.user, action=request.POST.get("action", ""), releases=_chosen(request))
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect(back)
    if plan.chosen == 0:
        messages.error(request, "Tick some releases, or choose all that match the filter.")
        return redirect(back)
    if request.POST.get("confirm") != "yes":
        return render(
            request,
            "portal/history_bulk.html",
            {
                "plan": plan,
                "preview": list(plan.eligible.select_related("dataset", "mapping", "created_by")[:50]),
                "ids": request.POST.getlist("ids"),
                "scope": request.POST.get("scope", "selected"),
                "filter": request.POST.get("filter", ""),
                "fmt": request.POST.get("fmt", "csv"),
                "limit": BULK_LIMIT,
            },
        )
    if plan.action == "export":
        return ledger_response(iter_ledger(plan.eligible), request.POST.get("fmt", "csv"))
    result = bulk_apply(user=request.user, plan=plan)
    verb = "Cancel requested for" if plan.action == "cancel" else "Retried"
    messages.success(request, f"{verb} {len(result.done)} release{'s' if len(result.done) != 1 else ''}.")
    for pk, reason in result.refused[:10]:
        messages.warning(request, f"#{pk}: {reason}")
    return redirect(back)
