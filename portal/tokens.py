"""Personal API tokens: created and revoked by their owner, shown once, stored hashed,
valid until the expiry chosen at creation."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from portal.models import ApiToken
from portal.services.audit import audit

PREFIX = "drp_"


def _hash(key: str) -> str:
    # The token carries 256 random bits, so a plain SHA-256 is enough (no salt or stretching).
    return hashlib.sha256(key.encode()).hexdigest()


@transaction.atomic
def token_create(*, user: User, name: str, expires_in_days: int | None = None) -> tuple[ApiToken, str]:
    """A new token and its clear value, which is never stored and never shown again."""
    days = settings.PORTAL_TOKEN_DEFAULT_DAYS if expires_in_days is None else expires_in_days
    if not 1 <= days <= settings.PORTAL_TOKEN_MAX_DAYS:
        raise ValidationError(f"A token lives between 1 and {settings.PORTAL_TOKEN_MAX_DAYS} days.")
    key = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name[:100] or "API token",
        prefix=key[:12],
        key_hash=_hash(key),
        expires_at=timezone.now() + timedelta(days=days),
    )
    audit(actor=user, action="token-created", obj=token, changes={"name": token.name, "expires_in_days": days})
    return token, key


@transaction.atomic
def token_revoke(*, token: ApiToken, actor: User | None = None) -> None:
    actor = actor or token.user
    if ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()):
        audit(actor=actor, action="token-revoked", obj=token, changes={"name": token.name})


def token_authenticate(key: str) -> ApiToken | None:
    """The token for ``key`` (its user loaded), or None. Marks a live token used, at most
    once per PORTAL_TOKEN_LAST_USED_EVERY_SECONDS (a busy script does not write every call)."""
    token = ApiToken.objects.select_related("user").filter(key_hash=_hash(key)).first()
    if token is None:
        return None
    if token.revoked_at is None and not token.expired:
        now = timezone.now()
        stale = now - timedelta(seconds=settings.PORTAL_TOKEN_LAST_USED_EVERY_SECONDS)
        ApiToken.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale), pk=token.pk).update(
            last_used_at=now
        )
    return token
