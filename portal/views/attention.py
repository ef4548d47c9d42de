"""A step that needs attention: the page's two buttons and the API action (issue 14).

The engine could not learn from the platform whether a mutating call happened. A person
checks the platform and answers: "It happened — continue" or "Send again". Both are
audited (``services.release_step_resolve``)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.api.common import StrictSerializer
from portal.api.releases import ReleaseOutput
from portal.exceptions import ApplicationError
from portal.models import Release, ReleaseStep
from portal.permissions import OPERATE, get_for_user
from portal.requests import AuthenticatedHttpRequest, AuthenticatedRequest
from portal.services import releases as releases_services


@login_required
@require_POST
def release_step_resolve(request: AuthenticatedHttpRequest, pk: int, step_pk: int, decision: str) -> HttpResponse:
    release = get_for_user(request.user, Release.objects.all(), OPERATE, pk=pk)
    step = ReleaseStep.objects.filter(release=release, pk=step_pk).first()
    try:
        if step is None or decision not in ("happened", "send-again"):
            raise ApplicationError("No such step to decide on.")
        releases_services.release_step_resolve(
            release=release, step=step, happened=decision == "happened", actor=request.user
        )
        if decision == "happened":
            messages.success(request, f"{step.label}: marked as done on the platform; the release continues.")
        else:
            messages.warning(request, f"{step.label}: sent again.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect(release)


class ReleaseStepResolve(APIView):
    @extend_schema_serializer(component_name="ReleaseStepResolveInput")
    class InputSerializer(StrictSerializer):
        step = serializers.CharField(help_text="The name of the step that needs attention (as in the release's steps).")
        decision = serializers.ChoiceField(
            choices=["happened", "send-again"],
            help_text="happened: it was done on the platform, continue; send-again: send the request again.",
        )

    @extend_schema(request=InputSerializer, responses={202: ReleaseOutput})
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        release = get_for_user(request.user, Release.objects.all(), OPERATE, pk=pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        step = ReleaseStep.objects.filter(release=release, name=data.validated_data["step"]).first()
        if step is None:
            raise ApplicationError("This release has no such step.")
        release = releases_services.release_step_resolve(
            release=release, step=step, happened=data.validated_data["decision"] == "happened", actor=request.user
        )
        return Response(ReleaseOutput(release, context={"with_steps": True}).data, status=status.HTTP_202_ACCEPTED)
