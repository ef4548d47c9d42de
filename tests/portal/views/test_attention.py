"""A step that needs attention: the release page's two buttons and the API action."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from portal import jobs, tokens
from portal.engine.core import release_advance
from portal.models import AuditEvent, Release, ReleaseStatus, ReleaseStep, StepStatus
from portal.services.mappings import params_validate
from portal.services.releases import release_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def stuck(toucan_mapping, csv_upload, alice, sim, monkeypatch):
    """A release whose operation step was interrupted mid-call: Toucan cannot say, so it needs attention."""
    monkeypatch.setattr(jobs, "release_advance", lambda release_id, countdown=0: None)
    params = params_validate(mapping=toucan_mapping, data={"operations": ["release"]})
    release = release_create(mapping=toucan_mapping, upload=csv_upload, params=params, actor=alice)
    ReleaseStep.objects.filter(release=release, name="upload").update(status=StepStatus.SUCCEEDED)
    ReleaseStep.objects.filter(release=release, name="operation:release").update(
        status=StepStatus.RUNNING, attempts=1, lease_until=timezone.now() - timedelta(seconds=1)
    )
    release_advance(release.pk)
    release.refresh_from_db()
    assert release.status == ReleaseStatus.ATTENTION
    return release


def test_the_page_offers_both_buttons_to_operators_only(client, stuck, olivia, bob):
    client.force_login(olivia)
    page = client.get(stuck.get_absolute_url()).content.decode()
    assert "It happened — continue" in page and "Send again" in page
    client.force_login(bob)
    page = client.get(stuck.get_absolute_url()).content.decode()
    assert "Needs attention" in page and '<button type="submit" class="danger">Send again' not in page
    step = stuck.steps.get(name="operation:release")
    url = reverse("portal:release-step-resolve", args=[stuck.pk, step.pk, "send-again"])
    assert client.post(url).status_code in (403, 404)
    assert stuck.steps.get(pk=step.pk).status == StepStatus.ATTENTION


def test_it_happened_continues_and_is_audited(client, stuck, olivia):
    client.force_login(olivia)
    step = stuck.steps.get(name="operation:release")
    response = client.post(reverse("portal:release-step-resolve", args=[stuck.pk, step.pk, "happened"]))
    assert response.status_code == 302
    step.refresh_from_db()
    assert step.status == StepStatus.SUCCEEDED and "olivia" in step.message
    assert Release.objects.get(pk=stuck.pk).status == ReleaseStatus.RUNNING
    assert AuditEvent.objects.filter(action="release-step-happened", actor=olivia).exists()


def test_the_api_sends_it_again(stuck, olivia):
    api = APIClient()
    _token, key = tokens.token_create(user=olivia, name="t")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    url = reverse("api-release-resolve", args=[stuck.pk])
    answer = api.post(url, {"step": "operation:release", "decision": "send-again"}, format="json")
    assert answer.status_code == 202, answer.content
    assert answer.json()["status"] == ReleaseStatus.RUNNING
    step = stuck.steps.get(name="operation:release")
    assert step.status == StepStatus.PENDING and step.sends == 1
    assert AuditEvent.objects.filter(action="release-step-send-again", actor=olivia).exists()
    again = api.post(url, {"step": "operation:release", "decision": "send-again"}, format="json")
    assert again.status_code == 409
