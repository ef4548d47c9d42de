"""Typed requests and small view helpers: a leaf module that every view may import."""

from __future__ import annotations

from django.http import Http404, HttpRequest
from django_htmx.middleware import HtmxDetails

from portal.models import ObjectState


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _state_or_404(state: str) -> str:
    if state not in ObjectState.values:
        raise Http404("Unknown state")
    return state
