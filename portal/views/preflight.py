"""The release form's pre-flight panel (portal.preflight), refreshed when the file changes."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render

from portal.models import Mapping
from portal.permissions import OPERATE, get_for_user
from portal.requests import AuthenticatedHttpRequest
from portal.selectors.core import upload_list
from portal.services.preflight import release_preflight


@login_required
def release_preflight_view(request: AuthenticatedHttpRequest, mapping_pk: int) -> HttpResponse:
    mapping = get_for_user(
        request.user, Mapping.objects.select_related("connection", "dataset"), OPERATE, pk=mapping_pk
    )
    upload_id = request.GET.get("upload", "")
    upload = (
        upload_list(user=request.user, dataset=mapping.dataset).filter(pk=upload_id).first()
        if upload_id.isdigit()
        else None
    )
    return render(request, "portal/_preflight.html", {"preflight": release_preflight(mapping=mapping, upload=upload)})
