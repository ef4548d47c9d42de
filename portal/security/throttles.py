"""DRF throttles keyed on the client IP from ``portal.client_ip`` (trusted proxies only),
and a throttle of failed token authentications per client IP."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from rest_framework.request import Request
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle

from portal.security.client_ip import client_ip


def _django_request(request: Request | HttpRequest) -> HttpRequest:
    """The Django request under a DRF one; the tus view authenticates plain Django requests."""
    return request._request if isinstance(request, Request) else request


class AnonThrottle(AnonRateThrottle):
    def get_ident(self, request: Request) -> str:
        return client_ip(_django_request(request))


class UserThrottle(UserRateThrottle):
    def get_ident(self, request: Request) -> str:
        return client_ip(_django_request(request))


class FailedTokenThrottle(SimpleRateThrottle):
    """Counts failed token authentications per client IP; past the rate every token is refused
    (429) until the window passes, so guessing tokens gets nowhere."""

    scope = "failed_token"
    # Set by SimpleRateThrottle.__init__ from the rate (the stubs do not declare them).
    num_requests: int | None
    duration: int

    def get_cache_key(self, request: Request, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": client_ip(_django_request(request))}

    def blocked_for(self, request: Request) -> float | None:
        """Seconds to wait when this client has failed too often, else None."""
        self.key = self.get_cache_key(request, None)
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        if self.num_requests is not None and len(self.history) >= self.num_requests:
            return self.wait() or 1.0
        return None

    def record_failure(self, request: Request) -> None:
        self.blocked_for(request)
        self.throttle_success()
