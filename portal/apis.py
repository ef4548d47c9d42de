"""The REST API (/api/v1/): the same services, selectors and permission helpers as the
HTML views, so a script can do what a person clicks.

Shape of every view: access helper (``portal.permissions``) → InputSerializer →
one service call → OutputSerializer. Errors answer JSON ``{"detail": ..., "errors": {...}}``
with 400 (bad input), 401 (no or revoked token), 403 (role), 404 (absent or another
team's), 409 (state conflict).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Prefetch
from django.http import Http404
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
    inline_serializer,
)
from pydantic import ValidationError as SchemaError
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import FileUploadParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from connectors.base import ConnectorError
from connectors.registry import CONNECTORS, get_connector_class

from . import history_query, permissions, selectors, services
from .api_auth import ApiTokenAuthentication
from .api_schema import ErrorOutput
from .filters import ReleaseFilter
from .idempotency import check_reuse, request_fingerprint
from .models import (
    ActionRun,
    ChunkedUpload,
    Connection,
    Dataset,
    Mapping,
    ObjectState,
    Release,
    ReleaseSet,
    ReleaseStep,
    Upload,
)
from .permissions import MANAGE, OPERATE, VIEW, get_for_user
from .target_checks import mapping_target_check

# AUTHENTICATION AND ERRORS


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "portal.api_auth.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):  # type: ignore[no-untyped-def]
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "drp_… personal token (create one on your account page)",
        }


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Service and schema errors become readable 4xx answers; nothing else leaks."""
    if isinstance(exc, services.ApplicationError):
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


def _team_for_create(request: Request, team_id: int | None, needed: str):  # type: ignore[no-untyped-def]
    teams = permissions.teams_for(request.user, needed)
    if team_id is None:
        if teams.count() != 1:
            raise serializers.ValidationError(
                {"team": ["Name the team (you are in several, or in none with this role)."]}
            )
        return teams.first()
    team = teams.filter(pk=team_id).first()
    if team is None:
        permissions.require(request.user, team_id, needed)  # 404 or 403, as for any object
    return team


# CONNECTIONS


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
        from .crypto import InvalidToken, decrypt_json

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
        from .crypto import UNREADABLE_CREDENTIALS, InvalidToken, decrypt_json

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
    def get(self, request: Request) -> Response:
        return Response(
            ConnectionOutput(selectors.connection_list(user=request.user, include_archived=True), many=True).data
        )

    @extend_schema(request=InputSerializer, responses={201: ConnectionOutput})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        team = _team_for_create(request, data.validated_data.get("team"), MANAGE)
        connection = services.connection_create(
            team=team,
            platform=data.validated_data["platform"],
            name=data.validated_data["name"],
            base_url=data.validated_data["base_url"],
            credentials=data.validated_data["credentials"],
            actor=request.user,
        )
        services.connection_request_test(connection=connection, actor=request.user)
        return Response(ConnectionOutput(connection).data, status=status.HTTP_201_CREATED)


