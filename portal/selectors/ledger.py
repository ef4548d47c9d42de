"""Reads for the job history at scale: an estimated total, and the release ledger streamed
in keyset chunks (memory and time per chunk stay flat whatever the number of rows)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery

from portal.models import ParamsVersion, Release, ReleaseStep
from portal.selectors.core import keyset_page

#: Below this many rows the total is counted exactly; above, the planner's estimate is shown.


LEDGER_CHUNK = 1_000


LEDGER_COLUMNS = [
    "id",
    "status",
    "platform",
    "team",
    "dataset",
    "mapping_id",
    "mapping",
    "params_version",
    "trigger",
    "created_by",
    "created_at",
    "started_at",
    "finished_at",
    "seconds",
    "file_name",
    "file_size",
    "file_sha256",
    "params",
    "remote_ids",
    "steps",
    "retry_of",
    "release_set",
    "error",
]


def ledger_queryset(qs: QuerySet[Release]) -> QuerySet[Release]:
    """The releases with what the ledger reads, and the mapping's parameter version then in force."""
    version = ParamsVersion.objects.filter(mapping=OuterRef("mapping_id"), created_at__lte=OuterRef("created_at"))
    return qs.select_related("team", "dataset", "mapping", "upload", "created_by").annotate(
        params_version=Subquery(version.order_by("-number").values("number")[:1])
    )


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def ledger_record(release: Release, steps: list[ReleaseStep]) -> dict[str, Any]:
    upload = release.upload
    return {
        "id": release.pk,
        "status": release.status,
        "platform": release.platform,
        "team": release.team.name,
        "dataset": release.dataset.name,
        "mapping_id": release.mapping_id,
        "mapping": release.mapping.name,
        "params_version": getattr(release, "params_version", None),
        "trigger": release.trigger,
        "created_by": release.created_by.get_username() if release.created_by else None,
        "created_at": _iso(release.created_at),
        "started_at": _iso(release.started_at),
        "finished_at": _iso(release.finished_at),
        "seconds": (release.finished_at - release.started_at).total_seconds()
        if release.started_at and release.finished_at
        else None,
        "file_name": upload.original_name if upload else None,
        "file_size": upload.size if upload else None,
        "file_sha256": upload.sha256 if upload else None,
        "params": release.params,
        "remote_ids": [s.remote_ref for s in steps if s.remote_ref],
        "steps": [
            {
                "name": s.name,
                "status": s.status,
                "remote_ref": s.remote_ref or None,
                "attempts": s.attempts,
                "started_at": _iso(s.started_at),
                "finished_at": _iso(s.finished_at),
                "seconds": (s.finished_at - s.started_at).total_seconds() if s.started_at and s.finished_at else None,
            }
            for s in steps
        ],
        "retry_of": release.retry_of_id,
        "release_set": release.release_set_id,
        "error": release.error,
    }


def iter_ledger(qs: QuerySet[Release], *, chunk: int = LEDGER_CHUNK) -> Iterator[dict[str, Any]]:
    """Ledger records newest first, read by keyset in chunks: two queries per chunk."""
    base = ledger_queryset(qs)
    cursor: str | None = None
    while True:
        page = keyset_page(base, cursor=cursor, size=chunk)
        steps: dict[int, list[ReleaseStep]] = {}
        for step in ReleaseStep.objects.filter(release_id__in=[r.pk for r in page.items]).order_by(
            "release_id", "position"
        ):
            steps.setdefault(step.release_id, []).append(step)
        for release in page.items:
            yield ledger_record(release, steps.get(release.pk, []))
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        value = json.dumps(value)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        # A spreadsheet would run it as a formula (CSV injection): make it text.
        return "'" + value
    return value


def ledger_csv(records: Iterator[dict[str, Any]]) -> Iterator[str]:
    """CSV lines: lists and objects (params, steps, remote ids) as JSON in their cell."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LEDGER_COLUMNS)
    writer.writeheader()
    for record in records:
        writer.writerow({k: _cell(v) for k, v in record.items()})
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def ledger_json(records: Iterator[dict[str, Any]]) -> Iterator[str]:
    """One JSON array, written record by record."""
    yield "["
    first = True
    for record in records:
        yield ("\n" if first else ",\n") + json.dumps(record)
        first = False
    yield "\n]\n"
