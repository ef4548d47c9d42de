"""Template helpers of the page frame: which top-menu section a page belongs to."""

from __future__ import annotations

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
