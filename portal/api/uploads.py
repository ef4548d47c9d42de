"""API: uploads, including resumable chunked uploads."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.parsers import FileUploadParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.api.common import StrictSerializer
from portal.models import ChunkedUpload, Dataset, Upload
from portal.permissions import OPERATE, VIEW, get_for_user
from portal.requests import AuthenticatedRequest
from portal.services.uploads import chunked_upload_append, chunked_upload_complete, chunked_upload_start, upload_create


class UploadOutput(serializers.Serializer):
    id = serializers.IntegerField()
    dataset = serializers.IntegerField(source="dataset_id")
    name = serializers.CharField(source="original_name")
    size = serializers.IntegerField()
    sha256 = serializers.CharField()
    created_at = serializers.DateTimeField()


class UploadList(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema_serializer(component_name="UploadListInput")
    class InputSerializer(StrictSerializer):
        dataset = serializers.IntegerField()
        file = serializers.FileField()

    @extend_schema(request=InputSerializer, responses={201: UploadOutput})
    def post(self, request: AuthenticatedRequest) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        dataset = get_for_user(request.user, Dataset.objects.all(), OPERATE, pk=data.validated_data["dataset"])
        upload = upload_create(dataset=dataset, file=data.validated_data["file"], actor=request.user)
        return Response(UploadOutput(upload).data, status=status.HTTP_201_CREATED)


class UploadDetail(APIView):
    @extend_schema(responses=UploadOutput)
    def get(self, request: AuthenticatedRequest, pk: int) -> Response:
        return Response(UploadOutput(get_for_user(request.user, Upload.objects.all(), VIEW, pk=pk)).data)


class ChunkedOutput(serializers.Serializer):
    id = serializers.UUIDField()
    filename = serializers.CharField()
    size = serializers.IntegerField()
    offset = serializers.IntegerField(help_text="Bytes the server has: send the rest from here.")
    upload = serializers.IntegerField(source="upload_id", allow_null=True)


class ChunkedStart(APIView):
    @extend_schema_serializer(component_name="ChunkedStartInput")
    class InputSerializer(StrictSerializer):
        dataset = serializers.IntegerField()
        filename = serializers.CharField(max_length=255)
        size = serializers.IntegerField(min_value=1)

    @extend_schema(request=InputSerializer, responses={201: ChunkedOutput})
    def post(self, request: AuthenticatedRequest) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        dataset = get_for_user(request.user, Dataset.objects.all(), OPERATE, pk=data.validated_data["dataset"])
        chunked = chunked_upload_start(
            dataset=dataset,
            filename=data.validated_data["filename"],
            size=data.validated_data["size"],
            actor=request.user,
        )
        return Response(ChunkedOutput(chunked).data, status=status.HTTP_201_CREATED)


class ChunkedDetail(APIView):
    """GET: how much arrived. PUT: the next piece, raw bytes, with header ``Upload-Offset``."""

    parser_classes = [FileUploadParser, JSONParser]

    def _get(self, request: AuthenticatedRequest, pk: str) -> ChunkedUpload:
        chunked = get_for_user(request.user, ChunkedUpload.objects.select_related("dataset"), OPERATE, pk=pk)
        if chunked.user_id != request.user.pk:
            raise Http404("No such upload")
        return chunked

    @extend_schema(responses=ChunkedOutput)
    def get(self, request: AuthenticatedRequest, pk: str) -> Response:
        return Response(ChunkedOutput(self._get(request, pk)).data)

    @extend_schema(
        request={"application/octet-stream": OpenApiTypes.BINARY},
        parameters=[OpenApiParameter("Upload-Offset", int, OpenApiParameter.HEADER, required=True)],
        responses=ChunkedOutput,
    )
    def put(self, request: AuthenticatedRequest, pk: str) -> Response:
        chunked = self._get(request, pk)
        try:
            offset = int(request.headers.get("Upload-Offset", ""))
        except ValueError:
            raise serializers.ValidationError(
                {"Upload-Offset": ["Send the piece's offset in the Upload-Offset header."]}
            ) from None
        piece = request.data.get("file") if hasattr(request.data, "get") else None
        if piece is None:
            raise serializers.ValidationError(
                {"file": ["Send the piece's bytes as the body (application/octet-stream)."]}
            )
        return Response(ChunkedOutput(chunked_upload_append(chunked=chunked, offset=offset, data=piece)).data)


class ChunkedComplete(APIView):
    @extend_schema(request=None, responses={201: UploadOutput})
    def post(self, request: AuthenticatedRequest, pk: str) -> Response:
        chunked = ChunkedDetail()._get(request, pk)
        upload = chunked_upload_complete(chunked=chunked, actor=request.user)
        return Response(UploadOutput(upload).data, status=status.HTTP_201_CREATED)
