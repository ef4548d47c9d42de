"""Re-encryption of every value encrypted under PORTAL_CREDENTIAL_KEYS.

``ENCRYPTED_FIELDS`` is the one list of them: a model gaining an encrypted field adds a
line here, and ``tests/security/test_keys.py`` fails until it does (it looks for every
field named ``*_encrypted``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth.models import User
from django.db import models, transaction

from portal.crypto import InvalidToken, rotate
from portal.models import AuditEvent, Connection, NotificationChannel

ENCRYPTED_FIELDS: list[tuple[type[models.Model], str]] = [
    (Connection, "credentials_encrypted"),
    (NotificationChannel, "secret_encrypted"),
]


@dataclass
class RotationCount:
    rotated: int = 0
    empty: int = 0
    unreadable: list[int] = field(default_factory=list)


@transaction.atomic
def credential_keys_rotate(*, actor: User | None = None) -> dict[str, RotationCount]:
    """Re-encrypt every value under the first key. A value no key can read is left as it is and
    reported by id (the caller fails loudly); everything else is rotated in one transaction."""
    counts: dict[str, RotationCount] = {}
    for model, name in ENCRYPTED_FIELDS:
        label = f"{model._meta.model_name}.{name}"
        count = counts[label] = RotationCount()
        for pk, value in model._default_manager.select_for_update().values_list("pk", name):
            if not value:
                count.empty += 1
                continue
            try:
                model._default_manager.filter(pk=pk).update(**{name: rotate(value)})
            except InvalidToken:
                count.unreadable.append(pk)
                continue
            count.rotated += 1
    AuditEvent.objects.create(
        actor=actor,
        action="keys-rotated",
        object_type="credential-keys",
        object_id="",
        object_repr="PORTAL_CREDENTIAL_KEYS",
        changes={k: {"rotated": c.rotated, "empty": c.empty, "unreadable": c.unreadable} for k, c in counts.items()},
    )
    return counts