class ConnectionDetail(APIView):
    @extend_schema_serializer(component_name="ConnectionDetailInput")
    class InputSerializer(StrictSerializer):
        name = serializers.CharField(max_length=100, required=False)
        base_url = serializers.URLField(max_length=500, required=False)
        credentials = serializers.DictField(required=False, help_text="Secrets left out keep their stored value.")

    @extend_schema(responses=ConnectionOutput)
    def get(self, request: Request, pk: int) -> Response:
        return Response(ConnectionOutput(get_for_user(request.user, Connection.objects.all(), VIEW, pk=pk)).data)

    @extend_schema(request=InputSerializer, responses=ConnectionOutput)
    def patch(self, request: Request, pk: int) -> Response:
        connection = get_for_user(request.user, Connection.objects.all(), MANAGE, pk=pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        public = ConnectionOutput().get_credentials(connection)
        connection = services.connection_update(
            connection=connection,
            name=data.validated_data.get("name", connection.name),
            base_url=data.validated_data.get("base_url", connection.base_url),
            credentials={**public, **data.validated_data.get("credentials", {})},
            actor=request.user,
        )
        return Response(ConnectionOutput(connection).data)


class ConnectionTest(APIView):
    @extend_schema(request=None, responses={202: ConnectionOutput})
    def post(self, request: Request, pk: int) -> Response:
        connection = get_for_user(request.user, Connection.objects.all(), OPERATE, pk=pk)
        connection = services.connection_request_test(connection=connection, actor=request.user)
        return Response(ConnectionOutput(connection).data, status=status.HTTP_202_ACCEPTED)


class StateInput(StrictSerializer):
    state = serializers.ChoiceField(choices=ObjectState.values)


class ConnectionState(APIView):
    @extend_schema(request=StateInput, responses=ConnectionOutput)
    def post(self, request: Request, pk: int) -> Response:
        connection = get_for_user(request.user, Connection.objects.all(), MANAGE, pk=pk)
        data = StateInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(
            ConnectionOutput(
                services.connection_set_state(
                    connection=connection, state=data.validated_data["state"], actor=request.user
                )
            ).data
        )


# DATASETS


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
    def get(self, request: Request) -> Response:
        return Response(DatasetOutput(selectors.dataset_list(user=request.user, include_archived=True), many=True).data)

    @extend_schema(request=InputSerializer, responses={201: DatasetOutput})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        team = _team_for_create(request, data.validated_data.get("team"), MANAGE)
        dataset = services.dataset_create(
            team=team,
            name=data.validated_data["name"],
            description=data.validated_data["description"],
            actor=request.user,
        )
        return Response(DatasetOutput(dataset).data, status=status.HTTP_201_CREATED)


class DatasetDetail(APIView):
    @extend_schema(responses=DatasetOutput)
    def get(self, request: Request, pk: int) -> Response:
        return Response(DatasetOutput(get_for_user(request.user, Dataset.objects.all(), VIEW, pk=pk)).data)


# MAPPINGS


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
    def get(self, request: Request) -> Response:
        return Response(MappingOutput(selectors.mapping_list(user=request.user, include_archived=True), many=True).data)

    @extend_schema(request=InputSerializer, responses={201: MappingOutput})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        dataset = get_for_user(request.user, Dataset.objects.all(), MANAGE, pk=data.validated_data["dataset"])
        connection = get_for_user(request.user, Connection.objects.all(), MANAGE, pk=data.validated_data["connection"])
        target = services.target_validate(connection=connection, data=data.validated_data["target"])
        if problems := mapping_target_check(connection=connection, target=target).problems:
            raise serializers.ValidationError({"target": problems})
        mapping = services.mapping_create(
            dataset=dataset, connection=connection, name=data.validated_data["name"], target=target, actor=request.user
        )
        return Response(MappingOutput(mapping).data, status=status.HTTP_201_CREATED)


class MappingDetail(APIView):
    @extend_schema(responses=MappingOutput)
    def get(self, request: Request, pk: int) -> Response:
        return Response(
            MappingOutput(get_for_user(request.user, Mapping.objects.select_related("connection"), VIEW, pk=pk)).data
        )


class MappingState(APIView):
    @extend_schema(request=StateInput, responses=MappingOutput)
    def post(self, request: Request, pk: int) -> Response:
        mapping = get_for_user(request.user, Mapping.objects.select_related("connection"), MANAGE, pk=pk)
        data = StateInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(
            MappingOutput(
                services.mapping_set_state(mapping=mapping, state=data.validated_data["state"], actor=request.user)
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

    def _resolve(self, request: Request, pk: int, name: str):  # type: ignore[no-untyped-def]
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
    def get(self, request: Request, pk: int, name: str) -> Response:
        mapping, action = self._resolve(request, pk, name)
        if action.mutating:
            raise exceptions.MethodNotAllowed("GET", detail="This action changes the platform: POST it.")
        params = (
            action.params.model_validate({k: v for k, v in request.query_params.items()}) if action.params else None
        )
        result = services.action_read(connection=mapping.connection, mapping=mapping, action=action, params=params)
        return Response({"message": result.message, "tables": services.tables_as_json(result.tables)})

    @extend_schema(request=OpenApiTypes.OBJECT, responses={202: ActionOutput})
    def post(self, request: Request, pk: int, name: str) -> Response:
        mapping, action = self._resolve(request, pk, name)
        if not action.mutating:
            raise exceptions.MethodNotAllowed("POST", detail="This action only reads: GET it.")
        body = request.data if isinstance(request.data, dict) else {}
        params = action.params.model_validate(body) if action.params else None
        run = services.action_request(
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
    def get(self, request: Request, pk: int) -> Response:
        run = get_for_user(request.user, ActionRun.objects.all(), VIEW, pk=pk)
        return Response(
            {"id": run.pk, "action": run.action, "status": run.status, "message": run.message, "tables": run.tables}
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
    def get(self, request: Request, pk: int, field: str) -> Response:
        connection = get_for_user(request.user, Connection.objects.all(), MANAGE, pk=pk)
        info = connection.connector_class.Target.model_fields.get(field)
        if info is None or not (info.json_schema_extra or {}).get("browse"):
            raise Http404("Nothing to browse for this field")
        values = {k: v for k, v in request.query_params.items() if k != "q"}
        choices = connection.connector().browse(field, query=request.query_params.get("q", ""), values=values)
        return Response(
            [{"value": c.value, "label": c.label, "detail": c.detail, "fill": dict(c.fill)} for c in choices]
        )


# UPLOADS


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
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        dataset = get_for_user(request.user, Dataset.objects.all(), OPERATE, pk=data.validated_data["dataset"])
        upload = services.upload_create(dataset=dataset, file=data.validated_data["file"], actor=request.user)
        return Response(UploadOutput(upload).data, status=status.HTTP_201_CREATED)


class UploadDetail(APIView):
    @extend_schema(responses=UploadOutput)
    def get(self, request: Request, pk: int) -> Response:
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
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        dataset = get_for_user(request.user, Dataset.objects.all(), OPERATE, pk=data.validated_data["dataset"])
        chunked = services.chunked_upload_start(
            dataset=dataset,
            filename=data.validated_data["filename"],
            size=data.validated_data["size"],
            actor=request.user,
        )
        return Response(ChunkedOutput(chunked).data, status=status.HTTP_201_CREATED)


class ChunkedDetail(APIView):
    """GET: how much arrived. PUT: the next piece, raw bytes, with header ``Upload-Offset``."""

    parser_classes = [FileUploadParser, JSONParser]

    def _get(self, request: Request, pk: str) -> ChunkedUpload:
        chunked = get_for_user(request.user, ChunkedUpload.objects.select_related("dataset"), OPERATE, pk=pk)
        if chunked.user_id != request.user.pk:
            raise Http404("No such upload")
        return chunked

    @extend_schema(responses=ChunkedOutput)
    def get(self, request: Request, pk: str) -> Response:
        return Response(ChunkedOutput(self._get(request, pk)).data)

    @extend_schema(
        request={"application/octet-stream": OpenApiTypes.BINARY},
        parameters=[OpenApiParameter("Upload-Offset", int, OpenApiParameter.HEADER, required=True)],
        responses=ChunkedOutput,
    )
    def put(self, request: Request, pk: str) -> Response:
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
        return Response(ChunkedOutput(services.chunked_upload_append(chunked=chunked, offset=offset, data=piece)).data)


class ChunkedComplete(APIView):
    @extend_schema(request=None, responses={201: UploadOutput})
    def post(self, request: Request, pk: str) -> Response:
        chunked = ChunkedDetail()._get(request, pk)
        upload = services.chunked_upload_complete(chunked=chunked, actor=request.user)
        return Response(UploadOutput(upload).data, status=status.HTTP_201_CREATED)


# RELEASES


class StepOutput(serializers.Serializer):
    position = serializers.IntegerField()
    name = serializers.CharField()
    label = serializers.CharField()
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
        return StepOutput(obj.steps.all(), many=True).data


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
    def get(self, request: Request) -> Response:
        base = selectors.release_history(user=request.user).select_related("created_by")
        filterset = ReleaseFilter(request.query_params, queryset=base, user=request.user)
        if not filterset.is_valid():
            raise serializers.ValidationError(filterset.errors)
        paginator = HistoryPagination()
        try:
            with history_query.time_bound() if request.query_params.get("q", "").strip() else nullcontext():
                page = paginator.paginate_queryset(filterset.qs, request, view=self)
        except history_query.SearchTimeout:
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
    def post(self, request: Request) -> Response:
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
        params = services.params_validate(
            mapping=mapping, data={**(mapping.default_params or {}), **data.validated_data["params"]}
        )
        release = services.release_create(
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
    def get(self, request: Request, pk: int) -> Response:
        release = get_for_user(request.user, Release.objects.select_related("created_by"), VIEW, pk=pk)
        return Response(ReleaseOutput(release, context={"with_steps": True}).data)


class ReleaseCancel(APIView):
    @extend_schema(request=None, responses={202: ReleaseOutput})
    def post(self, request: Request, pk: int) -> Response:
        release = get_for_user(request.user, Release.objects.all(), OPERATE, pk=pk)
        release = services.release_cancel(release=release, actor=request.user)
        return Response(ReleaseOutput(release, context={"with_steps": True}).data, status=status.HTTP_202_ACCEPTED)


class ReleaseRetry(APIView):
    @extend_schema_serializer(component_name="ReleaseRetryInput")
    class InputSerializer(StrictSerializer):
        params = serializers.DictField(
            required=False, help_text="Edited parameters; the failed release's when left out."
        )

    @extend_schema(request=InputSerializer, responses={201: ReleaseOutput})
    def post(self, request: Request, pk: int) -> Response:
        release = get_for_user(request.user, Release.objects.select_related("mapping__connection"), OPERATE, pk=pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        params = None
        if "params" in data.validated_data:
            params = services.params_validate(mapping=release.mapping, data=data.validated_data["params"])
        retry = services.release_retry(release=release, params=params, actor=request.user)
        return Response(ReleaseOutput(retry, context={"with_steps": True}).data, status=status.HTTP_201_CREATED)


__all__ = ["ApiTokenAuthentication", "ReleaseStep", "exception_handler", "get_connector_class"]


# RELEASE SETS


class ReleaseSetOutput(serializers.Serializer):
    id = serializers.IntegerField()
    dataset = serializers.IntegerField(source="dataset_id")
    upload = serializers.IntegerField(source="upload_id", allow_null=True)
    created_at = serializers.DateTimeField()
    status = serializers.SerializerMethodField()
    releases = serializers.SerializerMethodField(help_text="The latest attempt of each mapping, with its steps.")

    @extend_schema_field(serializers.ChoiceField(choices=["running", "succeeded", "partial", "failed", "cancelled"]))
    def get_status(self, obj: Any) -> str:
        from .models import ReleaseSet

        return ReleaseSet.status_of(obj.current_releases())

    @extend_schema_field(ReleaseOutput(many=True))
    def get_releases(self, obj: Any) -> list[dict[str, Any]]:
        return ReleaseOutput(obj.current_releases(), many=True, context={"with_steps": True}).data


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
    def get(self, request: Request) -> Response:
        from .models import ReleaseSet

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
    def post(self, request: Request) -> Response:
        from .release_sets import release_set_create

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
    def get(self, request: Request, pk: int) -> Response:
        from .models import ReleaseSet

        return Response(ReleaseSetOutput(get_for_user(request.user, ReleaseSet.objects.all(), VIEW, pk=pk)).data)


class ReleaseSetCancel(APIView):
    @extend_schema(request=None, responses={202: ReleaseSetOutput})
    def post(self, request: Request, pk: int) -> Response:
        from .models import ReleaseSet
        from .release_sets import release_set_cancel

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
    def post(self, request: Request, pk: int) -> Response:
        from .models import ReleaseSet
        from .release_sets import release_set_retry

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
