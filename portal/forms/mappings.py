"""Mapping forms."""

from __future__ import annotations

from django import forms


class MappingForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="e.g. “Sales dashboard (staging)”")


class ParamsNoteForm(forms.Form):
    note = forms.CharField(
        max_length=200, required=False, label="What changed", help_text="Optional, shown in the version list"
    )
