"""Upload a file to a mapping's dataset, release it, wait for the end.

Exit status: 0 when the release succeeded, 1 when it failed or was cancelled (the reason
is printed), 2 for bad arguments, 3 when --timeout ran out first. For cron:

    manage.py release_file --mapping 12 --file /data/sales.csv --user ops-bot --param notify=true
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError, CommandParser
from pydantic import ValidationError as SchemaError

from portal import permissions
from portal.exceptions import ApplicationError
from portal.models import Mapping, Release
from portal.services.mappings import params_validate
from portal.services.releases import release_create
from portal.services.uploads import upload_create


class Command(BaseCommand):
    help = "Upload a file to a mapping, release it and wait for the end (exit 0 on success)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--mapping", type=int, required=True, help="mapping id")
        parser.add_argument("--file", help="file to upload first (the platforms that need one)")
        parser.add_argument("--user", required=True, help="acting user (needs the operator role)")
        parser.add_argument(
            "--param", action="append", default=[], help="release parameter name=value (value may be JSON)"
        )
        parser.add_argument("--no-wait", action="store_true", help="return once the release is queued")
        parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait (default 3600)")

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        try:
            user = User.objects.get(username=options["user"])
        except User.DoesNotExist:
            raise CommandError(f"No user {options['user']!r}", returncode=2) from None
        mapping = Mapping.objects.select_related("connection", "dataset").filter(pk=options["mapping"]).first()
        if mapping is None or not permissions.has_role(user, mapping.team_id, permissions.OPERATE):
            raise CommandError(f"No mapping {options['mapping']} that {user} may release", returncode=2)
        params = dict(mapping.default_params or {})
        for item in options["param"]:
            name, sep, value = item.partition("=")
            if not sep:
                raise CommandError(f"--param takes name=value, got {item!r}", returncode=2)
            try:
                params[name] = json.loads(value)
            except json.JSONDecodeError:
                params[name] = value
        try:
            upload = None
            if options["file"]:
                path = Path(options["file"])
                if not path.is_file():
                    raise CommandError(f"No file at {path}", returncode=2)
                with path.open("rb") as handle:
                    upload = upload_create(dataset=mapping.dataset, file=File(handle, name=path.name), actor=user)
                self.stdout.write(f"Uploaded {upload.original_name} ({upload.size} bytes) as upload {upload.pk}")
            release = release_create(
                mapping=mapping,
                upload=upload,
                params=params_validate(mapping=mapping, data=params),
                actor=user,
                trigger="cli",
            )
        except (ApplicationError, ValidationError, SchemaError) as exc:
            raise CommandError(f"Not released: {getattr(exc, 'message', exc)}", returncode=2) from None
        self.stdout.write(f"Release {release.pk} queued")
        if options["no_wait"]:
            return
        deadline = time.monotonic() + options["timeout"]
        while time.monotonic() < deadline:
            release = Release.objects.get(pk=release.pk)
            if release.is_terminal:
                break
            # This is the cron user's own process waiting on the database for its release;
            # the platform work itself runs in the workers, which never sleep.
            time.sleep(1)
        else:
            raise CommandError(
                f"Release {release.pk} still {release.status} after {options['timeout']:.0f} s", returncode=3
            )
        for step in release.steps.all():
            self.stdout.write(f"  {step.label}: {step.status}{' — ' + step.error if step.error else ''}")
        if release.status != "succeeded":
            raise CommandError(f"Release {release.pk} {release.status}: {release.error or 'cancelled'}", returncode=1)
        self.stdout.write(self.style.SUCCESS(f"Release {release.pk} succeeded"))
