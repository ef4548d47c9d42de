"""API: release sets."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from portal import permissions
from portal.api.common import StrictSerializer
from portal.api.releases import ReleaseOutput
from portal.api.schema import ErrorOutput
from portal.models import Dataset, Mapping, Release, ReleaseSet, Upload
from portal.permissions import OPERATE, VIEW, get_for_user
from portal.requests import AuthenticatedRequest
from portal.services.idempotency import check_reuse, request_fingerprint
from portal.services.release_sets import release_set_cancel, release_set_create, release_set_retry


class ReleaseSetOutput(serializers.Serializer):
    id = serializers.IntegerField()
    dataset = serializers.IntegerField(source="dataset_id")
    upload = serializers.IntegerField(source="upload_id", allow_null=True)
    created_at = serializers.DateTimeField()
    status = serializers.SerializerMethodField()
    releases = serializers.SerializerMethodField(help_text="The latest attempt of each mapping, with its steps.")

    @extend_schema_field(serializers.ChoiceField(choices=["running", "succeeded", "partial", "failed", "cancelled"]))
    def get_status(self, obj: Any) -> str:
        return ReleaseSet.status_of(obj.current_releases())

    @extend_schema_field(ReleaseOutput(many=True))
    def get_releases(self, obj: Any) -> list[dict[str, Any]]:
        return list(ReleaseOutput(obj.current_releases(), many=True, context={"with_steps": True}).data)


class ReleaseSetList(APIView):
    @extend_schema_serializer(component_name="ReleaseSetCreateInput")
    class InputSerializer(StrictSerializer):
        dataset = serializers.IntegerField()
        mappings = serializers.ListField(child=serializers.IntegerField(), min_length=1)
        upload = serializers.IntegerField(required=False, allow_null=True)
        params = serializers.DictField(
            required=False,
            default=dict,
            help_text="Per mapping id: its parameters (default: the mapping's saved ones).",
        )

    @extend_schema(responses=ReleaseSetOutput(many=True))
    def get(self, request: AuthenticatedRequest) -> Response:
        releases = Release.objects.select_related("mapping__connection", "created_by").prefetch_related("steps")
        sets = permissions.scope(
            request.user, ReleaseSet.objects.prefetch_related(Prefetch("releases", queryset=releases))
        )[:50]
        return Response(ReleaseSetOutput(sets, many=True).data)

    @extend_schema(
        request=InputSerializer,
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)],
        responses={201: ReleaseSetOutput, 422: ErrorOutput},
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        dataset = get_for_user(request.user, Dataset.objects.all(), OPERATE, pk=data.validated_data["dataset"])
        mappings = [
            get_for_user(request.user, Mapping.objects.select_related("connection"), OPERATE, pk=pk)
            for pk in data.validated_data["mappings"]
        ]
        upload = (
            get_for_user(request.user, Upload.objects.all(), OPERATE, pk=data.validated_data["upload"])
            if data.validated_data.get("upload")
            else None
        )
        try:
            params = {int(k): v for k, v in data.validated_data["params"].items()}
        except ValueError:
            raise serializers.ValidationError({"params": ["Keys are mapping ids."]}) from None
        key = request.headers.get("Idempotency-Key", "").strip()[:80]
        fingerprint = request_fingerprint(data.validated_data) if key else ""
        if key and (
            seen := ReleaseSet.objects.filter(team=dataset.team, idempotency_key=f"api-set:{request.user.pk}:{key}")
            .values_list("request_fingerprint", flat=True)
            .first()
        ):
            check_reuse(stored=seen, fingerprint=fingerprint)
        release_set = release_set_create(
            dataset=dataset,
            mappings=mappings,
            upload=upload,
            actor=request.user,
            params=params,
            idempotency_key=f"api-set:{request.user.pk}:{key}" if key else "",
        )
        if fingerprint and not release_set.request_fingerprint:
            ReleaseSet.objects.filter(pk=release_set.pk).update(request_fingerprint=fingerprint)
        return Response(ReleaseSetOutput(release_set).data, status=status.HTTP_201_CREATED)


class ReleaseSetDetail(APIView):
    @extend_schema(responses=ReleaseSetOutput)
    def get(self, request: AuthenticatedRequest, pk: int) -> Response:
        return Response(ReleaseSetOutput(get_for_user(request.user, ReleaseSet.objects.all(), VIEW, pk=pk)).data)


class ReleaseSetCancel(APIView):
    @extend_schema(request=None, responses={202: ReleaseSetOutput})
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        release_set = get_for_user(request.user, ReleaseSet.objects.all(), OPERATE, pk=pk)
        release_set_cancel(release_set=release_set, actor=request.user)
        return Response(ReleaseSetOutput(release_set).data, status=status.HTTP_202_ACCEPTED)


class ReleaseSetRetry(APIView):
    @extend_schema_serializer(component_name="ReleaseSetRetryInput")
    class InputSerializer(StrictSerializer):
        mappings = serializers.ListField(
            child=serializers.IntegerField(), required=False, help_text="Only these cells (default: every failed one)."
        )
        params = serializers.DictField(required=False, default=dict, help_text="Per mapping id: edited parameters.")

    @extend_schema(request=InputSerializer, responses={201: ReleaseSetOutput})
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        release_set = get_for_user(request.user, ReleaseSet.objects.all(), OPERATE, pk=pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            params = {int(k): v for k, v in data.validated_data["params"].items()}
        except ValueError:
            raise serializers.ValidationError({"params": ["Keys are mapping ids."]}) from None
        only = set(data.validated_data["mappings"]) if data.validated_data.get("mappings") else None
        release_set_retry(release_set=release_set, actor=request.user, params=params, only=only)
        return Response(ReleaseSetOutput(release_set).data, status=status.HTTP_201_CREATED)
