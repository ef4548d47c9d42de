"""Every read the pages need, scoped to the user's teams."""

from __future__ import annotations

import base64
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery

from portal import permissions
from portal.models import Connection, Dataset, Mapping, ObjectState, Release, ReleaseStatus, Upload
from portal.selectors import search
from portal.selectors.search import (
    SearchTimeout,
    count_label,
    estimate_count,
    search_is_windowed,
    time_bound,
)


def connection_list(*, user: User, include_archived: bool = False) -> QuerySet[Connection]:
    qs = permissions.scope(user, Connection.objects.select_related("team"))
    return qs if include_archived else qs.exclude(state=ObjectState.ARCHIVED)


def dataset_list(*, user: User, include_archived: bool = False) -> QuerySet[Dataset]:
    qs = permissions.scope(user, Dataset.objects.select_related("team")).annotate(
        mapping_count=Count("mappings", filter=~Q(mappings__state=ObjectState.ARCHIVED), distinct=True)
    )
    return qs if include_archived else qs.exclude(state=ObjectState.ARCHIVED)


def mapping_list(*, user: User, dataset: Dataset | None = None, include_archived: bool = False) -> QuerySet[Mapping]:
    qs = permissions.scope(user, Mapping.objects.select_related("dataset", "connection"))
    if dataset is not None:
        qs = qs.filter(dataset=dataset)
    return qs if include_archived else qs.exclude(state=ObjectState.ARCHIVED)


def upload_list(*, user: User, dataset: Dataset) -> QuerySet[Upload]:
    return permissions.scope(user, Upload.objects.filter(dataset=dataset).select_related("uploaded_by"))


def release_history(*, user: User) -> QuerySet[Release]:
    return permissions.scope(user, Release.objects.select_related("dataset", "mapping", "created_by"))


def failing_mappings(*, user: User, limit: int = 10) -> QuerySet[Mapping]:
    """Live mappings whose latest release failed, with ``latest_release_id`` and ``latest_error``."""
    latest = Release.objects.filter(mapping=OuterRef("pk")).order_by("-created_at", "-id")
    return (
        mapping_list(user=user)
        .annotate(
            latest_status=Subquery(latest.values("status")[:1]),
            latest_release_id=Subquery(latest.values("pk")[:1]),
            latest_error=Subquery(latest.values("error")[:1]),
        )
        .filter(latest_status=ReleaseStatus.FAILED)[:limit]
    )


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_cursor: str | None
    timed_out: bool = False  # the query hit its time bound (history_query.time_bound)
    searched_to: datetime | None = None  # a windowed search looked back to here (history_page)


# A search looks at this many releases per page at most (history_page).
SEARCH_WINDOW_ROWS = 50_000


def encode_cursor(created_at: datetime, pk: int) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{pk}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int] | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, pk = raw.split("|")
        return datetime.fromisoformat(when), int(pk)
    except (ValueError, UnicodeDecodeError):
        return None


def keyset_page(qs: QuerySet[Release], *, cursor: str | None, size: int = 50) -> Page:
    qs = qs.order_by("-created_at", "-id")
    position = decode_cursor(cursor) if cursor else None
    if position:
        when, pk = position
        # created_at <= when bounds the index range scan; the OR breaks ties on id.
        # (The OR alone makes PostgreSQL filter every row from the top of the index.)
        qs = qs.filter(created_at__lte=when).filter(Q(created_at__lt=when) | Q(id__lt=pk))
    rows = list(qs[: size + 1])
    next_cursor = encode_cursor(rows[size - 1].created_at, rows[size - 1].pk) if len(rows) > size else None
    return Page(items=rows[:size], next_cursor=next_cursor)


def history_page(
    qs: QuerySet[Release],
    *,
    cursor: str | None,
    size: int = 50,
    search: str = "",
    window_base: QuerySet[Release] | None = None,
) -> tuple[Page, str]:
    """A keyset page of ``qs``, and a total that counts no rows: exact when the first page holds
    everything, else the planner's estimate (docs/scale.md).

    With a ``search``, the page runs under the search time bound, and, given ``window_base`` (the
    history without the search) and a text search (history_query.search_is_windowed), it looks
    only at the SEARCH_WINDOW_ROWS releases of ``window_base`` before the cursor: a search that
    matches rarely costs one window per page, not the whole table. When the window holds too few
    matches, ``next_cursor`` continues below it and ``searched_to`` tells how far it looked."""
    searching, edge = bool(search.strip()), None
    if searching and window_base is not None and search_is_windowed(search):
        older = _before(window_base.order_by("-created_at", "-id"), cursor)
        edges = list(older.values_list("created_at", flat=True)[SEARCH_WINDOW_ROWS : SEARCH_WINDOW_ROWS + 1])
        if edges:
            edge = edges[0]
            qs = qs.filter(created_at__gt=edge)
    try:
        with time_bound(walk_index=edge is not None) if searching else nullcontext():
            page = keyset_page(qs, cursor=cursor, size=size)
    except SearchTimeout:
        return Page(items=[], next_cursor=None, timed_out=True), ""
    if edge is not None and page.next_cursor is None:
        # Every match newer than the edge is shown: continue with the rows at the edge and older.
        page = Page(items=page.items, next_cursor=encode_cursor(edge, 2**62), searched_to=edge)
    if not cursor and page.next_cursor is None:
        return page, count_label(len(page.items), exact=True)
    return page, count_label(estimate_count(qs))


def _before(qs: QuerySet[Release], cursor: str | None) -> QuerySet[Release]:
    position = decode_cursor(cursor) if cursor else None
    if not position:
        return qs
    when, pk = position
    return qs.filter(created_at__lte=when).filter(Q(created_at__lt=when) | Q(id__lt=pk))


def open_release_count(*, user: User) -> str:
    """Queued and running releases, counted through the (team, status) index and capped:
    '10,000+' rather than a count that grows with a backlog."""
    open_releases = release_history(user=user).filter(status__in=[ReleaseStatus.QUEUED, ReleaseStatus.RUNNING])
    cap = search.CAPPED_COUNT  # read at call time (tests lower it)
    n = open_releases.order_by()[: cap + 1].count()
    return f"{cap:,}+" if n > cap else f"{n:,}"


def mapping_name_suggestion(*, dataset: Dataset, connection: Connection) -> str:
    """A free name for a new mapping: "<dataset> on <connection>", then " (2)", " (3)"..."""
    base = f"{dataset.name} on {connection.name}"
    taken = set(Mapping.objects.filter(dataset=dataset, name__startswith=base).values_list("name", flat=True))
    if base not in taken:
        return base
    n = 2
    while f"{base} ({n})" in taken:
        n += 1
    return f"{base} ({n})"
