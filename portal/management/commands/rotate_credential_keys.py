"""Re-encrypt every connection's credentials under the first key of PORTAL_CREDENTIAL_KEYS.

Rotation: put a new key first in the list (keep the old ones after it), run this
command, then remove the old keys.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import transaction

from portal.crypto import rotate
from portal.models import Connection


class Command(BaseCommand):
    help = "Re-encrypt all stored credentials under the newest key."

    @transaction.atomic
    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        count = 0
        for connection in Connection.objects.select_for_update().only("pk", "credentials_encrypted"):
            connection.credentials_encrypted = rotate(connection.credentials_encrypted)
            connection.save(update_fields=["credentials_encrypted"])
            count += 1
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted the credentials of {count} connection(s)."))
