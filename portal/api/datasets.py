"""API: datasets."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.api.common import StrictSerializer, _team_for_create
from portal.models import Dataset
from portal.permissions import MANAGE, VIEW, get_for_user
from portal.requests import AuthenticatedRequest
from portal.selectors.core import dataset_list
from portal.services.datasets import dataset_create


class DatasetOutput(serializers.Serializer):
    id = serializers.IntegerField()
    team = serializers.IntegerField(source="team_id")
    name = serializers.CharField()
    description = serializers.CharField()
    state = serializers.CharField()


class DatasetList(APIView):
    @extend_schema_serializer(component_name="DatasetListInput")
    class InputSerializer(StrictSerializer):
        team = serializers.IntegerField(required=False)
        name = serializers.CharField(max_length=100)
        description = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(responses=DatasetOutput(many=True))
    def get(self, request: AuthenticatedRequest) -> Response:
        return Response(DatasetOutput(dataset_list(user=request.user, include_archived=True), many=True).data)

    @extend_schema(request=InputSerializer, responses={201: DatasetOutput})
    def post(self, request: AuthenticatedRequest) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        team = _team_for_create(request, data.validated_data.get("team"), MANAGE)
        dataset = dataset_create(
            team=team,
            name=data.validated_data["name"],
            description=data.validated_data["description"],
            actor=request.user,
        )
        return Response(DatasetOutput(dataset).data, status=status.HTTP_201_CREATED)


class DatasetDetail(APIView):
    @extend_schema(responses=DatasetOutput)
    def get(self, request: AuthenticatedRequest, pk: int) -> Response:
        return Response(DatasetOutput(get_for_user(request.user, Dataset.objects.all(), VIEW, pk=pk)).data)
