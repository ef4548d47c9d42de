"""The upload page."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render

from portal.forms.releases import UploadForm
from portal.models import Dataset
from portal.permissions import OPERATE, get_for_user
from portal.requests import AuthenticatedHttpRequest
from portal.selectors.core import upload_list
from portal.services import uploads as uploads_services


@login_required
def upload_create(request: AuthenticatedHttpRequest, dataset_pk: int) -> HttpResponse:
    """The drag-and-drop page; the browser POSTs here with XHR (JSON answers) or a plain form."""
    dataset = get_for_user(request.user, Dataset.objects.all(), OPERATE, pk=dataset_pk)
    wants_json = request.headers.get("Accept", "").startswith("application/json")
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                upload = uploads_services.upload_create(
                    dataset=dataset, file=form.cleaned_data["file"], actor=request.user
                )
            except ValidationError as exc:
                form.add_error("file", exc)
            else:
                if wants_json:
                    return JsonResponse(
                        {
                            "id": upload.pk,
                            "name": upload.original_name,
                            "size": upload.size,
                            "sha256": upload.sha256,
                            "dataset_url": dataset.get_absolute_url(),
                        },
                        status=201,
                    )
                messages.success(request, f"Uploaded {upload.original_name} ({upload.size:,} bytes).")
                return redirect(dataset)
        if wants_json:
            return JsonResponse({"errors": {k: [str(e) for e in v] for k, v in form.errors.items()}}, status=400)
    return render(
        request,
        "portal/upload_form.html",
        {
            "dataset": dataset,
            "form": form,
            "max_bytes": settings.PORTAL_UPLOAD_MAX_BYTES,
            "extensions": settings.PORTAL_UPLOAD_EXTENSIONS,
            "chunk_bytes": settings.PORTAL_UPLOAD_CHUNK_BYTES,
            "uploads": upload_list(user=request.user, dataset=dataset)[:10],
        },
    )
