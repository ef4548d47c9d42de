"""API authentication: personal bearer tokens."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from portal import tokens
from portal.security.throttles import FailedTokenThrottle


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "portal.api.auth.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "drp_… personal token (create one on your account page)",
        }


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer drp_...`` with a personal token; a revoked or expired one is refused.

    Failed attempts are counted per client IP: past ``failed_token`` (DEFAULT_THROTTLE_RATES)
    every bearer token is answered 429 until the window passes.
    """

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = authentication.get_authorization_header(request).decode(errors="replace").split()
        if not header or header[0] != self.keyword:
            return None
        throttle = FailedTokenThrottle()
        wait = throttle.blocked_for(request)
        if wait is not None:
            raise exceptions.Throttled(wait, detail="Too many failed token attempts from this address.")
        try:
            return self._check(header)
        except exceptions.AuthenticationFailed:
            throttle.record_failure(request)
            raise

    def _check(self, header: list[str]) -> tuple[Any, Any]:
        if len(header) != 2 or not header[1].startswith(tokens.PREFIX):
            raise exceptions.AuthenticationFailed("Malformed token: send 'Authorization: Bearer drp_...'.")
        token = tokens.token_authenticate(header[1])
        if token is None:
            raise exceptions.AuthenticationFailed("Unknown API token.")
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API token was revoked.")
        if token.expired:
            raise exceptions.AuthenticationFailed("This API token has expired: create a new one on your account page.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("This user is disabled.")
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return self.keyword
