"""Error tracking with sentry-sdk (Django, Celery and logging integrations), only when SENTRY_DSN is set.

Secrets never leave in an event, by three layers:

- ``include_local_variables`` is off unless asked for: a frame that holds a decrypted
  credential under any variable name would otherwise be sent whole;
- sentry's ``EventScrubber``, recursive, with our extra key names;
- ``before_send`` / ``before_breadcrumb`` pass the whole event through the log redaction
  (``config.logging``): any key that names a secret (``cred-password`` in a form body,
  ``Authorization`` in headers) and the query string of any URL (signed upload URLs).

No trace headers are added to calls to the platforms (``trace_propagation_targets=[]``).
"""

from __future__ import annotations

from typing import Any

import sentry_sdk
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber
from sentry_sdk.transport import Transport

from config.logging import scrub

EXTRA_DENYLIST = ["pass", "pw", "pwd", "jwt", "signature", "x_portal_signature", "credentials_encrypted", "key"]


def scrub_event(event: Any, hint: Any = None) -> Any:
    """``before_send``: every secret-named key and URL query string in the event is masked."""
    return scrub(event)


def scrub_breadcrumb(crumb: Any, hint: Any = None) -> Any:
    return scrub(crumb)


def init_sentry(
    *,
    dsn: str,
    environment: str,
    release: str | None = None,
    traces_sample_rate: float = 0.0,
    include_local_variables: bool = False,
    transport: type[Transport] | Transport | None = None,
) -> None:
    """Start error tracking; ``transport`` is for tests, which record events instead of sending them."""
    options: dict[str, Any] = {}
    if transport is not None:
        options["transport"] = transport
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release,
        integrations=[DjangoIntegration(), CeleryIntegration(), LoggingIntegration()],  # no PII: the default
        include_local_variables=include_local_variables,
        event_scrubber=EventScrubber(denylist=DEFAULT_DENYLIST + EXTRA_DENYLIST, recursive=True),
        before_send=scrub_event,
        before_breadcrumb=scrub_breadcrumb,
        traces_sample_rate=traces_sample_rate,
        trace_propagation_targets=[],
        **options,
    )
