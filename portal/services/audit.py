"""The audit trail: one row per change, never a secret value (changed field names only)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from portal.models import AuditEvent, Team


def audit(
    *, actor: User | None, action: str, obj: Any, changes: dict[str, Any] | None = None, team: Team | None = None
) -> None:
    """Record who did what. ``changes`` must never hold a secret value: callers pass names only."""
    AuditEvent.objects.create(
        team=team or getattr(obj, "team", None),
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        action=action,
        object_type=obj._meta.model_name,
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        changes=changes or {},
    )
