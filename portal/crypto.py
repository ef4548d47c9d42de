"""Encryption of platform credentials at rest.

MultiFernet over ``settings.PORTAL_CREDENTIAL_KEYS`` (keys of their own, never
SECRET_KEY): the first key encrypts, every key decrypts, so keys rotate without
downtime (``manage.py rotate_credential_keys``). A wrong key raises InvalidToken:
nothing is ever returned that was not decrypted.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

__all__ = ["UNREADABLE_CREDENTIALS", "InvalidToken", "decrypt_json", "encrypt_json", "rotate"]

UNREADABLE_CREDENTIALS = (
    "The stored credentials cannot be decrypted with PORTAL_CREDENTIAL_KEYS (the key that encrypted them "
    "is not in the list any more): an admin must enter them again."
)


def _fernet() -> MultiFernet:
    keys = settings.PORTAL_CREDENTIAL_KEYS
    if not keys:
        raise ImproperlyConfigured("PORTAL_CREDENTIAL_KEYS is empty: no key to encrypt credentials with")
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError:
        raise ImproperlyConfigured("PORTAL_CREDENTIAL_KEYS holds a value that is not a Fernet key") from None


def encrypt_json(data: dict[str, Any]) -> str:
    return _fernet().encrypt(json.dumps(data, separators=(",", ":")).encode()).decode()


def decrypt_json(token: str) -> dict[str, Any]:
    """Raises InvalidToken when no key fits (the message never includes the data)."""
    return json.loads(_fernet().decrypt(token.encode()))


def rotate(token: str) -> str:
    """Re-encrypt under the first key."""
    return _fernet().rotate(token.encode()).decode()
