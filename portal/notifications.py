"""Release outcome notifications by email and signed webhook, each attempt recorded.

Channels are configured per team; a mapping with channels of its own uses those instead.
A webhook body is JSON, signed with HMAC-SHA256 of the body under the channel's secret
(header ``X-Portal-Signature: sha256=<hex>``), and retried with backoff on failure.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from typing import Any

import httpx
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse

from .crypto import decrypt_json, encrypt_json
from .models import NotificationChannel, NotificationDelivery, Release, ReleaseStatus, StepStatus

SIGNATURE_HEADER = "X-Portal-Signature"


def webhook_target_check(url: str) -> None:
    """Refuse a webhook on a loopback, private or link-local address (the server would call
    into its own network) unless PORTAL_WEBHOOK_ALLOW_PRIVATE is set (local runs, tests)."""
    import ipaddress
    import socket
    from urllib.parse import urlsplit

    from django.core.exceptions import ValidationError

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("A webhook needs an http(s) URL.")
    if settings.PORTAL_WEBHOOK_ALLOW_PRIVATE:
        return
    try:
        addresses = {
            info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
        }
    except OSError:
        raise ValidationError(f"The webhook's host {parts.hostname} does not resolve.") from None
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast:
            raise ValidationError(
                f"The webhook's host {parts.hostname} is on a private or local network ({ip}): refused."
            )


def channel_create(
    *, team, mapping=None, kind: str, target: str, secret: str = "", on_failure: bool = True, on_success: bool = False
) -> NotificationChannel:  # type: ignore[no-untyped-def]
    if kind == NotificationChannel.Kind.WEBHOOK:
        webhook_target_check(target.strip())
    channel = NotificationChannel(
        team=team, mapping=mapping, kind=kind, target=target.strip(), on_failure=on_failure, on_success=on_success
    )
    if secret:
        channel.secret_encrypted = encrypt_json({"secret": secret})
    channel.full_clean()
    channel.save()
    return channel


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
    from .tasks import notification_deliver_task

    if release.status not in (ReleaseStatus.FAILED, ReleaseStatus.SUCCEEDED, ReleaseStatus.ATTENTION):
        return
    # A release that needs attention is told like a failure: someone has to act.
    event = "success" if release.status == ReleaseStatus.SUCCEEDED else "failure"
    for channel in channels_for(release):
        if (event == "failure" and channel.on_failure) or (event == "success" and channel.on_success):
            delivery = NotificationDelivery.objects.create(channel=channel, release=release, event=event)
            transaction.on_commit(lambda d=delivery.pk: notification_deliver_task.delay(d))


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(delivery: NotificationDelivery) -> NotificationDelivery:
    """One attempt. On failure a new attempt row is queued with backoff, up to the limit."""
    channel, release = delivery.channel, delivery.release
    data = payload(release)
    try:
        if channel.kind == NotificationChannel.Kind.EMAIL:
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
            send_mail(subject, "\n".join(lines), None, [a.strip() for a in channel.target.split(",") if a.strip()])
            code = None
        else:
            body = json.dumps(data, separators=(",", ":")).encode()
            secret = decrypt_json(channel.secret_encrypted)["secret"] if channel.secret_encrypted else ""
            headers = {
                "Content-Type": "application/json",
                "X-Portal-Event": data["event"],
                "X-Portal-Delivery": str(delivery.pk),
            }
            if secret:
                headers[SIGNATURE_HEADER] = sign(body, secret)
            response = httpx.post(
                channel.target,
                content=body,
                headers=headers,
                timeout=settings.PORTAL_WEBHOOK_TIMEOUT_SECONDS,
                follow_redirects=False,
            )
            code = response.status_code
            if not 200 <= code < 300:
                raise RuntimeError(f"the receiver answered {code}")
    except Exception as exc:  # any failure of the receiver: record it, retry later
        return _failed(
            delivery,
            str(exc) if not isinstance(exc, httpx.HTTPError) else type(exc).__name__,
            getattr(locals().get("response"), "status_code", None),
        )
    NotificationDelivery.objects.filter(pk=delivery.pk).update(
        status=NotificationDelivery.Status.DELIVERED, response_code=code, error=""
    )
    delivery.refresh_from_db()
    return delivery


def _failed(delivery: NotificationDelivery, error: str, code: int | None) -> NotificationDelivery:
    from .tasks import notification_deliver_task

    last = delivery.attempt >= settings.PORTAL_WEBHOOK_MAX_ATTEMPTS
    status = NotificationDelivery.Status.FAILED if last else NotificationDelivery.Status.RETRYING
    NotificationDelivery.objects.filter(pk=delivery.pk).update(status=status, response_code=code, error=error[:500])
    if not last:
        nxt = NotificationDelivery.objects.create(
            channel=delivery.channel, release=delivery.release, event=delivery.event, attempt=delivery.attempt + 1
        )
        base = settings.PORTAL_WEBHOOK_RETRY_BASE_SECONDS
        delay = random.uniform(base / 2, base * 2 ** (delivery.attempt - 1))
        transaction.on_commit(lambda: notification_deliver_task.apply_async((nxt.pk,), countdown=delay))
    delivery.refresh_from_db()
    return delivery
