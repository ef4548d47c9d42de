from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django import template
from django.contrib.auth.models import User
from django.template import Context

from portal import permissions

register = template.Library()


@register.simple_tag(takes_context=True)
def can(context: Context, action: str, obj: Any) -> bool:
    """{% can "operate" obj as allowed %}: whether the user holds that role in obj's team."""
    needed = {"view": permissions.VIEW, "operate": permissions.OPERATE, "manage": permissions.MANAGE}[action]
    return permissions.has_role(context["request"].user, obj.team_id, needed)


@register.filter
def duration(value: timedelta | None) -> str:
    if value is None:
        return "—"
    seconds = int(value.total_seconds())
    if seconds < 60:
        return f"{value.total_seconds():.1f} s"
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {seconds:02d} s"


@register.filter
def filesize(value: int | None) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    return str(value)


@register.filter
def with_status_index(table: Any) -> dict[str, Any]:
    """A table (dict or connectors.base.Table) with the index of its status column."""
    data = (
        table
        if isinstance(table, dict)
        else {
            "title": table.title,
            "columns": list(table.columns),
            "rows": [list(r) for r in table.rows],
            "status_column": table.status_column,
        }
    )
    columns = list(data["columns"])
    index = columns.index(data["status_column"]) if data.get("status_column") in columns else -1
    return {**data, "status_index": index}


@register.filter
def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


@register.filter
def is_team_admin(user: User) -> bool:
    """Whether the user administers at least one team (the operations page link); no query once the
    user's roles are loaded for the request."""
    return any(permissions.has_role(user, team_id, permissions.MANAGE) for team_id in permissions.roles_of(user))
