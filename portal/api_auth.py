"""API authentication by personal token (kept apart from the API views: DRF imports it
from settings while its own views module is still loading)."""

from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from . import tokens


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer drp_...`` with a personal token; a revoked one is refused."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = authentication.get_authorization_header(request).decode(errors="replace").split()
        if not header or header[0] != self.keyword:
            return None
        if len(header) != 2 or not header[1].startswith(tokens.PREFIX):
            raise exceptions.AuthenticationFailed("Malformed token: send 'Authorization: Bearer drp_...'.")
        token = tokens.token_authenticate(header[1])
        if token is None:
            raise exceptions.AuthenticationFailed("Unknown API token.")
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API token was revoked.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("This user is disabled.")
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return self.keyword
