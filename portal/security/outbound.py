"""The portal's side of the outbound policy (``connectors.outbound``): built from settings.

Read at every call, so a changed ``PORTAL_OUTBOUND_ALLOW`` (tests' ``settings`` fixture)
applies at once; the policy is cached per allow-list."""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ValidationError

from connectors.outbound import OutboundPolicy, OutboundRefused


@lru_cache(maxsize=8)
def _policy_for(allow: tuple[str, ...]) -> OutboundPolicy:
    return OutboundPolicy.from_settings(allow)


def outbound_policy() -> OutboundPolicy:
    return _policy_for(tuple(settings.PORTAL_OUTBOUND_ALLOW))


def url_check(url: str, *, field: str) -> None:
    """The save-time check of a URL the server will call; a ValidationError on ``field`` when refused."""
    try:
        outbound_policy().check_url(url)
    except OutboundRefused as exc:
        raise ValidationError({field: exc.message}) from None
