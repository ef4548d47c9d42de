"""Writes on team membership."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction

from portal.exceptions import ApplicationError
from portal.models import Membership, Role, Team
from portal.services.audit import audit


@transaction.atomic
def membership_set(*, team: Team, user: User, role: str, actor: User) -> Membership:
    membership, created = Membership.objects.update_or_create(team=team, user=user, defaults={"role": Role(role)})
    audit(
        actor=actor,
        action="member-added" if created else "member-role-changed",
        obj=membership,
        changes={"user": user.get_username(), "role": role},
        team=team,
    )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor: User) -> None:
    team = membership.team
    if (
        membership.role == Role.ADMIN
        and not team.memberships.filter(role=Role.ADMIN).exclude(pk=membership.pk).exists()
    ):
        raise ApplicationError("A team needs at least one admin: make someone else admin first.")
    audit(
        actor=actor,
        action="member-removed",
        obj=membership,
        changes={"user": membership.user.get_username()},
        team=team,
    )
    membership.delete()
