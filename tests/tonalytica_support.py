"""TONalytica helpers used only by tests (moved out of the connector, which has no use for them)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from connectors.tonalytica.connector import TonalyticaConnector


def target_for_query(connector: TonalyticaConnector, query_id: int, *, max_age: int = -1) -> dict[str, Any]:
    """Target data for a mapping, copied from the live query's declarations (as Browse fills it)."""
    return connector.target_data(connector.get_query(query_id), max_age=max_age)


def stream_result_csv(
    connector: TonalyticaConnector, result_id: int, *, chunk_size: int = 64 * 1024
) -> Iterator[bytes]:
    """A query result as CSV bytes, chunk by chunk, through the connector's HTTP client."""
    return connector.http.stream(f"/api/query_results/{int(result_id)}.csv", chunk_size=chunk_size)
