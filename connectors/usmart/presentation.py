"""What the portal shows of uSmart: sizes and pipeline tables (no network)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..base import Table


def bytes_text(size: Any) -> str:
    return f"{size:,} bytes" if isinstance(size, int) and not isinstance(size, bool) else ""


def pipeline_table(pipeline: Mapping[str, Any], *, title: str) -> Table:
    """One pipeline (as ``view_dataset`` or a pipeline step's output has it) with its status."""
    return Table(
        title,
        ["Output pipeline", "Type", "Status", "Run", "Message"],
        [
            [
                pipeline.get("name"),
                pipeline.get("pipeline_id"),
                pipeline.get("status") or "—",
                pipeline.get("process_id"),
                pipeline.get("status_message"),
            ]
        ],
        status_column="Status",
    )
