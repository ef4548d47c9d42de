"""Release set pages: plan, live matrix, cancel and retry."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import HTMX_STOP_POLLING

from portal import permissions
from portal.exceptions import ApplicationError
from portal.forms.schema import SchemaForm
from portal.models import Dataset, ObjectState, ReleaseSet, Upload
from portal.permissions import OPERATE, VIEW, get_for_user
from portal.requests import AuthenticatedHttpRequest
from portal.selectors.core import upload_list
from portal.selectors.stats import release_set_timeline
from portal.services.release_sets import release_set_cancel, release_set_create, release_set_plan, release_set_retry


def _selection(request: AuthenticatedHttpRequest, dataset: Dataset) -> tuple[list[Any], Upload | None]:
    ids = [int(i) for i in request.POST.getlist("mappings") if i.isdigit()]
    mappings = list(dataset.mappings.filter(pk__in=ids).select_related("connection"))
    upload_id = request.POST.get("upload", "")
    upload = dataset.uploads.filter(pk=upload_id).first() if upload_id.isdigit() else None
    return mappings, upload


@login_required
def release_set_new(request: AuthenticatedHttpRequest, dataset_pk: int) -> HttpResponse:
    """GET: tick mappings and a file. POST: preview; POST with confirm: start."""
    dataset = get_for_user(request.user, Dataset.objects.all(), OPERATE, pk=dataset_pk)
    candidates = list(
        dataset.mappings.exclude(state=ObjectState.ARCHIVED).select_related("connection").order_by("name")
    )
    uploads = upload_list(user=request.user, dataset=dataset)[:20]
    context: dict[str, Any] = {
        "dataset": dataset,
        "candidates": candidates,
        "uploads": uploads,
        "token": request.POST.get("token") or uuid.uuid4().hex,
    }
    if request.method == "POST":
        mappings, upload = _selection(request, dataset)
        context.update(selected={m.pk for m in mappings}, upload=upload)
        try:
            if request.POST.get("confirm"):
                release_set = release_set_create(
                    dataset=dataset,
                    mappings=mappings,
                    upload=upload,
                    actor=request.user,
                    idempotency_key=f"set-form:{request.user.pk}:{context['token']}",
                )
                return redirect(release_set)
            context["plan"] = release_set_plan(dataset=dataset, mappings=mappings, upload=upload)
        except ApplicationError as exc:
            context["error"] = exc.message
    return render(request, "portal/release_set_form.html", context)


def _matrix(release_set: ReleaseSet) -> dict[str, Any]:
    releases = release_set.current_releases()
    attempts: dict[int, int] = {}
    for mapping_id in release_set.releases.values_list("mapping_id", flat=True):
        attempts[mapping_id] = attempts.get(mapping_id, 0) + 1
    rows: list[dict[str, Any]] = []
    for release in releases:
        steps = list(release.steps.all())
        rows.append({"release": release, "steps": steps, "attempt": attempts[release.mapping_id]})
    width = max((len(r["steps"]) for r in rows), default=0)
    for row in rows:
        row["padding"] = range(width - len(row["steps"]))
    status = ReleaseSet.status_of(releases)
    return {
        "release_set": release_set,
        "rows": rows,
        "columns": range(1, width + 1),
        "status": status,
        "terminal": status != "running",
        "set_timeline": release_set_timeline(release_set=release_set),
    }


@login_required
def release_set_detail(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    release_set = get_for_user(
        request.user, ReleaseSet.objects.select_related("dataset", "upload", "created_by"), VIEW, pk=pk
    )
    return render(request, "portal/release_set_detail.html", _matrix(release_set))


@login_required
def release_set_matrix(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    release_set = get_for_user(request.user, ReleaseSet.objects.all(), VIEW, pk=pk)
    context = _matrix(release_set)
    response = render(request, "portal/release_set_detail.html#set-matrix", context)
    if context["terminal"]:
        response.status_code = HTMX_STOP_POLLING
    return response


@login_required
@require_POST
def release_set_cancel_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    release_set = get_for_user(request.user, ReleaseSet.objects.all(), OPERATE, pk=pk)
    try:
        count = release_set_cancel(release_set=release_set, actor=request.user)
        messages.warning(request, f"Cancel requested for {count} release{'s' if count != 1 else ''}.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect(release_set)


@login_required
def release_set_retry_view(request: AuthenticatedHttpRequest, pk: int, mapping_pk: int | None = None) -> HttpResponse:
    """POST: retry every failed cell with the same parameters. With a mapping: edit its
    parameters (GET shows the form) and retry that cell only."""
    release_set = get_for_user(request.user, ReleaseSet.objects.all(), OPERATE, pk=pk)
    form = None
    if mapping_pk is not None:
        current = {r.mapping_id: r for r in release_set.current_releases()}
        if mapping_pk not in current:
            raise Http404("This mapping is not in the set")
        release = current[mapping_pk]
        connector_class = release.mapping.connection.connector_class
        form = SchemaForm(
            request.POST or None,
            schema=connector_class.Params,
            prefix="params",
            context={"target": release.mapping.target_schema()},
            initial=release.params,
        )
        if request.method != "POST" or not form.is_valid():
            return render(
                request, "portal/release_set_retry.html", {"release_set": release_set, "release": release, "form": form}
            )
    elif request.method != "POST":
        return redirect(release_set)
    try:
        params = {mapping_pk: form.data_dict()} if form is not None and mapping_pk is not None else None
        only = {mapping_pk} if mapping_pk is not None else None
        retries = release_set_retry(release_set=release_set, actor=request.user, params=params, only=only)
        messages.success(
            request,
            f"Retrying {len(retries)} mapping{'s' if len(retries) != 1 else ''}: only the failed steps run again.",
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect(release_set)


@login_required
def release_set_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    sets = permissions.scope(request.user, ReleaseSet.objects.select_related("dataset", "upload", "created_by"))[:50]
    rows = []
    for release_set in sets:
        releases = release_set.current_releases()
        rows.append({"set": release_set, "releases": releases, "status": ReleaseSet.status_of(releases)})
    return render(request, "portal/release_set_list.html", {"rows": rows})
