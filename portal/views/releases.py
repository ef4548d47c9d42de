"""Release pages: the form, the live page, cancel, retry and the job history."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import HTMX_STOP_POLLING

from portal.exceptions import ApplicationError
from portal.filters import ReleaseFilter
from portal.forms.releases import ReleaseForm
from portal.forms.schema import SchemaForm
from portal.models import Mapping, Release
from portal.permissions import OPERATE, VIEW, get_for_user
from portal.requests import AuthenticatedHttpRequest
from portal.selectors.core import history_page, release_history, upload_list
from portal.selectors.release_log import log_page
from portal.selectors.stats import release_timeline
from portal.services import releases as releases_services
from portal.services.preflight import release_preflight


@login_required
@require_POST
def release_retry(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    release = get_for_user(request.user, Release.objects.select_related("mapping__connection"), OPERATE, pk=pk)
    try:
        retry = releases_services.release_retry(release=release, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect(release)
    return redirect(retry)


@login_required
def release_create(request: AuthenticatedHttpRequest, mapping_pk: int) -> HttpResponse:
    mapping = get_for_user(
        request.user, Mapping.objects.select_related("connection", "dataset"), OPERATE, pk=mapping_pk
    )
    connector_class = mapping.connection.connector_class
    uploads = upload_list(user=request.user, dataset=mapping.dataset)
    form = ReleaseForm(request.POST or None, uploads=uploads)
    params_form = SchemaForm(
        request.POST or None,
        schema=connector_class.Params,
        prefix="params",
        context={"target": mapping.target_schema()},
        initial=mapping.default_params or None,
    )
    if request.method == "POST" and form.is_valid() and params_form.is_valid():
        # The platform would refuse what pre-flight calls a blocker: say so before creating anything.
        for blocker in release_preflight(mapping=mapping, upload=form.cleaned_data["upload"]).blockers:
            form.add_error(None, f"{blocker.title}: {blocker.detail}" if blocker.detail else blocker.title)
    if request.method == "POST" and form.is_valid() and params_form.is_valid():
        try:
            release = releases_services.release_create(
                mapping=mapping,
                upload=form.cleaned_data["upload"],
                params=params_form.validated,
                actor=request.user,
                idempotency_key=f"form:{request.user.pk}:{form.cleaned_data['submission_token']}",
            )
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            return redirect(release)
    return render(
        request,
        "portal/release_form.html",
        {
            "mapping": mapping,
            "form": form,
            "params_form": params_form,
            "connector": connector_class,
            "has_uploads": uploads.exists(),
        },
    )


def _release_context(release: Release) -> dict[str, Any]:
    connector_class = release.mapping.connection.connector_class
    steps = list(release.steps.all())
    for step in steps:
        # What the connector makes of the step's output: pipelines, previews, downloads.
        step.tables = connector_class.step_tables(step.name, step.output)
        step.downloads = connector_class.downloads(step.name, step.output) if step.status == "succeeded" else []
    return {
        "release": release,
        "steps": steps,
        "log": log_page(release=release),
        "deliveries": release.deliveries.select_related("channel")[:20],
        "retries": list(release.retries.values_list("pk", flat=True)),
        "timeline": release_timeline(release=release),
    }


@login_required
def release_detail(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    release = get_for_user(
        request.user,
        Release.objects.select_related("mapping__connection", "dataset", "upload", "created_by"),
        VIEW,
        pk=pk,
    )
    return render(request, "portal/release_detail.html", _release_context(release))


@login_required
def release_status(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """The live part of the release page; polling stops (286) at a terminal state."""
    release = get_for_user(
        request.user, Release.objects.select_related("mapping__connection", "dataset", "upload"), VIEW, pk=pk
    )
    response = render(request, "portal/release_detail.html#release-status", _release_context(release))
    if release.is_terminal:
        response.status_code = HTMX_STOP_POLLING
    return response


@login_required
@require_POST
def release_cancel(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    release = get_for_user(request.user, Release.objects.all(), OPERATE, pk=pk)
    try:
        releases_services.release_cancel(release=release, actor=request.user)
        messages.warning(request, "Cancel requested.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect(release)


@login_required
def history(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Every release the user may see, filtered, newest first, keyset-paginated."""
    base = release_history(user=request.user)
    filterset = ReleaseFilter(request.GET or None, queryset=base, user=request.user)
    qs = filterset.qs if filterset.is_bound and filterset.is_valid() else base
    page, total = history_page(
        qs, cursor=request.GET.get("after"), size=50, search=request.GET.get("q", ""), window_base=base
    )
    query = request.GET.copy()
    query.pop("after", None)
    return render(
        request,
        "portal/history.html",
        {
            "filter": filterset,
            "page": page,
            "total": total,
            "query": query.urlencode(),
            "first_page": not request.GET.get("after"),
        },
    )
