"""Create the demo team on an empty database: an admin (password printed once), an
operator and a viewer, and one connection per platform pointing at the simulators."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from connectors.registry import CONNECTORS
from portal.models import Dataset, Role, Team
from portal.services.connections import connection_create, connection_request_test
from portal.services.mappings import mapping_create, target_validate
from portal.services.teams import membership_set
from simulators.app import SIMULATORS, simulator_class


class Command(BaseCommand):
    help = "Create a demo team, users and connections to the bundled simulators (only on an empty database)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--simulator-url", default=settings.PORTAL_SIMULATOR_URL)

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        if User.objects.exists():
            self.stdout.write("The database already has users: demo data not created.")
            return
        password = secrets.token_urlsafe(12)
        admin = User.objects.create_superuser("admin", "admin@example.com", password)
        team = Team.objects.create(name="Demo team")
        membership_set(team=team, user=admin, role=Role.ADMIN, actor=admin)
        for username, role in (("operator", Role.OPERATOR), ("viewer", Role.VIEWER)):
            user = User.objects.create_user(username, f"{username}@example.com", password)
            membership_set(team=team, user=user, role=role, actor=admin)

        base = options["simulator_url"].rstrip("/")
        for slug in CONNECTORS:
            if slug not in SIMULATORS:
                continue
            demo = simulator_class(slug).demo(f"{base}/{slug}")
            if not demo:
                continue
            connection = connection_create(
                team=team,
                platform=slug,
                name=demo["name"],
                base_url=f"{base}/{slug}",
                credentials=demo["credentials"],
                actor=admin,
            )
            # Queued now, run as soon as the worker starts: the dashboard shows health at once.
            connection_request_test(connection=connection, actor=admin)
            for spec in demo.get("mappings", []):
                dataset, _ = Dataset.objects.get_or_create(team=team, name=spec["dataset"])
                target = target_validate(connection=connection, data=spec["target"])
                mapping = mapping_create(
                    dataset=dataset, connection=connection, name=spec["name"], target=target, actor=admin
                )
                if spec.get("default_params"):
                    mapping.default_params = spec["default_params"]
                    mapping.save(update_fields=["default_params"])

        line = "=" * 64
        self.stdout.write(
            self.style.SUCCESS(
                f"\n{line}\nDemo team created. Log in at http://127.0.0.1:8000/ with\n"
                f"  admin / {password}      (also: operator, viewer — same password)\n"
                f"This password is shown only this once.\n{line}\n"
            )
        )
