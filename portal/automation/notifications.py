"""Release outcome notifications by email and signed webhook, each attempt recorded.

Channels are configured per team; a mapping with channels of its own uses those instead.
A webhook body is JSON, signed with HMAC-SHA256 of ``<timestamp>.<body>`` under the channel's
secret (headers ``X-Portal-Timestamp`` and ``X-Portal-Signature: sha256=<hex>``; receivers refuse
old timestamps), sent through the connectors' HTTP choke point and its outbound policy, and
retried with backoff on failure."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
from collections.abc import Mapping as MappingOf
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.urls import reverse

from connectors.base import ConnectorError
from connectors.http import HttpClient
from connectors.outbound import OutboundRefused
from portal import jobs
from portal.crypto import InvalidToken, decrypt_json, encrypt_json
from portal.models import (
    Mapping,
    NotificationChannel,
    NotificationDelivery,
    Release,
    ReleaseStatus,
    StepStatus,
    Team,
)
from portal.security.outbound import outbound_policy
from portal.services.audit import audit

SIGNATURE_HEADER = "X-Portal-Signature"


TIMESTAMP_HEADER = "X-Portal-Timestamp"


UNREADABLE_SIGNING_KEY = (
    "The webhook's signing secret cannot be decrypted with PORTAL_CREDENTIAL_KEYS "
    "(its key was removed before rotation?): not sent unsigned. Enter the secret again."
)


def webhook_target_check(url: str) -> None:
    """Refuse a webhook the outbound policy would refuse (loopback, private, link-local... unless
    PORTAL_OUTBOUND_ALLOW lists it). Checked again at every delivery, on the address connected to."""
    try:
        outbound_policy().check_url(url)
    except OutboundRefused as exc:
        raise ValidationError(f"The webhook URL is refused: {exc.message}") from None


def channel_create(
    *,
    team: Team,
    mapping: Mapping | None = None,
    kind: str,
    target: str,
    secret: str = "",
    on_failure: bool = True,
    on_success: bool = False,
    actor: User | None = None,
) -> NotificationChannel:
    if kind == NotificationChannel.Kind.WEBHOOK:
        webhook_target_check(target.strip())
    channel = NotificationChannel(
        team=team, mapping=mapping, kind=kind, target=target.strip(), on_failure=on_failure, on_success=on_success
    )
    if secret:
        channel.secret_encrypted = encrypt_json({"secret": secret})
    channel.full_clean()
    channel.save()
    audit(
        actor=actor,
        action="channel-created",
        obj=channel,
        changes={"kind": kind, "target": channel.target if kind == NotificationChannel.Kind.EMAIL else _host(target)},
    )
    return channel


def channel_delete(*, channel: NotificationChannel, actor: User) -> None:
    audit(actor=actor, action="channel-deleted", obj=channel, changes={"kind": channel.kind})
    channel.delete()


def _host(url: str) -> str:
    """A webhook URL without its path or query (which may carry a token), for the audit trail."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}"


def channels_for(release: Release) -> list[NotificationChannel]:
    own = list(NotificationChannel.objects.filter(mapping=release.mapping, enabled=True))
    return own or list(NotificationChannel.objects.filter(team=release.team, mapping__isnull=True, enabled=True))


def payload(release: Release) -> dict[str, Any]:
    """What every notification says: dataset, platform, failed step, the platform's error, a link."""
    failed = release.steps.filter(status=StepStatus.FAILED).first()
    return {
        "event": f"release.{release.status}",
        "release": release.pk,
        "status": release.status,
        "dataset": release.dataset.name,
        "mapping": release.mapping.name,
        "platform": release.get_platform_display(),
        "failed_step": failed.label if failed else None,
        "error": failed.error if failed else (release.error or None),
        "url": settings.PORTAL_BASE_URL.rstrip("/") + reverse("portal:release-detail", args=[release.pk]),
        "retry_of": release.retry_of_id,
    }


def release_finished(release: Release) -> None:
    """Queue a delivery per channel that wants this outcome (called once a release ends)."""
    if release.status not in (ReleaseStatus.FAILED, ReleaseStatus.SUCCEEDED, ReleaseStatus.ATTENTION):
        return
    # A release that needs attention is told like a failure: someone has to act.
    event = "success" if release.status == ReleaseStatus.SUCCEEDED else "failure"
    for channel in channels_for(release):
        if (event == "failure" and channel.on_failure) or (event == "success" and channel.on_success):
            delivery = NotificationDelivery.objects.create(channel=channel, release=release, event=event)
            jobs.notification_deliver(delivery.pk)


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """HMAC-SHA256 over ``<timestamp>.<body>``: a receiver that checks the timestamp's age refuses replays."""
    message = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class SigningKeyUnreadable(Exception):
    """The channel's signing secret cannot be decrypted: the webhook is not sent unsigned."""

    message = UNREADABLE_SIGNING_KEY

    def __str__(self) -> str:
        return self.message


