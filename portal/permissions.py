"""The one place that decides who may see and do what.

A user sees only the objects of their own teams: anything else is a 404, as if it
did not exist. Within a team, roles rank viewer < operator < admin:

- viewer reads;
- operator also uploads, releases and cancels;
- admin also manages connections, datasets, mappings and members.

Views and the REST API call these helpers; nothing else checks roles.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404

from portal.models import Membership, Role, Team

RANK = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}

# What each kind of action needs.
VIEW = Role.VIEWER
OPERATE = Role.OPERATOR
MANAGE = Role.ADMIN


def roles_of(user: User) -> dict[int, str]:
    """team id -> role, computed once per user object (request.user lives one request)."""
    if not user.is_authenticated:
        return {}
    cached: dict[int, str] | None = getattr(user, "_portal_roles", None)
    if cached is None:
        cached = dict(Membership.objects.filter(user=user).values_list("team_id", "role"))
        setattr(user, "_portal_roles", cached)  # noqa: B010  # a cache that lives as long as the request's user
    return cached


def has_role(user: User, team_id: int, needed: str) -> bool:
    role = roles_of(user).get(team_id)
    return role is not None and RANK[Role(role)] >= RANK[Role(needed)]


def teams_for(user: User, needed: str = VIEW) -> QuerySet[Team]:
    ids = [team_id for team_id in roles_of(user) if has_role(user, team_id, needed)]
    return Team.objects.filter(pk__in=ids).order_by("name")


def scope[M: Model](user: User, queryset: QuerySet[M], team_field: str = "team_id") -> QuerySet[M]:
    """Only the rows of the user's teams. Scoped models have a ``team`` foreign key; others
    name the path to it (``team_field="release__team_id"``)."""
    return queryset.filter(**{f"{team_field}__in": list(roles_of(user))})


def require(user: User, team_id: int, needed: str) -> None:
    """PermissionDenied unless the user holds ``needed`` (or more) in the team."""
    if team_id not in roles_of(user):
        raise Http404
    if not has_role(user, team_id, needed):
        raise PermissionDenied(f"This needs the {Role(needed).label.lower()} role in this team.")


def get_for_user[M: Model](
    user: User, queryset: QuerySet[M], needed: str = VIEW, *, team_field: str = "team_id", **lookup: Any
) -> M:
    """The object, if the user may act on it with ``needed``.

    404 when it does not exist or belongs to another team; 403 when the user's role is too low.
    """
    try:
        obj = scope(user, queryset, team_field).get(**lookup)
    except ObjectDoesNotExist:
        raise Http404(f"No such {queryset.model._meta.verbose_name}") from None
    team_id: object = obj
    for part in team_field.split("__"):
        team_id = getattr(team_id, part)
    require(user, team_id, needed)  # type: ignore[arg-type]
    return obj
