"""API: connections."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from connectors.registry import CONNECTORS
from portal.api.common import StateInput, StrictSerializer, _team_for_create
from portal.crypto import UNREADABLE_CREDENTIALS, InvalidToken, decrypt_json
from portal.models import Connection
from portal.permissions import MANAGE, OPERATE, VIEW, get_for_user
from portal.requests import AuthenticatedRequest
from portal.selectors.core import connection_list
from portal.services.connections import (
    connection_create,
    connection_request_test,
    connection_set_state,
    connection_update,
)


class ConnectionOutput(serializers.Serializer):
    id = serializers.IntegerField()
    team = serializers.IntegerField(source="team_id")
    platform = serializers.CharField()
    name = serializers.CharField()
    base_url = serializers.CharField()
    state = serializers.CharField()
    credentials = serializers.SerializerMethodField(help_text="Non-secret fields only; secrets are write-only.")
    secrets_set = serializers.SerializerMethodField(
        help_text="Names of the secrets stored; null when the stored credentials cannot be decrypted."
    )
    credentials_error = serializers.SerializerMethodField(help_text="Why the stored credentials cannot be read.")
    last_test_at = serializers.DateTimeField(allow_null=True)
    last_test_ok = serializers.BooleanField(allow_null=True)
    last_test_message = serializers.CharField()
    test_pending = serializers.BooleanField()

    def _stored(self, obj: Connection) -> dict[str, Any]:
        try:
            return decrypt_json(obj.credentials_encrypted)
        except InvalidToken:
            return {}

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_credentials(self, obj: Connection) -> dict[str, Any]:
        secret = set(obj.connector_class.secret_fields())
        return {k: v for k, v in self._stored(obj).items() if k not in secret}

    @extend_schema_field(serializers.ListField(child=serializers.CharField(), allow_null=True))
    def get_secrets_set(self, obj: Connection) -> list[str] | None:
        if self.get_credentials_error(obj):
            return None  # unknown, not empty
        stored = self._stored(obj)
        return [name for name in obj.connector_class.secret_fields() if stored.get(name)]

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_credentials_error(self, obj: Connection) -> str | None:
        try:
            decrypt_json(obj.credentials_encrypted)
        except InvalidToken:
            return UNREADABLE_CREDENTIALS
        return None


class ConnectionList(APIView):
    @extend_schema_serializer(component_name="ConnectionListInput")
    class InputSerializer(StrictSerializer):
        team = serializers.IntegerField(required=False)
        platform = serializers.ChoiceField(choices=list(CONNECTORS))
        name = serializers.CharField(max_length=100)
        base_url = serializers.URLField(max_length=500)
        credentials = serializers.DictField(help_text="The platform's credential fields; secrets are never returned.")

    @extend_schema(responses=ConnectionOutput(many=True))
    def get(self, request: AuthenticatedRequest) -> Response:
        return Response(ConnectionOutput(connection_list(user=request.user, include_archived=True), many=True).data)

    @extend_schema(request=InputSerializer, responses={201: ConnectionOutput})
    def post(self, request: AuthenticatedRequest) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        team = _team_for_create(request, data.validated_data.get("team"), MANAGE)
        connection = connection_create(
            team=team,
            platform=data.validated_data["platform"],
            name=data.validated_data["name"],
            base_url=data.validated_data["base_url"],
            credentials=data.validated_data["credentials"],
            actor=request.user,
        )
        connection_request_test(connection=connection, actor=request.user)
        return Response(ConnectionOutput(connection).data, status=status.HTTP_201_CREATED)


class ConnectionDetail(APIView):
    @extend_schema_serializer(component_name="ConnectionDetailInput")
    class InputSerializer(StrictSerializer):
        name = serializers.CharField(max_length=100, required=False)
        base_url = serializers.URLField(max_length=500, required=False)
        credentials = serializers.DictField(required=False, help_text="Secrets left out keep their stored value.")

    @extend_schema(responses=ConnectionOutput)
    def get(self, request: AuthenticatedRequest, pk: int) -> Response:
        return Response(ConnectionOutput(get_for_user(request.user, Connection.objects.all(), VIEW, pk=pk)).data)

    @extend_schema(request=InputSerializer, responses=ConnectionOutput)
    def patch(self, request: AuthenticatedRequest, pk: int) -> Response:
        connection = get_for_user(request.user, Connection.objects.all(), MANAGE, pk=pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        public = ConnectionOutput().get_credentials(connection)
        connection = connection_update(
            connection=connection,
            name=data.validated_data.get("name", connection.name),
            base_url=data.validated_data.get("base_url", connection.base_url),
            credentials={**public, **data.validated_data.get("credentials", {})},
            actor=request.user,
        )
        return Response(ConnectionOutput(connection).data)


class ConnectionTest(APIView):
    @extend_schema(request=None, responses={202: ConnectionOutput})
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        connection = get_for_user(request.user, Connection.objects.all(), OPERATE, pk=pk)
        connection = connection_request_test(connection=connection, actor=request.user)
        return Response(ConnectionOutput(connection).data, status=status.HTTP_202_ACCEPTED)


class ConnectionState(APIView):
    @extend_schema(request=StateInput, responses=ConnectionOutput)
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        connection = get_for_user(request.user, Connection.objects.all(), MANAGE, pk=pk)
        data = StateInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(
            ConnectionOutput(
                connection_set_state(connection=connection, state=data.validated_data["state"], actor=request.user)
            ).data
        )


class ConnectionBrowse(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("q", str, required=False)],
        responses=inline_serializer(
            "Choice",
            {
                "value": serializers.CharField(),
                "label": serializers.CharField(),
                "detail": serializers.CharField(),
                "fill": serializers.DictField(),
            },
            many=True,
        ),
    )
    def get(self, request: AuthenticatedRequest, pk: int, field: str) -> Response:
        connection = get_for_user(request.user, Connection.objects.all(), MANAGE, pk=pk)
        info = connection.connector_class.Target.model_fields.get(field)
        if info is None or not (info.json_schema_extra or {}).get("browse"):
            raise Http404("Nothing to browse for this field")
        values = {k: v for k, v in request.query_params.items() if k != "q"}
        with connection.connector(interactive=True) as connector:
            choices = connector.browse(field, query=request.query_params.get("q", ""), values=values)
        return Response(
            [{"value": c.value, "label": c.label, "detail": c.detail, "fill": dict(c.fill)} for c in choices]
        )
