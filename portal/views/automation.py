"""Schedules and notification channels."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from portal import permissions
from portal.automation import notifications as notifications_automation
from portal.automation.notifications import channel_create
from portal.automation.schedules import schedule_delete, schedule_set
from portal.forms.automation import ChannelForm, ScheduleForm
from portal.models import Mapping, NotificationChannel, Team
from portal.permissions import MANAGE, get_for_user
from portal.requests import AuthenticatedHttpRequest


@login_required
@require_POST
def schedule_edit(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    mapping = get_for_user(request.user, Mapping.objects.all(), MANAGE, pk=pk)
    if request.POST.get("delete") and hasattr(mapping, "schedule"):
        schedule_delete(schedule=mapping.schedule, actor=request.user)
        messages.success(request, "Schedule removed.")
        return redirect(mapping)
    form = ScheduleForm(request.POST)
    if form.is_valid():
        schedule_set(
            mapping=mapping, cron=form.cleaned_data["cron"], enabled=form.cleaned_data["enabled"], actor=request.user
        )
        messages.success(request, "Schedule saved.")
    else:
        messages.error(
            request, "Schedule not saved: " + "; ".join(str(e) for errs in form.errors.values() for e in errs)
        )
    return redirect(mapping)


@login_required
@require_POST
def channel_add(request: AuthenticatedHttpRequest, scope: str, pk: int) -> HttpResponse:
    if scope == "mapping":
        mapping = get_for_user(request.user, Mapping.objects.all(), MANAGE, pk=pk)
        team, back = mapping.team, mapping.get_absolute_url()
    else:
        mapping = None
        team = permissions.teams_for(request.user).filter(pk=pk).first() or Team(pk=pk)
        permissions.require(request.user, pk, MANAGE)
        back = f"/teams/{pk}/"
    form = ChannelForm(request.POST)
    if form.is_valid():
        try:
            channel_create(
                team=team,
                mapping=mapping,
                **{k: form.cleaned_data[k] for k in ("kind", "target", "secret", "on_failure", "on_success")},
                actor=request.user,
            )
            messages.success(request, "Notification channel added.")
        except ValidationError as exc:
            messages.error(request, "; ".join(exc.messages))
    else:
        messages.error(
            request, "Channel not added: " + "; ".join(str(e) for errs in form.errors.values() for e in errs)
        )
    return redirect(back)


@login_required
@require_POST
def channel_delete(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    channel = get_for_user(request.user, NotificationChannel.objects.select_related("mapping"), MANAGE, pk=pk)
    back = channel.mapping.get_absolute_url() if channel.mapping else f"/teams/{channel.team_id}/"
    notifications_automation.channel_delete(channel=channel, actor=request.user)
    messages.success(request, "Notification channel removed.")
    return redirect(back)
