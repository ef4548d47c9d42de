"""A release's log, fast however long it is: the page shows its tail, pages back by id,
and the full log downloads as a stream (index ``event_release_id``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from portal.models import Release, ReleaseEvent

TAIL = 200


PAGE = 500


DOWNLOAD_CHUNK = 5_000


@dataclass(frozen=True)
class LogPage:
    events: list[ReleaseEvent]  # oldest first
    has_earlier: bool

    @property
    def first_id(self) -> int | None:
        return self.events[0].pk if self.events else None


def log_page(*, release: Release, before: int | None = None, limit: int = TAIL) -> LogPage:
    """The ``limit`` events before event id ``before`` (or the newest), oldest first."""
    qs = ReleaseEvent.objects.filter(release=release)
    if before is not None:
        qs = qs.filter(id__lt=before)
    rows = list(qs.order_by("-id")[: limit + 1])
    return LogPage(events=rows[:limit][::-1], has_earlier=len(rows) > limit)


def log_lines(*, release: Release) -> Iterator[str]:
    """Every event as a text line, oldest first, read in id chunks."""
    last = 0
    while True:
        chunk = list(
            ReleaseEvent.objects.filter(release=release, id__gt=last)
            .order_by("id")
            .values_list("id", "created_at", "level", "message")[:DOWNLOAD_CHUNK]
        )
        if not chunk:
            return
        yield "".join(f"{at.isoformat()} {level.upper():7} {message}\n" for _, at, level, message in chunk)
        last = chunk[-1][0]
