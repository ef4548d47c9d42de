"""The connection form (its credentials come from the connector's schema)."""

from __future__ import annotations

from typing import Any

from django import forms

from portal.forms.teams import TeamChoiceMixin


class ConnectionForm(TeamChoiceMixin, forms.Form):
    name = forms.CharField(max_length=100)
    base_url = forms.URLField(
        label="Base URL",
        max_length=500,
        help_text="The platform's API root, e.g. https://api.example.com",
        assume_scheme="https",
    )

    def __init__(self, *args: Any, teams: Any = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if teams is not None:
            self.setup_team(teams)
