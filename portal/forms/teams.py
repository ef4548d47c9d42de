"""Forms for teams and members."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model

from portal.models import Role


class TeamChoiceMixin:
    """A ``team`` field limited to the teams where the user may do this; hidden if only one."""

    def setup_team(self, teams: Any) -> None:
        field = forms.ModelChoiceField(queryset=teams, empty_label=None, label="Team")
        self.fields["team"] = field  # type: ignore[attr-defined]
        if teams.count() == 1:
            field.widget = forms.HiddenInput()
            field.initial = teams.first()


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices)

    def clean_username(self) -> Any:
        User = get_user_model()
        try:
            return User.objects.get(username=self.cleaned_data["username"])
        except User.DoesNotExist:
            raise forms.ValidationError("No user with that username.") from None


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
