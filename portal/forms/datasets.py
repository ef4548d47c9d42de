"""The dataset form."""

from __future__ import annotations

from typing import Any

from django import forms

from portal.forms.teams import TeamChoiceMixin


class DatasetForm(TeamChoiceMixin, forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    def __init__(self, *args: Any, teams: Any = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if teams is not None:
            self.setup_team(teams)
