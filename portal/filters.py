"""Filters of the job history (django-filter). Every choice is limited to the user's teams."""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db.models import QuerySet

from connectors.registry import platform_choices
from portal import permissions
from portal.models import Dataset, Release, ReleaseStatus
from portal.selectors import search as search_selectors
from portal.selectors.search import release_search


class ReleaseFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        method="search", label="Search", widget=forms.TextInput(attrs={"placeholder": "dataset, mapping, ref, error…"})
    )
    platform = django_filters.ChoiceFilter(choices=platform_choices(), empty_label="Any platform")
    status = django_filters.ChoiceFilter(choices=ReleaseStatus.choices, empty_label="Any status")
    dataset = django_filters.ModelChoiceFilter(queryset=Dataset.objects.none(), empty_label="Any dataset")
    user = django_filters.ModelChoiceFilter(
        field_name="created_by", queryset=get_user_model().objects.none(), empty_label="Anyone", label="User"
    )
    # Half-open ranges on created_at in the user's time zone, so the history index serves them.
    since = django_filters.DateFilter(
        method="created_since", label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = django_filters.DateFilter(
        method="created_until", label="To", widget=forms.DateInput(attrs={"type": "date"})
    )

    class Meta:
        model = Release
        fields = ["q", "platform", "status", "dataset", "user", "since", "until"]

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        team_ids = list(permissions.roles_of(user))
        self.filters["dataset"].queryset = Dataset.objects.filter(team_id__in=team_ids).order_by("name")
        self.filters["user"].queryset = (
            get_user_model().objects.filter(memberships__team_id__in=team_ids).distinct().order_by("username")
        )

    @property
    def form(self) -> Any:
        if not hasattr(self, "_form"):
            form = super().form
            # Plain choices read with one ordinary query: a ModelChoiceField renders through
            # queryset.iterator(), a server-side cursor (DECLARE/FETCH/CLOSE) per select.
            for name in ("dataset", "user"):
                field = form.fields[name]
                field.widget.choices = [("", field.empty_label)] + [
                    (obj.pk, field.label_from_instance(obj)) for obj in field.queryset
                ]
        return self._form

    def search(self, queryset: QuerySet[Release], name: str, value: str) -> QuerySet[Release]:
        return release_search(queryset, value)

    def created_since(self, queryset: QuerySet[Release], name: str, value: Any) -> QuerySet[Release]:
        return search_selectors.created_since(queryset, value)

    def created_until(self, queryset: QuerySet[Release], name: str, value: Any) -> QuerySet[Release]:
        return search_selectors.created_until(queryset, value)
