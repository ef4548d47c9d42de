"""Idempotency keys bound to the request they were first used with.

The IETF draft "The Idempotency-Key HTTP Header Field" (section 2.7) says a key reused
with a different request payload must be refused with 422, not answered with the first
result: the client has a bug, and silently returning an unrelated release hides it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from rest_framework import status
from rest_framework.exceptions import APIException


class IdempotencyKeyReused(APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "This Idempotency-Key was already used with a different request body; use a new key."
    default_code = "idempotency_key_reused"


def request_fingerprint(data: Mapping[str, Any]) -> str:
    """sha256 of the request's validated fields as canonical JSON (key order and spacing do not count)."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_reuse(*, stored: str, fingerprint: str) -> None:
    """Raises IdempotencyKeyReused when a stored fingerprint differs (older rows have none)."""
    if stored and stored != fingerprint:
        raise IdempotencyKeyReused()
