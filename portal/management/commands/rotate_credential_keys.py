"""Re-encrypt every encrypted value (connections' credentials, webhook secrets) under the first
key of PORTAL_CREDENTIAL_KEYS, and report the counts.

Rotation: put a new key first in the list (keep the old ones after it), run this
command, then remove the old keys. It exits non-zero when a value cannot be decrypted
by any key: removing a key then would lose nothing more, but the value must be re-entered.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from portal.security.key_rotation import credential_keys_rotate


class Command(BaseCommand):
    help = "Re-encrypt all stored credentials and webhook secrets under the newest key."

    def handle(self, *args: Any, **options: Any) -> None:
        counts = credential_keys_rotate()
        unreadable = 0
        for label, count in counts.items():
            line = f"{label}: {count.rotated} re-encrypted, {count.empty} empty"
            if count.unreadable:
                line += f", {len(count.unreadable)} unreadable (ids {', '.join(map(str, count.unreadable))})"
                unreadable += len(count.unreadable)
            self.stdout.write(line)
        if unreadable:
            raise CommandError(
                f"{unreadable} value(s) cannot be decrypted with any key in PORTAL_CREDENTIAL_KEYS: "
                "they were left as they are; re-enter them."
            )
        self.stdout.write(self.style.SUCCESS("Every encrypted value is under the first key."))
