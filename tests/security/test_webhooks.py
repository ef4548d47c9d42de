"""Webhooks: signed over a timestamp (verified as the README shows), and sent through the outbound policy."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from portal.automation.notifications import channel_create, deliver
from portal.models import NotificationChannel, NotificationDelivery, Release

from ..factories import MappingFactory, UploadFactory
from .listener import listener

pytestmark = pytest.mark.django_db


def verify(secret: bytes, body: bytes, timestamp: str, signature: str, window: int = 300) -> bool:
    """The README's receiver code, verbatim."""
    if abs(time.time() - int(timestamp)) > window:
        return False  # too old (or from the future): a replay
    expected = "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


@pytest.fixture
def delivery_for(team):
    def make(channel: NotificationChannel) -> NotificationDelivery:
        mapping = MappingFactory(dataset__team=team)
        upload = UploadFactory(dataset=mapping.dataset)
        release = Release.objects.create(
            team=team, mapping=mapping, dataset=mapping.dataset, upload=upload, platform="toucan", status="failed"
        )
        return NotificationDelivery.objects.create(channel=channel, release=release, event="failure")

    return make


def test_a_delivery_verifies_and_a_replay_or_a_changed_body_does_not(team, alice, delivery_for) -> None:
    with listener() as got:
        channel = channel_create(
            team=team, kind="webhook", target=got.url + "/hook?token=abc", secret="s3cret", actor=alice
        )
        delivered = deliver(delivery_for(channel))
    assert delivered.status == "delivered"
    _method, path, headers, body = got.requests[0]
    assert path == "/hook?token=abc"
    timestamp, signature = headers["X-Portal-Timestamp"], headers["X-Portal-Signature"]
    assert verify(b"s3cret", body, timestamp, signature)
    assert not verify(b"s3cret", body.replace(b"failed", b"passed"), timestamp, signature)
    assert not verify(b"s3cret", body, str(int(timestamp) - 3600), signature)  # a re-sent old timestamp
    assert json.loads(body)["event"] == "release.failed"
    # The audit trail keeps where it goes, without the URL's path or query.
    event = team.audit_events.get(action="channel-created")
    assert event.changes == {"kind": "webhook", "target": got.url}


def test_a_receiver_the_policy_refuses_at_delivery_gets_nothing_and_is_not_retried(
    team, settings, delivery_for
) -> None:
    with listener() as got:
        channel = channel_create(team=team, kind="webhook", target=got.url + "/hook")
        settings.PORTAL_OUTBOUND_ALLOW = []  # the name now leads to loopback, which is not allowed
        delivered = deliver(delivery_for(channel))
    assert got.requests == []
    assert delivered.status == "failed" and "loopback" in delivered.error
    assert NotificationDelivery.objects.filter(channel=channel).count() == 1  # no retry queued


def test_a_redirecting_receiver_is_not_followed(team, delivery_for) -> None:
    with listener(status=307, headers={"Location": "http://169.254.169.254/latest/meta-data/"}) as got:
        channel = channel_create(team=team, kind="webhook", target=got.url + "/hook")
        delivered = deliver(delivery_for(channel))
    assert len(got.requests) == 1 and delivered.status != "delivered" and delivered.response_code == 307
