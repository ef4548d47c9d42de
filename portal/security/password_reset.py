"""Django's password reset, throttled per client IP so the form cannot flood mailboxes."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from portal.security.client_ip import client_ip


class ThrottledPasswordResetView(auth_views.PasswordResetView):
    """At most PORTAL_PASSWORD_RESETS_PER_HOUR requests per client IP and hour; then 429."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        key = f"portal:password-reset:{client_ip(request)}"
        cache.add(key, 0, timeout=3600)
        if cache.incr(key) > settings.PORTAL_PASSWORD_RESETS_PER_HOUR:
            return render(request, "registration/password_reset_throttled.html", status=429)
        return super().post(request, *args, **kwargs)
