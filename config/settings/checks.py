"""Start-up checks of production secrets: fail at once, not at first use."""

from __future__ import annotations

from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured


def require_strong_secret_key(key: str) -> None:
    """Django's own deploy check: 50+ characters, 5+ distinct, not the insecure placeholder."""
    if len(key) < 50 or len(set(key)) < 5 or key.startswith("django-insecure-"):
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is empty or weak: use 50+ random characters "
            "(python -c 'import secrets; print(secrets.token_urlsafe(50))')."
        )


def require_credential_keys(keys: list[str]) -> None:
    """At least one key, and every key a Fernet key (32 url-safe base64 bytes)."""
    if not keys:
        raise ImproperlyConfigured("PORTAL_CREDENTIAL_KEYS must name at least one Fernet key")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key.strip())
        except (ValueError, TypeError):
            raise ImproperlyConfigured(
                f"PORTAL_CREDENTIAL_KEYS: key {position} is not a Fernet key "
                "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')."
            ) from None
