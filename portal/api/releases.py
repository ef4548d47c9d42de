"""API: releases and the job history."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.api.common import StrictSerializer
from portal.api.schema import ErrorOutput
from portal.filters import ReleaseFilter
from portal.models import Mapping, Release, Upload
from portal.permissions import OPERATE, VIEW, get_for_user
from portal.requests import AuthenticatedRequest
from portal.selectors.core import release_history
from portal.selectors.search import SearchTimeout, time_bound
from portal.services.idempotency import check_reuse, request_fingerprint
from portal.services.mappings import params_validate
from portal.services.releases import release_cancel, release_create, release_retry


class StepOutput(serializers.Serializer):
    position = serializers.IntegerField()
    name = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]  # a field named like Field.label, as DRF allows
    status = serializers.CharField()
    remote_ref = serializers.CharField()
    remote_status = serializers.CharField()
    message = serializers.CharField()
    error = serializers.CharField()
    attempts = serializers.IntegerField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    output = serializers.DictField()


class ReleaseOutput(serializers.Serializer):
    id = serializers.IntegerField()
    mapping = serializers.IntegerField(source="mapping_id")
    dataset = serializers.IntegerField(source="dataset_id")
    platform = serializers.CharField()
    upload = serializers.IntegerField(source="upload_id", allow_null=True)
    params = serializers.DictField()
    status = serializers.CharField()
    trigger = serializers.CharField()
    error = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    retry_of = serializers.IntegerField(source="retry_of_id", allow_null=True)
    release_set = serializers.IntegerField(source="release_set_id", allow_null=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    steps = serializers.SerializerMethodField()

    @extend_schema_field(StepOutput(many=True))
    def get_steps(self, obj: Release) -> list[dict[str, Any]]:
        if not self.context.get("with_steps"):
            return []
        return list(StepOutput(obj.steps.all(), many=True).data)


class HistoryPagination(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 50
    max_page_size = 200
    page_size_query_param = "page_size"


class ReleaseList(APIView):
    """GET: the job history (cursor pagination, the history page's filters). POST: trigger."""

    pagination_class = HistoryPagination  # also tells the schema that GET answers a page

    @extend_schema_serializer(component_name="ReleaseListInput")
    class InputSerializer(StrictSerializer):
        mapping = serializers.IntegerField()
        upload = serializers.IntegerField(required=False, allow_null=True)
        params = serializers.DictField(required=False, default=dict)

    @extend_schema(
        parameters=[
            OpenApiParameter(n, str, required=False)
            for n in ("q", "platform", "status", "dataset", "user", "since", "until", "cursor")
        ],
        responses=ReleaseOutput(many=True),
    )
    def get(self, request: AuthenticatedRequest) -> Response:
        base = release_history(user=request.user).select_related("created_by")
        filterset = ReleaseFilter(request.query_params, queryset=base, user=request.user)
        if not filterset.is_valid():
            raise serializers.ValidationError(filterset.errors)
        paginator = HistoryPagination()
        try:
            with time_bound() if request.query_params.get("q", "").strip() else nullcontext():
                page: list[Release] | None = paginator.paginate_queryset(filterset.qs, request, view=self)
        except SearchTimeout:
            raise serializers.ValidationError(
                {"q": ["This search takes too long: narrow it with since/until, platform or status."]}
            ) from None
        return paginator.get_paginated_response(ReleaseOutput(page, many=True).data)

    @extend_schema(
        request=InputSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                required=False,
                description="The same key with the same body returns the same release; with another body, 422.",
            )
        ],
        responses={201: ReleaseOutput, 200: ReleaseOutput, 422: ErrorOutput},
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        mapping = get_for_user(
            request.user,
            Mapping.objects.select_related("connection", "dataset"),
            OPERATE,
            pk=data.validated_data["mapping"],
        )
        upload = None
        if data.validated_data.get("upload"):
            upload = get_for_user(request.user, Upload.objects.all(), OPERATE, pk=data.validated_data["upload"])
        key = request.headers.get("Idempotency-Key", "").strip()[:80]
        key = f"api:{request.user.pk}:{key}" if key else ""
        fingerprint = request_fingerprint(data.validated_data) if key else ""
        existing = Release.objects.filter(team=mapping.team, idempotency_key=key).first() if key else None
        if existing is not None:
            check_reuse(stored=existing.request_fingerprint, fingerprint=fingerprint)
            return Response(ReleaseOutput(existing, context={"with_steps": True}).data, status=status.HTTP_200_OK)
        params = params_validate(
            mapping=mapping, data={**(mapping.default_params or {}), **data.validated_data["params"]}
        )
        release = release_create(
            mapping=mapping,
            upload=upload,
            params=params,
            actor=request.user,
            idempotency_key=key,
            trigger="api",
            request_fingerprint=fingerprint,
        )
        return Response(ReleaseOutput(release, context={"with_steps": True}).data, status=status.HTTP_201_CREATED)


class ReleaseDetail(APIView):
    @extend_schema(responses=ReleaseOutput)
    def get(self, request: AuthenticatedRequest, pk: int) -> Response:
        release = get_for_user(request.user, Release.objects.select_related("created_by"), VIEW, pk=pk)
        return Response(ReleaseOutput(release, context={"with_steps": True}).data)


class ReleaseCancel(APIView):
    @extend_schema(request=None, responses={202: ReleaseOutput})
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        release = get_for_user(request.user, Release.objects.all(), OPERATE, pk=pk)
        release = release_cancel(release=release, actor=request.user)
        return Response(ReleaseOutput(release, context={"with_steps": True}).data, status=status.HTTP_202_ACCEPTED)


class ReleaseRetry(APIView):
    @extend_schema_serializer(component_name="ReleaseRetryInput")
    class InputSerializer(StrictSerializer):
        params = serializers.DictField(
            required=False, help_text="Edited parameters; the failed release's when left out."
        )

    @extend_schema(request=InputSerializer, responses={201: ReleaseOutput})
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        release = get_for_user(request.user, Release.objects.select_related("mapping__connection"), OPERATE, pk=pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        params = None
        if "params" in data.validated_data:
            params = params_validate(mapping=release.mapping, data=data.validated_data["params"])
        retry = release_retry(release=release, params=params, actor=request.user)
        return Response(ReleaseOutput(retry, context={"with_steps": True}).data, status=status.HTTP_201_CREATED)
