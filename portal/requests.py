"""Typed requests and small view helpers: a leaf module that every view and API may import.

``login_required`` views get an authenticated ``User``; django-htmx's middleware adds
``request.htmx``. Typing the request once here spares every view a cast or an ignore.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import Http404, HttpRequest
from django_htmx.middleware import HtmxDetails
from rest_framework.request import Request

from portal.models import ObjectState


class AuthenticatedHttpRequest(HttpRequest):
    """A page request after ``login_required``."""

    user: User  # narrower than HttpRequest's User | AnonymousUser, by login_required
    htmx: HtmxDetails


class AuthenticatedRequest(Request):
    """An API request after DRF's ``IsAuthenticated``."""

    user: User  # narrower than Request's User | AnonymousUser, by IsAuthenticated


def state_or_404(state: str) -> str:
    """A state from the URL (enabled / disabled / archived), or 404."""
    if state not in ObjectState.values:
        raise Http404("Unknown state")
    return state
