"""TONalytica's HTTP: Redash's way of refusing a key and of saying why, and the shapes of its answers."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from ..base import AuthenticationError, InvalidResponse, PermanentError
from ..http import HttpClient, default_error_message, safe_url
from .parameters import parameter_declarations

#: What Redash answers, with a 404, to a missing, unknown or disabled API key.
LOGIN_REFUSED = "Couldn't find resource. Please login and try again."


def redash_error_message(response: httpx.Response) -> str:
    """Redash says why in ``{"message"}`` or, when a run is refused, ``{"job": {"error"}}``."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("job"), dict) and body["job"].get("error"):
        return str(body["job"]["error"])[:500]
    return default_error_message(response)


class TonalyticaHttp(HttpClient):
    """HttpClient with Redash's way of refusing a key (a 404)."""

    def raise_for_response(self, method: str, url: str, response: httpx.Response) -> None:
        if response.status_code == 404 and redash_error_message(response) == LOGIN_REFUSED:
            raise AuthenticationError(
                f"TONalytica refused the API key ({method} {safe_url(url)} answered 404: {LOGIN_REFUSED})",
                status_code=404,
            )
        super().raise_for_response(method, url, response)


def check_page(page: int, page_size: int) -> None:
    """Refuse a page or page size Redash would refuse."""
    if page < 1:
        raise PermanentError("page must be 1 or more")
    if not 1 <= page_size <= 250:
        raise PermanentError("page_size must be between 1 and 250 (TONalytica's limit)")


def read_page(answer: Any, summary: Callable[[Mapping[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    if not isinstance(answer, dict) or not isinstance(answer.get("results"), list):
        raise InvalidResponse("TONalytica answered a page without results")
    """A Redash list page as ``{"count", "page", "page_size", "results"}``, each result through ``summary``."""
    return {
        "count": answer.get("count", len(answer["results"])),
        "page": answer.get("page"),
        "page_size": answer.get("page_size"),
        "results": [summary(item) for item in answer["results"] if isinstance(item, dict)],
    }


def query_summary(query: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": query.get("id"),
        "name": query.get("name") or "",
        "description": query.get("description") or "",
        "tags": list(query.get("tags") or []),
        "updated_at": query.get("updated_at"),
        "parameters": parameter_declarations(query),
    }


def dashboard_summary(dashboard: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": dashboard.get("id"),
        "slug": dashboard.get("slug"),
        "name": dashboard.get("name") or "",
        "tags": list(dashboard.get("tags") or []),
        "is_archived": bool(dashboard.get("is_archived")),
        "is_draft": bool(dashboard.get("is_draft")),
        "updated_at": dashboard.get("updated_at"),
    }
