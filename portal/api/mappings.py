"""API: mappings and platform actions."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from connectors.base import Action
from portal import permissions
from portal.api.common import StateInput, StrictSerializer
from portal.models import ActionRun, Connection, Dataset, Mapping
from portal.permissions import MANAGE, OPERATE, VIEW, get_for_user
from portal.requests import AuthenticatedRequest
from portal.selectors.core import mapping_list
from portal.services.actions import action_read, action_request, tables_as_json
from portal.services.mappings import mapping_create, mapping_set_state, target_validate
from portal.services.target_checks import mapping_target_check


class MappingOutput(serializers.Serializer):
    id = serializers.IntegerField()
    team = serializers.IntegerField(source="team_id")
    dataset = serializers.IntegerField(source="dataset_id")
    connection = serializers.IntegerField(source="connection_id")
    platform = serializers.CharField()
    name = serializers.CharField()
    target = serializers.DictField()
    target_label = serializers.CharField()
    default_params = serializers.DictField()
    state = serializers.CharField()
    remote_state = serializers.CharField()


class MappingList(APIView):
    @extend_schema_serializer(component_name="MappingListInput")
    class InputSerializer(StrictSerializer):
        dataset = serializers.IntegerField()
        connection = serializers.IntegerField()
        name = serializers.CharField(max_length=100)
        target = serializers.DictField()

    @extend_schema(responses=MappingOutput(many=True))
    def get(self, request: AuthenticatedRequest) -> Response:
        return Response(MappingOutput(mapping_list(user=request.user, include_archived=True), many=True).data)

    @extend_schema(request=InputSerializer, responses={201: MappingOutput})
    def post(self, request: AuthenticatedRequest) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        dataset = get_for_user(request.user, Dataset.objects.all(), MANAGE, pk=data.validated_data["dataset"])
        connection = get_for_user(request.user, Connection.objects.all(), MANAGE, pk=data.validated_data["connection"])
        target = target_validate(connection=connection, data=data.validated_data["target"])
        if problems := mapping_target_check(connection=connection, target=target).problems:
            raise serializers.ValidationError({"target": problems})
        mapping = mapping_create(
            dataset=dataset, connection=connection, name=data.validated_data["name"], target=target, actor=request.user
        )
        return Response(MappingOutput(mapping).data, status=status.HTTP_201_CREATED)


class MappingDetail(APIView):
    @extend_schema(responses=MappingOutput)
    def get(self, request: AuthenticatedRequest, pk: int) -> Response:
        return Response(
            MappingOutput(get_for_user(request.user, Mapping.objects.select_related("connection"), VIEW, pk=pk)).data
        )


class MappingState(APIView):
    @extend_schema(request=StateInput, responses=MappingOutput)
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        mapping = get_for_user(request.user, Mapping.objects.select_related("connection"), MANAGE, pk=pk)
        data = StateInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(
            MappingOutput(
                mapping_set_state(mapping=mapping, state=data.validated_data["state"], actor=request.user)
            ).data
        )


class ActionOutput(serializers.Serializer):
    message = serializers.CharField(required=False)
    tables = serializers.ListField(child=serializers.DictField(), required=False)
    run = serializers.IntegerField(
        required=False, help_text="For an action that changes the platform: poll /api/v1/action-runs/<run>/"
    )


class MappingAction(APIView):
    """A platform action of a mapping (last runs, reset workflow...). GET reads, POST changes."""

    def _resolve(self, request: AuthenticatedRequest, pk: int, name: str) -> tuple[Mapping, Action]:
        mapping = get_for_user(request.user, Mapping.objects.select_related("connection"), VIEW, pk=pk)
        connector_class = mapping.connection.connector_class
        matches = [a for a in connector_class.actions_for("mapping", mapping.target_schema()) if a.name == name]
        if not matches:
            raise Http404("No such action for this mapping")
        action = matches[0]
        permissions.require(
            request.user, mapping.team_id, {"view": VIEW, "operate": OPERATE, "manage": MANAGE}[action.role]
        )
        return mapping, action

    @extend_schema(
        parameters=[OpenApiParameter("params", OpenApiTypes.OBJECT, style="form", explode=True, required=False)],
        responses=ActionOutput,
    )
    def get(self, request: AuthenticatedRequest, pk: int, name: str) -> Response:
        mapping, action = self._resolve(request, pk, name)
        if action.mutating:
            raise exceptions.MethodNotAllowed("GET", detail="This action changes the platform: POST it.")
        params = (
            action.params.model_validate({k: v for k, v in request.query_params.items()}) if action.params else None
        )
        result = action_read(connection=mapping.connection, mapping=mapping, action=action, params=params)
        return Response({"message": result.message, "tables": tables_as_json(result.tables)})

    @extend_schema(request=OpenApiTypes.OBJECT, responses={202: ActionOutput})
    def post(self, request: AuthenticatedRequest, pk: int, name: str) -> Response:
        mapping, action = self._resolve(request, pk, name)
        if not action.mutating:
            raise exceptions.MethodNotAllowed("POST", detail="This action only reads: GET it.")
        body = request.data if isinstance(request.data, dict) else {}
        params = action.params.model_validate(body) if action.params else None
        run = action_request(
            connection=mapping.connection, mapping=mapping, action=action, params=params, actor=request.user
        )
        return Response({"run": run.pk, "message": "Sent to a worker."}, status=status.HTTP_202_ACCEPTED)


class ActionRunDetail(APIView):
    @extend_schema(
        responses=inline_serializer(
            "ActionRun",
            {
                "id": serializers.IntegerField(),
                "action": serializers.CharField(),
                "status": serializers.CharField(),
                "message": serializers.CharField(),
                "tables": serializers.ListField(child=serializers.DictField()),
            },
        )
    )
    def get(self, request: AuthenticatedRequest, pk: int) -> Response:
        run = get_for_user(request.user, ActionRun.objects.all(), VIEW, pk=pk)
        return Response(
            {"id": run.pk, "action": run.action, "status": run.status, "message": run.message, "tables": run.tables}
        )
