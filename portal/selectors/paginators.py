"""A paginator that never counts the rows: for the admin's lists of releases, steps and events,
which grow to millions (docs/scale.md)."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.utils.functional import cached_property

from portal.selectors.search import estimate_count


class EstimatedCountPaginator(Paginator):
    """``count`` is the planner's estimate (PostgreSQL) or a count capped at 10,001 (elsewhere).

    The estimate may be low or high: a page is always a full slice of ``per_page`` rows, never
    cut at the estimated end, so no row is hidden by a low estimate."""

    @cached_property
    def count(self) -> int:
        if not isinstance(self.object_list, QuerySet):
            return len(self.object_list)
        return estimate_count(self.object_list)

    def page(self, number: Any) -> Page:
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        return Page(self.object_list[bottom : bottom + self.per_page], number, self)
