"""The history's filters, search and totals, written so that an index serves each of them
at millions of releases (docs/scale.md).

- Dates are half-open ranges on ``created_at`` in the user's time zone, never ``created_at::date``.
- Search never joins the steps over the whole table: an exact remote reference is looked up
  first (and wins), names are matched in the small dataset and mapping tables, and the error
  text through a trigram index (PostgreSQL) or LIKE (SQLite).
- Totals are the planner's estimate or a capped count, never ``COUNT(*)`` over the history."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from typing import Any

from django.core.cache import cache
from django.db import DatabaseError, connection, transaction
from django.db.models import Model, Q, QuerySet
from django.utils import timezone

from portal.models import Dataset, Mapping, Release, ReleaseStep

# Trigram indexes cannot serve fewer than three characters; shorter words match names only.
MIN_TEXT_SEARCH = 3


# Names and prefixes matched before filtering the releases: far more would not be a search.
MAX_NAME_MATCHES = 500


MAX_REF_MATCHES = 200


CAPPED_COUNT = 10_000


# A search that the indexes cannot make cheap is cut off rather than hold a backend for a minute.
SEARCH_TIMEOUT_MS = 3_000


ESTIMATE_SECONDS = 60


def day_start(day: date, tz: Any = None) -> datetime:
    """Midnight at the start of ``day`` in ``tz`` (the current time zone by default), as an aware datetime."""
    return timezone.make_aware(datetime.combine(day, time.min), tz or timezone.get_current_timezone())


def created_since(queryset: QuerySet[Release], day: date | None) -> QuerySet[Release]:
    """Releases created on ``day`` or later: ``created_at >= start of day``."""
    return queryset if day is None else queryset.filter(created_at__gte=day_start(day))


def created_until(queryset: QuerySet[Release], day: date | None) -> QuerySet[Release]:
    """Releases created on ``day`` or earlier: ``created_at < start of the next day``."""
    return queryset if day is None else queryset.filter(created_at__lt=day_start(day + timedelta(days=1)))


def release_search(queryset: QuerySet[Release], value: str) -> QuerySet[Release]:
    """Releases whose dataset or mapping name or error contains ``value``, or whose step has
    that remote reference (prefix), or whose number it is. An exact remote reference wins:
    only its releases are returned."""
    value = value.strip()
    if not value:
        return queryset
    # order_by(): the steps' default ordering would join and sort the releases.
    steps = ReleaseStep.objects.order_by()
    exact = list(steps.filter(remote_ref=value).values_list("release_id", flat=True)[:MAX_REF_MATCHES])
    if exact:
        return queryset.filter(pk__in=exact)
    match = Q(pk__in=[])
    if value.lstrip("#").isdigit():
        match |= Q(pk=int(value.lstrip("#")))
    datasets = _ids(Dataset.objects.filter(name__icontains=value))
    mappings = _ids(Mapping.objects.filter(name__icontains=value))
    if datasets:
        match |= Q(dataset_id__in=datasets)
    if mappings:
        match |= Q(mapping_id__in=mappings)
    if len(value) >= MIN_TEXT_SEARCH:
        refs = list(steps.filter(remote_ref__startswith=value).values_list("release_id", flat=True)[:MAX_REF_MATCHES])
        if refs:
            match |= Q(pk__in=refs)
        match |= Q(error__icontains=value)
    return queryset.filter(match)


def search_is_windowed(value: str) -> bool:
    """Whether ``release_search(value)`` matches text (the error), whose cost depends on how rare
    the text is: such a search is read one window of releases at a time (selectors.history_page).
    An exact remote reference, a release number or a short word only reads indexes."""
    value = value.strip()
    if len(value) < MIN_TEXT_SEARCH or value.lstrip("#").isdigit():
        return False
    return not ReleaseStep.objects.order_by().filter(remote_ref=value).exists()


def _ids(queryset: QuerySet[Any]) -> list[int]:
    return list(queryset.order_by().values_list("pk", flat=True)[:MAX_NAME_MATCHES])


class SearchTimeout(Exception):
    """The query ran past its time bound; the page asks for a narrower search."""


@contextmanager
def time_bound(milliseconds: int = SEARCH_TIMEOUT_MS, *, walk_index: bool = False) -> Iterator[None]:
    """Run the block's queries with a statement timeout (PostgreSQL); raises SearchTimeout when
    it is hit. Elsewhere the block runs unbounded.

    ``walk_index``: no bitmap scans, for a query already bounded to a window of the history
    index: walking the window costs its size, where a trigram bitmap for a text made of common
    words ("job-1") would recheck every row that shares them."""
    if connection.vendor != "postgresql":
        yield
        return
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL statement_timeout = %s", [int(milliseconds)])
                if walk_index:
                    cursor.execute("SET LOCAL enable_bitmapscan = off")
            yield
            with connection.cursor() as cursor:  # the rest of an enclosing transaction runs unbounded
                cursor.execute("SET LOCAL statement_timeout TO DEFAULT")
                cursor.execute("SET LOCAL enable_bitmapscan TO DEFAULT")
    except DatabaseError as exc:
        if getattr(getattr(exc, "__cause__", None), "sqlstate", None) == "57014":  # query_canceled
            raise SearchTimeout from exc
        raise


def estimate_count(queryset: QuerySet[Any]) -> int:
    """How many rows ``queryset`` has, from the planner's statistics on PostgreSQL (no rows are
    read), or counted up to CAPPED_COUNT + 1 elsewhere."""
    if connection.vendor == "postgresql":
        sql, params = queryset.order_by().query.sql_with_params()
        # The same filters give the same estimate for a minute: no planning on every page view.
        key = "portal:estimate:" + hashlib.sha256(repr((sql, params)).encode()).hexdigest()
        cached = cache.get(key)
        if cached is not None:
            return int(cached)
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            plan = cursor.fetchone()[0]
        if isinstance(plan, str):
            plan = json.loads(plan)
        estimate = int(plan[0]["Plan"]["Plan Rows"])
        cache.set(key, estimate, ESTIMATE_SECONDS)
        return estimate
    return int(queryset.order_by()[: CAPPED_COUNT + 1].count())


def table_estimate(model: type[Model]) -> int:
    """The whole table's row count as PostgreSQL last measured it (ANALYZE/autovacuum)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [model._meta.db_table])
            row = cursor.fetchone()
        if row and row[0] >= 0:
            return int(row[0])
    return int(model._default_manager.order_by()[: CAPPED_COUNT + 1].count())


def count_label(n: int, *, exact: bool = False) -> str:
    """'1,234' when exact; otherwise 'about 4.9 M', 'about 12 k' or '10,000+' for a capped count."""
    if exact:
        return f"{n:,}"
    if connection.vendor != "postgresql":
        return f"{CAPPED_COUNT:,}+" if n > CAPPED_COUNT else f"{n:,}"
    if n >= 1_000_000:
        return f"about {n / 1_000_000:.1f} M"
    if n >= 10_000:
        return f"about {n // 1000:,} k"
    if n >= 100:
        return f"about {round(n, -1 if n < 1000 else -2):,}"
    return f"about {n:,}"
