"""The operations page: for staff and team admins, live through htmx, every number linking to what is behind it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.models import ChunkedUpload, ReleaseStep, StepStatus
from portal.operations.heartbeats import beat_tick, worker_heartbeat
from portal.operations.metrics import record_sweep
from tests.factories import ReleaseFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def stuck_release(toucan_mapping, alice):
    """A running release whose waiting step should have been checked an hour ago."""
    release = ReleaseFactory(mapping=toucan_mapping, created_by=alice, status="running", started_at=timezone.now())
    ReleaseStep.objects.create(
        release=release,
        position=0,
        name="operation:release",
        label="Release",
        status=StepStatus.WAITING,
        next_check_at=timezone.now() - timedelta(hours=1),
        started_at=timezone.now() - timedelta(hours=1),
    )
    return release


def test_a_team_admin_sees_the_health_and_the_releases_behind_each_number(client, alice, stuck_release):
    worker_heartbeat("celery@ops-host")
    beat_tick()
    record_sweep(2)
    ChunkedUpload.objects.create(
        team=stuck_release.team, dataset=stuck_release.dataset, user=alice, filename="big.csv", size=1000, offset=400
    )
    client.force_login(alice)
    response = client.get(reverse("portal:ops"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "celery@ops-host" in html and "alive" in html
    assert 'id="ops-queues"' in html
    overdue_url = reverse("portal:ops-releases", args=["overdue"])
    assert f'<a href="{overdue_url}">1</a>' in html
    assert f"release #{stuck_release.pk}" in html
    assert "releases re-dispatched" in html and ">2</a>" in html
    assert "big.csv" in html
    assert reverse("portal:ops") in html  # the nav link

    listed = client.get(overdue_url)
    assert listed.status_code == 200
    assert stuck_release.get_absolute_url() in listed.content.decode()


def test_htmx_gets_only_the_live_part(client, alice):
    client.force_login(alice)
    response = client.get(reverse("portal:ops"), HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="ops-live"')
    assert "<html" not in html
    assert "No worker has sent a heartbeat" in html


def test_a_viewer_is_refused(client, bob):
    client.force_login(bob)
    assert client.get(reverse("portal:ops")).status_code == 403
    assert client.get(reverse("portal:ops-releases", args=["overdue"])).status_code == 403
    assert reverse("portal:ops") not in client.get(reverse("portal:dashboard")).content.decode()


def test_an_admin_of_another_team_does_not_see_our_releases(client, charlie, stuck_release):
    client.force_login(charlie)
    html = client.get(reverse("portal:ops")).content.decode()
    assert f"release #{stuck_release.pk}" not in html
    listed = client.get(reverse("portal:ops-releases", args=["overdue"])).content.decode()
    assert stuck_release.get_absolute_url() not in listed


def test_anonymous_users_go_to_the_login_page(client):
    response = client.get(reverse("portal:ops"))
    assert response.status_code == 302 and reverse("login") in response["Location"]
