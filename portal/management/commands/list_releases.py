"""Print the most recent releases, newest first, one a line."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from portal.models import Release


class Command(BaseCommand):
    help = "List recent releases."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, default=20)
        parser.add_argument("--status", choices=["queued", "running", "succeeded", "failed", "cancelled"])
        parser.add_argument("--mapping", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        releases = Release.objects.select_related("dataset", "mapping", "created_by").order_by("-created_at", "-id")
        if options["status"]:
            releases = releases.filter(status=options["status"])
        if options["mapping"]:
            releases = releases.filter(mapping_id=options["mapping"])
        rows = list(releases[: options["limit"]])
        if not rows:
            self.stdout.write("No releases.")
        for r in rows:
            who = r.created_by.get_username() if r.created_by else r.trigger
            self.stdout.write(
                f"#{r.pk}\t{r.created_at:%Y-%m-%d %H:%M:%S}\t{r.status}\t{r.platform}\t"
                f"{r.dataset.name} → {r.mapping.name}\t{who}\t{r.error[:80]}"
            )
