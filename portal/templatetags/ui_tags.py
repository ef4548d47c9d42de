"""Template helpers of the page frame: which top-menu section a page belongs to."""

from __future__ import annotations

import json
from typing import Any

from django import template
from django.http import HttpRequest

register = template.Library()

#: URL name → top-menu section. A release form, an upload, parameters and schedules are
#: reached from a dataset's mapping, so they light "Datasets"; release pages and sets,
#: reached from the history, light "Job history".
SECTIONS: dict[str, str] = {
    "dashboard": "dashboard",
    "release-create": "datasets",
    "upload-create": "datasets",
    "params-edit": "datasets",
    "params-diff": "datasets",
    "schedule-edit": "datasets",
    "release-set-new": "datasets",
    "mapping-channel-add": "datasets",
    "history": "history",
    "release-detail": "history",
    "release-status": "history",
    "release-set-list": "history",
    "release-set-detail": "history",
    "release-set-retry": "history",
    "release-set-retry-one": "history",
    "account": "account",
}
PREFIXES: tuple[tuple[str, str], ...] = (
    ("dataset", "datasets"),
    ("mapping", "datasets"),
    ("connection", "connections"),
    ("browse", "connections"),
    ("release", "history"),
    ("team", "teams"),
    ("member", "teams"),
)


@register.simple_tag(takes_context=True)
def nav_section(context: template.Context) -> str:
    """{% nav_section as section %}: "dashboard", "datasets", "connections", "history", "teams" or ""."""
    request: HttpRequest | None = context.get("request")
    match = getattr(request, "resolver_match", None)
    name = getattr(match, "url_name", None) or ""
    if name in SECTIONS:
        return SECTIONS[name]
    for prefix, section in PREFIXES:
        if name.startswith(prefix):
            return section
    return ""


@register.filter
def param_rows(params: dict[str, Any]) -> list[tuple[str, str]]:
    """A release's parameters as (name, text) rows: lists joined, objects as compact JSON."""

    def text(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, list):
            return ", ".join(text(v) if not isinstance(v, dict | list) else json.dumps(v) for v in value)
        if isinstance(value, dict):
            return json.dumps(value, sort_keys=True)
        return str(value)

    return [(key.replace("_", " "), text(value)) for key, value in sorted((params or {}).items())]
