from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from connectors.registry import CONNECTORS
from portal.models import Connection, Mapping, Membership

pytestmark = pytest.mark.django_db


def test_it_creates_the_demo_team_once_and_prints_the_password_once(django_capture_on_commit_callbacks):
    out = StringIO()
    with django_capture_on_commit_callbacks():
        call_command("seed_demo", stdout=out)
    assert "admin / " in out.getvalue()
    password = out.getvalue().split("admin / ")[1].split()[0]
    assert get_user_model().objects.get(username="admin").check_password(password)
    assert set(Membership.objects.values_list("user__username", "role")) == {
        ("admin", "admin"),
        ("operator", "operator"),
        ("viewer", "viewer"),
    }
    assert set(Connection.objects.values_list("platform", flat=True)) == set(CONNECTORS)
    assert Mapping.objects.count() >= len(CONNECTORS)
    assert all(c.test_requested_at for c in Connection.objects.all())
    again = StringIO()
    call_command("seed_demo", stdout=again)
    assert "already has users" in again.getvalue() and "admin / " not in again.getvalue()
