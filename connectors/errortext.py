"""A platform's error body as the sentence a person reads: its own words, never a Python repr.

Platforms nest their reasons (``{"error": {"status": 403, "message": "..."}}``), list them
(``{"errors": [{"field": "name", "message": "is required"}]}``) or keep a log
(``{"error_log": ["..."]}``). ``error_sentence`` walks such a body and joins the texts it
finds; numbers, flags and codes alone are left out, so no ``{`` or ``'status':`` reaches
a message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Keys whose value is the reason, most telling first.
TEXT_KEYS = (
    "message",
    "error_description",
    "detail",
    "error",
    "errors",
    "reason",
    "description",
    "title",
    "statusMessage",
    "status_message",
    "errorMessage",
    "errorLog",
    "error_log",
    "log",
)
#: Keys naming what the reason is about ("name: is required").
FIELD_KEYS = ("field", "param", "parameter", "loc", "path", "pointer")
MAX_CHARS = 500


def error_sentence(body: Any, *, limit: int = MAX_CHARS) -> str:
    """The texts of an error body joined into one line; "" when it holds none."""
    parts: list[str] = []
    _collect(body, parts, depth=0)
    seen: list[str] = []
    for part in parts:
        if part not in seen:
            seen.append(part)
    text = "; ".join(seen)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _collect(value: Any, parts: list[str], *, depth: int) -> None:
    if depth > 5 or value is None or isinstance(value, bool | int | float):
        return
    if isinstance(value, str):
        text = " ".join(value.split())
        if text:
            parts.append(text)
        return
    if isinstance(value, list | tuple):
        for item in value:
            _collect(item, parts, depth=depth + 1)
        return
    if isinstance(value, Mapping):
        found: list[str] = []
        for key in TEXT_KEYS:
            if key in value:
                _collect(value[key], found, depth=depth + 1)
                if found:
                    break
        if not found:
            return
        field = next((value[k] for k in FIELD_KEYS if isinstance(value.get(k), str | list) and value.get(k)), None)
        if field is not None:
            name = ".".join(map(str, field)) if isinstance(field, list) else str(field)
            found = [f"{name}: {found[0]}", *found[1:]]
        parts.extend(found)
