"""The tus 1.0 server: core, creation, termination, expiration and checksum.

https://tus.io/protocols/resumable-upload. ``POST /api/v1/uploads/tus/`` with
``Upload-Length`` and ``Upload-Metadata`` (``dataset`` id, ``filename``, optionally
``filetype``) creates an upload; ``HEAD`` its URL tells the offset; ``PATCH`` with
``Upload-Offset`` and an ``application/offset+octet-stream`` body appends a chunk;
``DELETE`` terminates it. The last chunk creates the ordinary ``Upload``.

Authentication: a session (the browser; CSRF token in ``X-CSRFToken``, as htmx sends it)
or ``Authorization: Bearer drp_...``. Roles: operator on the dataset's team; an upload belongs
to the user who created it (anyone else gets 404, as for the chunked API).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.urls import reverse
from django.utils.http import http_date
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions as drf_exceptions

from portal.api.auth import ApiTokenAuthentication
from portal.models import Dataset, TusUpload
from portal.permissions import OPERATE, get_for_user
from portal.uploads import services
from portal.uploads.sinks import Checksum, ChecksumMismatch, LostBytes

VERSION = "1.0.0"
EXTENSIONS = "creation,termination,expiration,checksum"
OCTET_STREAM = "application/offset+octet-stream"


def _response(status: int, message: str = "", **headers: str) -> HttpResponse:
    response = HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
    response["Tus-Resumable"] = VERSION
    response["Cache-Control"] = "no-store"
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


class _Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _authenticate(request: HttpRequest) -> Any:
    """The user, by token or by session (with the CSRF check a session needs)."""
    try:
        found = ApiTokenAuthentication().authenticate(request)  # type: ignore[arg-type]
    except drf_exceptions.AuthenticationFailed as exc:
        raise _Refused(401, str(exc.detail)) from exc
    if found is not None:
        return found[0]
    if not request.user.is_authenticated:
        raise _Refused(401, "Log in, or send 'Authorization: Bearer drp_...'.")
    check = CsrfViewMiddleware(lambda r: HttpResponse())
    check.process_request(request)
    if check.process_view(request, None, (), {}) is not None:  # type: ignore[arg-type]
        raise _Refused(403, "CSRF check failed: send the page's token in X-CSRFToken.")
    return request.user


def _metadata(header: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in header.split(","))):
        key, _, encoded = pair.partition(" ")
        try:
            values[key] = base64.b64decode(encoded, validate=True).decode() if encoded else ""
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise _Refused(400, f"Upload-Metadata {key!r} is not base64 of UTF-8 text.") from exc
    return values


def _int_header(request: HttpRequest, name: str) -> int:
    raw = request.headers.get(name)
    if raw is None or not raw.isdigit():
        raise _Refused(400, f"{name} must be a non-negative integer.")
    return int(raw)


def _expires(tus: TusUpload) -> dict[str, str]:
    return {"Upload_Expires": http_date(tus.expires_at.timestamp())} if tus.upload_id is None else {}


def _get(user: Any, pk: UUID) -> TusUpload:
    """The upload, for the user who created it only (operator on its team): its bytes become an
    ``Upload`` recorded as theirs, so nobody else, not even the team's admin, may add to it."""
    tus = get_for_user(user, TusUpload.objects.select_related("dataset", "team", "user"), OPERATE, pk=pk)
    if tus.user_id != user.pk:
        raise Http404("No such upload")
    return tus


@csrf_exempt
def tus_collection(request: HttpRequest) -> HttpResponse:
    if request.method == "OPTIONS":
        return _options()
    if request.method != "POST":
        return _response(405, "Use POST to create an upload.", Allow="OPTIONS, POST")
    try:
        return _create(request)
    except _Refused as exc:
        return _response(exc.status, exc.message)


@csrf_exempt
def tus_resource(request: HttpRequest, pk: UUID) -> HttpResponse:
    if request.method == "OPTIONS":
        return _options()
    handlers = {"HEAD": _head, "GET": _head, "PATCH": _patch, "DELETE": _delete}
    handler = handlers.get(request.method or "")
    if handler is None:
        return _response(405, "", Allow="OPTIONS, HEAD, PATCH, DELETE")
    try:
        return handler(request, pk)
    except _Refused as exc:
        return _response(exc.status, exc.message)
    except Http404:
        return _response(404, "No such upload.")
    except PermissionDenied as exc:
        return _response(403, str(exc))


def _options() -> HttpResponse:
    return _response(
        204,
        Tus_Version=VERSION,
        Tus_Extension=EXTENSIONS,
        Tus_Max_Size=str(settings.PORTAL_UPLOAD_MAX_BYTES),
        Tus_Checksum_Algorithm=",".join(Checksum.ALGORITHMS),
    )


