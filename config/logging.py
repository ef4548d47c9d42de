"""Structured logs: structlog through the standard library, JSON in production, readable locally.

Every record, from structlog or from a plain ``logging.getLogger`` call, goes through the same
``ProcessorFormatter`` chain, so it carries the context bound with ``structlog.contextvars``:
``request_id`` and ``user_id`` (django-structlog's middleware), ``task_id`` and the parent
request's ``request_id`` in Celery tasks (django-structlog's Celery support), and ``team_id``,
``release_id``, ``step``, ``platform`` (``portal.log_context``).

``redact_secrets`` masks the value of any key that names a secret, at any depth, and strips
query strings from URLs: a secret must never reach a log line even if someone logs a dict.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

SECRET_KEY_PATTERN = re.compile(
    r"pass(word)?|secret|token|api[_-]?key|authori[sz]ation|credential|cookie|jwt|signature|private", re.IGNORECASE
)
# The query string of a URL or of a request path ("GET /x/?a=1"): signed URLs and tokens live there.
URL_QUERY = re.compile(r"((?:https?://|(?<![\w/.])/)[^\s?#\"']*)\?([^\s\"'#]*)")
REDACTED = "[redacted]"


def _mask_query(match: re.Match[str]) -> str:
    """Keep the parameter names (useful when debugging), never their values."""
    names = [part.split("=", 1)[0] for part in match.group(2).split("&") if part]
    return f"{match.group(1)}?" + "&".join(f"{name}={REDACTED}" for name in names)


def scrub(value: Any, depth: int = 0) -> Any:
    if depth > 6:
        return value
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and SECRET_KEY_PATTERN.search(k) else scrub(v, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub(v, depth + 1) for v in value]
    if isinstance(value, str):
        return URL_QUERY.sub(_mask_query, value)
    return value


def redact_secrets(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: mask secret-named keys and URL query strings (signed URLs)."""
    return scrub(event_dict)


def shared_processors() -> list[Any]:
    """What both structlog loggers and foreign (stdlib) records go through before rendering."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
    ]


def logging_config(*, json_logs: bool, level: str = "INFO") -> dict[str, Any]:
    """The LOGGING dict: one console handler whose formatter renders JSON or coloured text."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_logs
        # plain_traceback: rich's pretty tracebacks print every frame's locals, decrypted credentials included.
        else structlog.dev.ConsoleRenderer(
            colors=False, pad_event_to=40, sort_keys=True, exception_formatter=structlog.dev.plain_traceback
        )
    )
    # Tracebacks become text first, so the redaction sees them too.
    final = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        structlog.processors.format_exc_info,
        redact_secrets,
    ]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [*final, renderer],
                "foreign_pre_chain": shared_processors(),
            },
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"level": level, "handlers": ["console"]},
        "loggers": {
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
            # Celery installs its own handlers unless told not to (CELERY_WORKER_HIJACK_ROOT_LOGGER).
            "celery": {"level": level},
            "django_structlog": {"level": level},
        },
    }


def configure_structlog() -> None:
    """structlog's own loggers hand their event dicts to the stdlib formatter above."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared_processors(),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.UnicodeDecoder(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
