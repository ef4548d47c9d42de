"""Team and member pages."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from portal import permissions
from portal.exceptions import ApplicationError
from portal.forms.automation import ChannelForm
from portal.forms.teams import MemberForm, RoleForm
from portal.models import AuditEvent, Membership
from portal.permissions import MANAGE, get_for_user
from portal.requests import AuthenticatedHttpRequest
from portal.services.teams import membership_remove, membership_set


@login_required
def team_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    teams = permissions.teams_for(request.user)
    roles = permissions.roles_of(request.user)
    return render(request, "portal/team_list.html", {"teams": [(team, roles[team.pk]) for team in teams]})


@login_required
def team_detail(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    team = permissions.teams_for(request.user).filter(pk=pk).first()
    if team is None:
        raise Http404("No such team")
    can_manage = permissions.has_role(request.user, team.pk, MANAGE)
    form = MemberForm(request.POST or None)
    if request.method == "POST":
        permissions.require(request.user, team.pk, MANAGE)
        if form.is_valid():
            membership_set(
                team=team, user=form.cleaned_data["username"], role=form.cleaned_data["role"], actor=request.user
            )
            messages.success(
                request,
                f"{form.cleaned_data['username'].get_username()} is now {form.cleaned_data['role']} of {team.name}.",
            )
            return redirect("portal:team-detail", pk=team.pk)
    return render(
        request,
        "portal/team_detail.html",
        {
            "team": team,
            "memberships": team.memberships.select_related("user").order_by("user__username"),
            "form": form,
            "role_form": RoleForm(),
            "can_manage": can_manage,
            "audit": AuditEvent.objects.filter(team=team).select_related("actor")[:20] if can_manage else [],
            "channels": team.notification_channels.filter(mapping__isnull=True),
            "channel_form": _channel_form(),
        },
    )


@login_required
@require_POST
def member_update(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    membership = get_for_user(request.user, Membership.objects.select_related("team", "user"), MANAGE, pk=pk)
    if request.POST.get("remove"):
        try:
            membership_remove(membership=membership, actor=request.user)
            messages.success(request, f"{membership.user.get_username()} removed from {membership.team.name}.")
        except ApplicationError as exc:
            messages.error(request, exc.message)
    else:
        form = RoleForm(request.POST)
        if form.is_valid():
            membership_set(
                team=membership.team, user=membership.user, role=form.cleaned_data["role"], actor=request.user
            )
            messages.success(request, "Role changed.")
    return redirect("portal:team-detail", pk=membership.team_id)


def _channel_form() -> ChannelForm:
    return ChannelForm()