def _require_version(request: HttpRequest) -> None:
    if request.headers.get("Tus-Resumable") != VERSION:
        raise _Refused(412, f"This server speaks tus {VERSION}: send Tus-Resumable: {VERSION}.")


def _create(request: HttpRequest) -> HttpResponse:
    user = _authenticate(request)
    _require_version(request)
    if "Upload-Defer-Length" in request.headers:
        raise _Refused(400, "Upload-Defer-Length is not supported: declare Upload-Length.")
    length = _int_header(request, "Upload-Length")
    if length > settings.PORTAL_UPLOAD_MAX_BYTES:
        raise _Refused(413, f"The file is {length:,} bytes; the limit is {settings.PORTAL_UPLOAD_MAX_BYTES:,} bytes.")
    meta = _metadata(request.headers.get("Upload-Metadata", ""))
    if not meta.get("dataset", "").isdigit() or not meta.get("filename"):
        raise _Refused(400, "Upload-Metadata must carry 'dataset' (its id) and 'filename'.")
    try:
        dataset = get_for_user(user, Dataset.objects.select_related("team"), OPERATE, pk=int(meta["dataset"]))
    except Http404:
        raise _Refused(404, "No such dataset.") from None
    except PermissionDenied as exc:
        raise _Refused(403, str(exc)) from None
    try:
        tus = services.tus_create(
            dataset=dataset,
            filename=meta["filename"],
            length=length,
            content_type=meta.get("filetype", "") or meta.get("type", ""),
            actor=user,
        )
    except ValidationError as exc:
        status = 413 if exc.code in {"too_large", "quota"} else 415 if exc.code == "type" else 400
        raise _Refused(status, " ".join(exc.messages)) from None
    location = request.build_absolute_uri(reverse("api-tus-upload", args=[tus.pk]))
    return _response(201, Location=location, **_expires(tus))


def _head(request: HttpRequest, pk: UUID) -> HttpResponse:
    user = _authenticate(request)
    _require_version(request)
    tus = services.tus_settled(tus=_get(user, pk))
    if tus.offset == tus.length and tus.upload_id is None:
        services.tus_recover(tus=tus)  # the last chunk was stored, but its request died before composing
        tus.refresh_from_db()
    headers = {"Upload_Offset": str(tus.offset), "Upload_Length": str(tus.length), **_expires(tus)}
    if tus.upload_id is not None:
        headers["Upload_Id"] = str(tus.upload_id)
    return _response(200, **headers)


def _checksum(request: HttpRequest) -> Checksum | None:
    raw = request.headers.get("Upload-Checksum")
    if raw is None:
        return None
    algorithm, _, encoded = raw.partition(" ")
    if algorithm not in Checksum.ALGORITHMS:
        raise _Refused(400, f"Upload-Checksum: {algorithm!r} is not one of {', '.join(Checksum.ALGORITHMS)}.")
    try:
        return Checksum(algorithm, base64.b64decode(encoded, validate=True))
    except binascii.Error:
        raise _Refused(400, "Upload-Checksum: the digest is not base64.") from None


def _patch(request: HttpRequest, pk: UUID) -> HttpResponse:
    user = _authenticate(request)
    _require_version(request)
    if request.content_type != OCTET_STREAM:
        raise _Refused(415, f"Send the chunk as Content-Type: {OCTET_STREAM}.")
    offset = _int_header(request, "Upload-Offset")
    length = _int_header(request, "Content-Length")
    checksum = _checksum(request)
    tus = _get(user, pk)
    try:
        tus = services.tus_append(tus=tus, offset=offset, body=request, length=length, checksum=checksum)
    except services.Conflict as exc:
        return _response(409, exc.message, Upload_Offset=str(tus.offset))
    except services.TooLarge as exc:
        return _response(413, exc.message)
    except services.Locked as exc:
        return _response(423, exc.message)
    except ChecksumMismatch:
        return _response(460, "Checksum mismatch: the chunk was not stored; send it again.")
    except LostBytes as exc:
        return _response(410, f"{exc} Start the upload again.")
    headers = {"Upload_Offset": str(tus.offset), **_expires(tus)}
    if tus.upload_id is not None:
        headers["Upload_Id"] = str(tus.upload_id)
    return _response(204, **headers)


def _delete(request: HttpRequest, pk: UUID) -> HttpResponse:
    user = _authenticate(request)
    _require_version(request)
    services.tus_terminate(tus=_get(user, pk), actor=user)
    return _response(204)
