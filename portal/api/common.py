"""What every API view shares: the error shape, strict input, team resolution."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from pydantic import ValidationError as SchemaError
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from connectors.base import ConnectorError
from portal import permissions
from portal.exceptions import ApplicationError
from portal.models import ObjectState, Team
from portal.requests import AuthenticatedRequest


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Service and schema errors become readable 4xx answers; nothing else leaks."""
    if isinstance(exc, ApplicationError):
        return Response({"detail": exc.message}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, SchemaError):
        errors: dict[str, list[str]] = {}
        for error in exc.errors():
            field = ".".join(str(p) for p in error.get("loc", ())) or "non_field_errors"
            errors.setdefault(field, []).append(error["msg"].removeprefix("Value error, "))
        return Response({"detail": "Invalid input.", "errors": errors}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DjangoValidationError):
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return Response({"detail": "Invalid input.", "errors": errors}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, ConnectorError):
        return Response({"detail": f"The platform answered: {exc.message}"}, status=status.HTTP_502_BAD_GATEWAY)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or "Your role does not allow this.")
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "detail" not in response.data:
        response.data = {"detail": "Invalid input.", "errors": response.data}
    return response


class StrictSerializer(serializers.Serializer):
    """Refuses unknown fields instead of ignoring them (a typo must not pass silently)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


def _team_for_create(request: AuthenticatedRequest, team_id: int | None, needed: str) -> Team:
    teams = permissions.teams_for(request.user, needed)
    if team_id is None:
        if teams.count() != 1:
            raise serializers.ValidationError(
                {"team": ["Name the team (you are in several, or in none with this role)."]}
            )
        return teams.get()
    team = teams.filter(pk=team_id).first()
    if team is None:
        permissions.require(request.user, team_id, needed)  # 404 or 403, as for any object
        raise Http404("No such team")  # require() raised already; this keeps the type checker sure
    return team


class StateInput(StrictSerializer):
    state = serializers.ChoiceField(choices=ObjectState.values)
