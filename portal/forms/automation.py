"""Schedule and notification channel forms."""

from __future__ import annotations

from typing import Any

from django import forms

from portal.automation.schedules import parse_cron
from portal.models import NotificationChannel


class ScheduleForm(forms.Form):
    cron = forms.CharField(
        max_length=100,
        label="Cron schedule (UTC)",
        help_text="minute hour day-of-month month day-of-week, e.g. 0 6 * * 1-5",
    )
    enabled = forms.BooleanField(required=False, initial=True)

    def clean_cron(self) -> str:
        try:
            parse_cron(self.cleaned_data["cron"])
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

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        target = data.get("target", "")
        if data.get("kind") == "webhook":
            forms.URLField().clean(target)
        elif data.get("kind") == "email":
            for address in [a.strip() for a in target.split(",") if a.strip()] or [""]:
                forms.EmailField().clean(address)
        if not data.get("on_failure") and not data.get("on_success"):
            raise forms.ValidationError("Choose failure, success or both.")
        return data
