"""Views for automation: a mapping's schedule, notification channels, retrying a release."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from . import notifications, permissions, schedules, services
from .models import Mapping, NotificationChannel, Release, Team
from .permissions import MANAGE, OPERATE, get_for_user
from .views import HtmxHttpRequest


class ScheduleForm(forms.Form):
    cron = forms.CharField(
        max_length=100,
        label="Cron schedule (UTC)",
        help_text="minute hour day-of-month month day-of-week, e.g. 0 6 * * 1-5",
    )
    enabled = forms.BooleanField(required=False, initial=True)

    def clean_cron(self) -> str:
        try:
            schedules.parse_cron(self.cleaned_data["cron"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return self.cleaned_data["cron"]


class ChannelForm(forms.Form):
    kind = forms.ChoiceField(choices=NotificationChannel.Kind.choices)
    target = forms.CharField(
        max_length=500, label="Send to", help_text="Email addresses (comma-separated), or the webhook URL"
    )
    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Webhooks: the HMAC key of the X-Portal-Signature header",
    )
    on_failure = forms.BooleanField(required=False, initial=True, label="On failure")
    on_success = forms.BooleanField(required=False, label="On success")

    def clean(self):  # type: ignore[no-untyped-def]
        data = super().clean()
        target = data.get("target", "")
        if data.get("kind") == "webhook":
            forms.URLField().clean(target)
        elif data.get("kind") == "email":
            for address in [a.strip() for a in target.split(",") if a.strip()] or [""]:
                forms.EmailField().clean(address)
        if not data.get("on_failure") and not data.get("on_success"):
            raise forms.ValidationError("Choose failure, success or both.")
        return data


@login_required
@require_POST
def schedule_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    mapping = get_for_user(request.user, Mapping.objects.all(), MANAGE, pk=pk)
    if request.POST.get("delete") and hasattr(mapping, "schedule"):
        schedules.schedule_delete(schedule=mapping.schedule, actor=request.user)
        messages.success(request, "Schedule removed.")
        return redirect(mapping)
    form = ScheduleForm(request.POST)
    if form.is_valid():
        schedules.schedule_set(
            mapping=mapping, cron=form.cleaned_data["cron"], enabled=form.cleaned_data["enabled"], actor=request.user
        )
        messages.success(request, "Schedule saved.")
    else:
        messages.error(request, "Schedule not saved: " + "; ".join(e for errs in form.errors.values() for e in errs))
    return redirect(mapping)


@login_required
@require_POST
def channel_add(request: HtmxHttpRequest, scope: str, pk: int) -> HttpResponse:
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
            notifications.channel_create(
                team=team,
                mapping=mapping,
                **{k: form.cleaned_data[k] for k in ("kind", "target", "secret", "on_failure", "on_success")},
                actor=request.user,
            )
            messages.success(request, "Notification channel added.")
        except ValidationError as exc:
            messages.error(request, "; ".join(exc.messages))
    else:
        messages.error(request, "Channel not added: " + "; ".join(e for errs in form.errors.values() for e in errs))
    return redirect(back)


@login_required
@require_POST
def channel_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    channel = get_for_user(request.user, NotificationChannel.objects.select_related("mapping"), MANAGE, pk=pk)
    back = channel.mapping.get_absolute_url() if channel.mapping else f"/teams/{channel.team_id}/"
    notifications.channel_delete(channel=channel, actor=request.user)
    messages.success(request, "Notification channel removed.")
    return redirect(back)


@login_required
@require_POST
def release_retry(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    release = get_for_user(request.user, Release.objects.select_related("mapping__connection"), OPERATE, pk=pk)
    try:
        retry = services.release_retry(release=release, actor=request.user)
    except services.ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect(release)
    return redirect(retry)
