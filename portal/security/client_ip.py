"""The client's IP address, for lockouts, throttles and the audit trail.

``portal.proxy.TrustedProxyMiddleware`` runs first and has already replaced ``REMOTE_ADDR``
with the client's address when (and only when) a trusted proxy forwarded the request, so this
is the one place that reads it, and nothing else looks at ``X-Forwarded-For``."""

from __future__ import annotations

from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    return str(request.META.get("REMOTE_ADDR") or "")