def channel_send(
    channel: NotificationChannel,
    *,
    subject: str,
    lines: list[str],
    event: str,
    payload: dict[str, Any],
    headers: MappingOf[str, str] | None = None,
) -> int | None:
    """Send one message on a channel: an email (``subject`` and ``lines``), or a webhook POST of
    ``payload`` as JSON, signed over a timestamp, through the connectors' HTTP choke point and the
    outbound policy (checked and pinned, no redirects). The one delivery path of every notice
    (release outcomes, alerts, credential health).

    Returns the webhook's status code (None for an email). Raises ``OutboundRefused`` (the policy
    refuses the receiver), ``SigningKeyUnreadable``, ``ConnectorError`` (unreachable, or a non-2xx
    answer; its message has no query string), or whatever the mail backend raises.
    """
    if channel.kind == NotificationChannel.Kind.EMAIL:
        send_mail(subject, "\n".join(lines), None, [a.strip() for a in channel.target.split(",") if a.strip()])
        return None
    body = json.dumps(payload, separators=(",", ":")).encode()
    try:
        secret = decrypt_json(channel.secret_encrypted)["secret"] if channel.secret_encrypted else ""
    except InvalidToken:
        raise SigningKeyUnreadable from None
    sent_headers = {"Content-Type": "application/json", "X-Portal-Event": event, **(headers or {})}
    if secret:
        timestamp = int(time.time())
        sent_headers[TIMESTAMP_HEADER] = str(timestamp)
        sent_headers[SIGNATURE_HEADER] = sign(body, secret, timestamp)
    with HttpClient("", timeout=settings.PORTAL_WEBHOOK_TIMEOUT_SECONDS) as client:
        response = client.request("POST", channel.target, ok=range(200, 300), content=body, headers=sent_headers)
    return response.status_code


def deliver(delivery: NotificationDelivery) -> NotificationDelivery:
    """One attempt. On failure a new attempt row is queued with backoff, up to the limit."""
    channel, release = delivery.channel, delivery.release
    data = payload(release)
    subject = f"[{data['platform']}] {data['dataset']}: release #{release.pk} {release.status}"
    lines = [
        f"Dataset: {data['dataset']}",
        f"Mapping: {data['mapping']}",
        f"Platform: {data['platform']}",
        f"Status: {release.status}",
    ]
    if data["failed_step"]:
        lines += [f"Failed step: {data['failed_step']}", f"Platform error: {data['error']}"]
    lines.append(f"Release: {data['url']}")
    try:
        code = channel_send(
            channel,
            subject=subject,
            lines=lines,
            event=data["event"],
            payload=data,
            headers={"X-Portal-Delivery": str(delivery.pk)},
        )
    except (OutboundRefused, SigningKeyUnreadable) as exc:  # sending again changes nothing
        return _failed(delivery, exc.message, None, final=True)
    except ConnectorError as exc:  # unreachable or a non-2xx answer: record it, retry later
        return _failed(delivery, exc.message, exc.status_code)
    except Exception as exc:  # any other failure (mail server...): record it, retry later
        return _failed(delivery, type(exc).__name__ if not str(exc) else str(exc), None)
    NotificationDelivery.objects.filter(pk=delivery.pk).update(
        status=NotificationDelivery.Status.DELIVERED, response_code=code, error=""
    )
    delivery.refresh_from_db()
    return delivery


def _failed(
    delivery: NotificationDelivery, error: str, code: int | None, *, final: bool = False
) -> NotificationDelivery:
    last = final or delivery.attempt >= settings.PORTAL_WEBHOOK_MAX_ATTEMPTS
    status = NotificationDelivery.Status.FAILED if last else NotificationDelivery.Status.RETRYING
    NotificationDelivery.objects.filter(pk=delivery.pk).update(status=status, response_code=code, error=error[:500])
    if not last:
        nxt = NotificationDelivery.objects.create(
            channel=delivery.channel, release=delivery.release, event=delivery.event, attempt=delivery.attempt + 1
        )
        base = settings.PORTAL_WEBHOOK_RETRY_BASE_SECONDS
        delay = random.uniform(base / 2, base * 2 ** (delivery.attempt - 1))  # noqa: S311 - jitter, not a secret
        jobs.notification_deliver(nxt.pk, countdown=delay)
    delivery.refresh_from_db()
    return delivery
