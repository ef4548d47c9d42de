"""What the portal shows of TONalytica: parameter summaries, step tables, result file names (no network)."""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from ..base import Table
from .parameters import is_blank

#: Longest cell text shown in a preview table (a JSON column can hold kilobytes).
PREVIEW_CELL_CHARS = 200
#: format -> (button label, Content-Type) of the fetched result's downloads.
DOWNLOAD_FORMATS: dict[str, tuple[str, str]] = {
    "csv": ("CSV", "text/csv; charset=utf-8"),
    "json": ("JSON", "application/json"),
}


def show_value(value: Any) -> str | None:
    """A parameter value as one short line: a range as ``start → end``, a list joined."""
    if value is None or value == "":
        return None
    if isinstance(value, Mapping) and set(value) == {"start", "end"}:
        return f"{value['start']} → {value['end']}"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def parameter_summary(declared: Iterable[Mapping[str, Any]], defaults: Mapping[str, Any]) -> str:
    """One line describing a query's parameters for a browse choice.

    ``defaults`` are the usable (typed) ones from ``TonalyticaConnector.target_data``: a
    declared value missing there could not be used, so the parameter is said required.
    """
    parts = []
    for p in declared:
        kind = "dropdown of " + ", ".join(p["enum_options"]) if p["type"] == "enum" and p["enum_options"] else p["type"]
        if p["name"] in defaults:
            value = f"default {show_value(defaults[p['name']])}"
        elif not is_blank(p["type"], p["value"]):
            value = f"required: its saved default {show_value(p['value'])!r} cannot be used"
        else:
            value = "required"
        parts.append(f"{p['name']} ({kind}, {value})")
    return "parameters: " + "; ".join(parts) if parts else "no parameters"


def preview_cell(value: Any) -> Any:
    """A result cell as the preview table shows it: short, JSON for nested values."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= PREVIEW_CELL_CHARS else text[: PREVIEW_CELL_CHARS - 1] + "…"


def result_filename(query_name: str, query_id: Any, result_id: int, fmt: str) -> str:
    """``<query name>_<result id>.<fmt>``, in ASCII letters, digits, ``.``, ``_`` and ``-`` only.

    The portal puts it in a quoted Content-Disposition header: no quote, slash or non-ASCII
    character may reach it. A name with nothing left falls back to ``query_<id>``.
    """
    ascii_name = unicodedata.normalize("NFKD", query_name or "").encode("ascii", "ignore").decode()
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_name).strip("._-")[:100]
    if not stem:
        stem = f"query_{int(query_id)}" if str(query_id or "").isdigit() else "query_result"
    return f"{stem}_{int(result_id)}.{fmt}"


def job_tables(output: Mapping[str, Any]) -> list[Table]:
    result_id = output.get("query_result_id")
    if output.get("cached"):
        return [Table("Cached result", ["Query result", "Retrieved at"], [[result_id, output.get("retrieved_at")]])]
    if not output.get("job_id"):
        return []
    started = output.get("job_started_at")
    started_text = (
        dt.datetime.fromtimestamp(float(started), dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if started else None
    )
    status = output.get("job_status") or ("finished" if result_id is not None else None)
    return [
        Table(
            "Query job",
            ["Job", "Status", "Started", "Query result"],
            [[output["job_id"], status, started_text, result_id]],
            status_column="Status",
        )
    ]


def preview_tables(output: Mapping[str, Any]) -> list[Table]:
    preview = output.get("preview")
    if not isinstance(preview, list):
        return []
    rows = [row for row in preview if isinstance(row, Mapping)]
    columns = [str(c) for c in output.get("columns") or (list(rows[0]) if rows else [])]
    total = output.get("row_count", len(rows))
    if not rows:
        title = "The query returned no rows"
    elif len(rows) >= total:
        title = f"Result: all {total} row{'s' if total != 1 else ''}"
    else:
        title = f"Preview: the first {len(rows)} of {total} rows"
    return [Table(title, columns, [[preview_cell(row.get(c)) for c in columns] for row in rows])]
