"""Mapping pages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from portal.automation.schedules import next_run
from portal.exceptions import ApplicationError
from portal.forms.automation import ChannelForm, ScheduleForm
from portal.forms.mappings import MappingForm
from portal.forms.schema import SchemaForm
from portal.models import Connection, Dataset, Mapping, ObjectState
from portal.permissions import MANAGE, VIEW, get_for_user
from portal.requests import AuthenticatedHttpRequest, state_or_404
from portal.selectors.core import connection_list, mapping_name_suggestion, release_history
from portal.selectors.stats import mapping_duration_trend, trend_chart, trend_summary
from portal.services.mappings import mapping_create, mapping_set_state, mapping_update
from portal.services.target_checks import TargetCheck, mapping_target_check
from portal.views.platform import platform_panels


@login_required
def mapping_add(request: AuthenticatedHttpRequest, dataset_pk: int) -> HttpResponse:
    dataset = get_for_user(request.user, Dataset.objects.all(), MANAGE, pk=dataset_pk)
    connections = connection_list(user=request.user).filter(team=dataset.team, state=ObjectState.ENABLED)
    connection_pk = request.GET.get("connection") or request.POST.get("connection")
    connection = (
        connections.filter(pk=connection_pk).first() if connection_pk and str(connection_pk).isdigit() else None
    )
    if connection is None:
        return render(request, "portal/mapping_connection.html", {"dataset": dataset, "connections": connections})
    connector_class = connection.connector_class
    suggested = mapping_name_suggestion(dataset=dataset, connection=connection)
    form = MappingForm(request.POST or None, initial={"name": suggested})
    target_form = SchemaForm(request.POST or None, schema=connector_class.Target, prefix="target")
    _mark_browsable(target_form, connection)
    check = None
    if request.method == "POST" and form.is_valid() and target_form.is_valid():
        check = _check_target(target_form, connection)
    if check is not None and not check.problems:
        try:
            mapping = mapping_create(
                dataset=dataset,
                connection=connection,
                name=form.cleaned_data["name"],
                target=target_form.validated,
                actor=request.user,
            )
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Mapping {mapping.name} created.")
            if check.unverified:
                messages.warning(request, check.unverified)
            return redirect(mapping)
    return render(
        request,
        "portal/mapping_form.html",
        {"form": form, "target_form": target_form, "dataset": dataset, "connection": connection},
    )


@login_required
def mapping_edit(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    mapping = get_for_user(request.user, Mapping.objects.select_related("connection", "dataset"), MANAGE, pk=pk)
    connector_class = mapping.connection.connector_class
    form = MappingForm(request.POST or None, initial={"name": mapping.name})
    target_form = SchemaForm(
        request.POST or None, schema=connector_class.Target, prefix="target", initial=mapping.target
    )
    _mark_browsable(target_form, mapping.connection)
    check = None
    if request.method == "POST" and form.is_valid() and target_form.is_valid():
        check = _check_target(target_form, mapping.connection)
    if check is not None and not check.problems:
        try:
            mapping_update(
                mapping=mapping, name=form.cleaned_data["name"], target=target_form.validated, actor=request.user
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Mapping saved.")
            if check.unverified:
                messages.warning(request, check.unverified)
            return redirect(mapping)
    return render(
        request,
        "portal/mapping_form.html",
        {
            "form": form,
            "target_form": target_form,
            "dataset": mapping.dataset,
            "connection": mapping.connection,
            "mapping": mapping,
        },
    )


def _check_target(target_form: SchemaForm, connection: Connection) -> TargetCheck:
    """Ask the platform whether the target exists; its problems become form errors."""
    check = mapping_target_check(connection=connection, target=target_form.validated)
    for problem in check.problems:
        target_form.add_error(None, problem)
    return check


def _mark_browsable(form: SchemaForm, connection: Connection) -> None:
    """Fields the connector can fill from the platform get a Browse button (portal.js)."""
    for name, info in form.schema.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and extra.get("browse"):
            field = form.fields[name]
            if isinstance(field.widget, forms.NumberInput):
                # What is typed is also the search text (a query name, not only its id).
                field.widget = forms.TextInput(attrs=field.widget.attrs)
            field.widget.attrs["data-browse"] = reverse("portal:browse", args=[connection.pk, name])


@login_required
def mapping_detail(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    mapping = get_for_user(request.user, Mapping.objects.select_related("connection", "dataset"), VIEW, pk=pk)
    return render(
        request,
        "portal/mapping_detail.html",
        {
            "mapping": mapping,
            "connector": mapping.connection.connector_class,
            "releases": release_history(user=request.user).filter(mapping=mapping)[:20],
            "panels": platform_panels(request, mapping.connection, mapping),
            "action_runs": mapping.action_runs.select_related("requested_by")[:10],
            "params_version": mapping.params_versions.first(),
            **_trend_context(mapping),
            **_automation_context(mapping),
        },
    )


def _trend_context(mapping: Mapping) -> dict[str, Any]:
    trend = mapping_duration_trend(mapping=mapping)
    return {
        "trend": trend,
        "trend_chart": trend_chart(trend),
        "trend_summary": trend_summary(trend),
    }


def _automation_context(mapping: Mapping) -> dict[str, Any]:
    schedule = getattr(mapping, "schedule", None)
    return {
        "schedule": schedule,
        "next_run": next_run(schedule) if schedule else None,
        "schedule_form": ScheduleForm(
            initial={"cron": schedule.cron, "enabled": schedule.enabled}
            if schedule
            else {"cron": "0 6 * * 1-5", "enabled": True}
        ),
        "channels": mapping.notification_channels.all(),
        "team_channels": mapping.team.notification_channels.filter(mapping__isnull=True),
        "channel_form": ChannelForm(),
    }


@login_required
@require_POST
def mapping_state(request: AuthenticatedHttpRequest, pk: int, state: str) -> HttpResponse:
    mapping = get_for_user(request.user, Mapping.objects.select_related("connection"), MANAGE, pk=pk)
    try:
        mapping_set_state(mapping=mapping, state=state_or_404(state), actor=request.user)  # type: ignore[arg-type]
        messages.success(request, f"Mapping {mapping.name} is now {state}.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect(mapping)
