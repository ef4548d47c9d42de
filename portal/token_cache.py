"""Platform tokens (Tailer's JWT and the like) shared by every task of a connection.

A connector that fetches a short-lived token asks its ``token_store`` first and hands it
what it fetched, with how long it may be used. Here that store is Redis, the value
encrypted with the credential keys (``portal.crypto``), under a key of the connection and
of its current credentials (a hash of their ciphertext: new credentials, new tokens),
kept until shortly before the token expires. Redis being down only means fetching anew.
"""

from __future__ import annotations

import hashlib
import logging

import redis
from cryptography.fernet import InvalidToken
from django.conf import settings

from portal.crypto import decrypt_json, encrypt_json

log = logging.getLogger(__name__)


class RedisTokenStore:
    def __init__(self, *, connection_id: int, credentials_encrypted: str) -> None:
        digest = hashlib.sha256(credentials_encrypted.encode()).hexdigest()[:16]
        self.prefix = f"portal:token:{connection_id}:{digest}:"

    def _client(self) -> redis.Redis:
        return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)

    def get(self, name: str) -> str | None:
        try:
            raw = self._client().get(self.prefix + name)
        except redis.RedisError:
            return None
        if raw is None:
            return None
        try:
            value = decrypt_json(raw.decode() if isinstance(raw, bytes) else str(raw)).get("v")
        except (InvalidToken, ValueError):
            return None
        return value if isinstance(value, str) else None

    def put(self, name: str, value: str, *, ttl: float) -> None:
        if ttl < 1:
            return
        try:
            self._client().set(self.prefix + name, encrypt_json({"v": value}), ex=int(ttl))
        except redis.RedisError as exc:
            log.info("token cache unavailable (%s): the next task fetches its own", type(exc).__name__)


__all__ = ["RedisTokenStore"]
