"""REST API of the release ledger: one release's record, or the filtered history streamed."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.filters import ReleaseFilter
from portal.models import Release
from portal.permissions import VIEW, get_for_user
from portal.requests import AuthenticatedRequest
from portal.selectors.core import release_history
from portal.selectors.ledger import iter_ledger, ledger_queryset, ledger_record
from portal.views.history import ledger_response

FILTERS = [
    OpenApiParameter(name, str, OpenApiParameter.QUERY, required=False)
    for name in ("q", "platform", "status", "dataset", "user", "since", "until")
]


class ReleaseLedger(APIView):
    @extend_schema(
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="The release's ledger record.")},
        description="Who released what: user, file sha256, mapping and parameter version, parameters, "
        "remote ids and per-step timings.",
    )
    def get(self, request: AuthenticatedRequest, pk: int) -> Response:
        release = get_for_user(request.user, ledger_queryset(Release.objects.all()), VIEW, pk=pk)
        return Response(ledger_record(release, list(release.steps.order_by("position"))))


class ReleaseExport(APIView):
    @extend_schema(
        parameters=FILTERS,
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="The ledger as CSV, streamed."),
            (200, "application/json"): OpenApiResponse(
                OpenApiTypes.OBJECT, description="The ledger as a JSON array, streamed."
            ),
        },
        description="The job history's ledger with the history's filters, streamed newest first; `fmt` is csv or json.",
    )
    def get(self, request: AuthenticatedRequest, fmt: str) -> StreamingHttpResponse:
        base = release_history(user=request.user)
        filterset = ReleaseFilter(request.query_params, queryset=base, user=request.user)
        if not filterset.is_valid():
            raise serializers.ValidationError(filterset.errors)
        return ledger_response(iter_ledger(filterset.qs), fmt)
