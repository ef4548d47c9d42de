"""Refuse a plain upload post on its declared ``Content-Length``, before its body is read.

The upload form (``/datasets/<id>/upload/``) and the API (``POST /api/v1/uploads/``) take
a multipart body; Django would otherwise read it all (to a temp file) before the view
could say it is too large. tus requests are checked by their own view on ``Upload-Length``.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve

from portal.models import Dataset
from portal.permissions import OPERATE, has_role
from portal.services.uploads import upload_quota_check

# Room for the multipart envelope and the other form fields around the file.
ENVELOPE_BYTES = 64 * 1024
GUARDED = {"portal:upload-create", "api-uploads"}


class UploadLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST":
            refusal = self.check(request)
            if refusal is not None:
                return refusal
        return self.get_response(request)

    def check(self, request: HttpRequest) -> HttpResponse | None:
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return None
        if match.view_name not in GUARDED:
            return None
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _refuse(request, "Content-Length is not a number.", 400)
        limit = settings.PORTAL_UPLOAD_MAX_BYTES
        if declared > limit + ENVELOPE_BYTES:
            return _refuse(request, f"The upload is {declared:,} bytes; the limit is {limit:,} bytes.", 413)
        # The form's dataset is in its URL, so its team's quota is known before the body too.
        # (The API names its dataset inside the body; its quota is checked by the service.)
        dataset_pk = match.kwargs.get("dataset_pk")
        if dataset_pk is not None and request.user.is_authenticated:
            team_id = Dataset.objects.filter(pk=dataset_pk).values_list("team_id", flat=True).first()
            if team_id is not None and has_role(request.user, team_id, OPERATE):
                try:
                    upload_quota_check(team=Dataset(team_id=team_id).team, size=max(declared - ENVELOPE_BYTES, 0))
                except ValidationError as exc:
                    return _refuse(request, " ".join(exc.messages), 413)
        return None


def _refuse(request: HttpRequest, message: str, status: int) -> HttpResponse:
    if request.path_info.startswith("/api/") or request.headers.get("Accept", "").startswith("application/json"):
        response: HttpResponse = JsonResponse({"detail": message, "errors": {"file": [message]}}, status=status)
    else:
        response = HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
    return response
