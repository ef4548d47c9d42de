"""Bulk actions on the job history: cancel what runs, retry what failed, export.

A bulk action is planned first (which of the chosen releases it would touch, and why the
others are left alone), shown to the user, and applied only on confirmation. Applying calls
the one-release services, so every rule and audit of theirs holds; one audit event per team
then records the bulk action itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet

from portal import permissions
from portal.exceptions import ApplicationError
from portal.models import Release, ReleaseStatus, Team
from portal.services.audit import audit
from portal.services.releases import release_cancel, release_retry

#: Releases one bulk action touches at most (each is a service call, in one request).
BULK_LIMIT = 500


ACTIONS = {
    "cancel": "Cancel",
    "retry": "Retry the failed steps of",
    "export": "Export",
}


@dataclass(frozen=True)
class BulkPlan:
    action: str
    chosen: int
    eligible: QuerySet[Release]
    eligible_count: int

    @property
    def left_alone(self) -> int:
        return self.chosen - self.eligible_count

    @property
    def over_limit(self) -> bool:
        return self.action != "export" and self.eligible_count > BULK_LIMIT

    @property
    def verb(self) -> str:
        return ACTIONS[self.action]


@dataclass
class BulkResult:
    done: list[int] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)


def bulk_plan(*, user: Any, action: str, releases: QuerySet[Release]) -> BulkPlan:
    """Which of ``releases`` (already scoped to the user) the action would touch."""
    if action not in ACTIONS:
        raise ApplicationError(f"Unknown bulk action {action!r}.")
    eligible = releases
    if action != "export":
        eligible = eligible.filter(
            team_id__in=list(permissions.teams_for(user, permissions.OPERATE).values_list("pk", flat=True))
        )
    if action == "cancel":
        eligible = eligible.filter(status__in=[ReleaseStatus.QUEUED, ReleaseStatus.RUNNING])
    elif action == "retry":
        eligible = eligible.filter(status=ReleaseStatus.FAILED)
    return BulkPlan(
        action=action,
        chosen=releases.count(),
        eligible=eligible.order_by("-created_at", "-id"),
        eligible_count=eligible.count(),
    )


def bulk_apply(*, user: Any, plan: BulkPlan) -> BulkResult:
    """Cancel or retry the plan's releases (at most BULK_LIMIT), one service call each."""
    if plan.action not in ("cancel", "retry"):
        raise ApplicationError("Only cancel and retry are applied; export streams a file.")
    result = BulkResult()
    teams: dict[int, list[int]] = {}
    for release in plan.eligible.select_related("mapping__connection", "upload")[:BULK_LIMIT]:
        try:
            if plan.action == "cancel":
                release_cancel(release=release, actor=user)
            else:
                release_retry(release=release, actor=user)
        except ApplicationError as exc:
            result.refused.append((release.pk, exc.message))
            continue
        result.done.append(release.pk)
        teams.setdefault(release.team_id, []).append(release.pk)
    for team in Team.objects.filter(pk__in=list(teams)):
        audit(
            actor=user,
            action=f"release-bulk-{plan.action}",
            obj=team,
            team=team,
            changes={"releases": teams[team.pk], "count": len(teams[team.pk]), "refused": len(result.refused)},
        )
    return result
