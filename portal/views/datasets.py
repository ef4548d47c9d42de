"""Dataset pages."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from portal import permissions
from portal.forms.datasets import DatasetForm
from portal.models import Dataset, ObjectState
from portal.permissions import MANAGE, VIEW, get_for_user
from portal.requests import AuthenticatedHttpRequest, state_or_404
from portal.selectors import core as core_selectors
from portal.selectors.core import connection_list, mapping_list, release_history, upload_list
from portal.services.datasets import dataset_create, dataset_set_state, dataset_update


@login_required
def dataset_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    show_archived = request.GET.get("archived") == "1"
    return render(
        request,
        "portal/dataset_list.html",
        {
            "datasets": core_selectors.dataset_list(user=request.user, include_archived=show_archived),
            "show_archived": show_archived,
            "can_add": permissions.teams_for(request.user, MANAGE).exists(),
        },
    )


@login_required
def dataset_add(request: AuthenticatedHttpRequest) -> HttpResponse:
    teams = permissions.teams_for(request.user, MANAGE)
    if not teams.exists():
        raise permissions.PermissionDenied("Adding a dataset needs the admin role in a team.")
    form = DatasetForm(request.POST or None, teams=teams)
    if request.method == "POST" and form.is_valid():
        try:
            dataset = dataset_create(
                team=form.cleaned_data["team"],
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                actor=request.user,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Dataset {dataset.name} created. Now map it onto a platform.")
            return redirect(dataset)
    return render(request, "portal/dataset_form.html", {"form": form})


@login_required
def dataset_edit(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    dataset = get_for_user(request.user, Dataset.objects.all(), MANAGE, pk=pk)
    form = DatasetForm(request.POST or None, initial={"name": dataset.name, "description": dataset.description})
    if request.method == "POST" and form.is_valid():
        try:
            dataset_update(
                dataset=dataset,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                actor=request.user,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Dataset saved.")
            return redirect(dataset)
    return render(request, "portal/dataset_form.html", {"form": form, "dataset": dataset})


@login_required
def dataset_detail(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    dataset = get_for_user(request.user, Dataset.objects.all(), VIEW, pk=pk)
    show_archived = request.GET.get("archived") == "1"
    return render(
        request,
        "portal/dataset_detail.html",
        {
            "dataset": dataset,
            "mappings": mapping_list(user=request.user, dataset=dataset, include_archived=show_archived),
            "show_archived": show_archived,
            "uploads": upload_list(user=request.user, dataset=dataset)[:10],
            "releases": release_history(user=request.user).filter(dataset=dataset)[:10],
            "connections": connection_list(user=request.user).filter(team=dataset.team, state=ObjectState.ENABLED),
        },
    )


@login_required
@require_POST
def dataset_state(request: AuthenticatedHttpRequest, pk: int, state: str) -> HttpResponse:
    dataset = get_for_user(request.user, Dataset.objects.all(), MANAGE, pk=pk)
    dataset_set_state(dataset=dataset, state=state_or_404(state), actor=request.user)
    messages.success(request, f"Dataset {dataset.name} is now {state}.")
    return redirect(dataset)
