"""Personal API tokens: created and revoked by their owner, shown once, stored hashed."""

from __future__ import annotations

import hashlib
import secrets

from django.db import transaction
from django.utils import timezone

from .models import ApiToken

PREFIX = "drp_"


def _hash(key: str) -> str:
    # The token carries 256 random bits, so a plain SHA-256 is enough (no salt or stretching).
    return hashlib.sha256(key.encode()).hexdigest()


@transaction.atomic
def token_create(*, user, name: str) -> tuple[ApiToken, str]:  # type: ignore[no-untyped-def]
    """A new token and its clear value, which is never stored and never shown again."""
    key = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name[:100] or "API token", prefix=key[:12], key_hash=_hash(key))
    return token, key


def token_revoke(*, token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def token_authenticate(key: str) -> ApiToken | None:
    """The live token for ``key`` (its user loaded), or None; marks it used."""
    token = ApiToken.objects.select_related("user").filter(key_hash=_hash(key)).first()
    if token is None:
        return None
    if token.revoked_at is None:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token
