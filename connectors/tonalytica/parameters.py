"""Redash query parameters: their types, the exact formats the UI sends, and coercion."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any, Literal

ParameterType = Literal[
    "text",
    "number",
    "enum",
    "query",
    "date",
    "datetime-local",
    "datetime-with-seconds",
    "date-range",
    "datetime-range",
    "datetime-range-with-seconds",
]
#: The exact formats the Redash UI sends (its ``_is_date`` is laxer: we are stricter on purpose,
#: so a typo is caught in the form instead of running a query on a misread date).
DATE_FORMATS: dict[str, tuple[str, str]] = {
    # type -> (strptime format, what users are told)
    "date": ("%Y-%m-%d", "YYYY-MM-DD"),
    "datetime-local": ("%Y-%m-%d %H:%M", "YYYY-MM-DD HH:MM"),
    "datetime-with-seconds": ("%Y-%m-%d %H:%M:%S", "YYYY-MM-DD HH:MM:SS"),
}
RANGE_TYPES = {
    "date-range": "date",
    "datetime-range": "datetime-local",
    "datetime-range-with-seconds": "datetime-with-seconds",
}


def _parse_date(name: str, kind: str, value: Any) -> tuple[str, dt.datetime]:
    """A date or datetime parameter value as Redash wants it, and its parsed value."""
    fmt, shown = DATE_FORMATS[kind]
    if isinstance(value, dt.datetime):
        value = value.strftime(fmt)
    elif isinstance(value, dt.date):
        value = value.isoformat() if kind == "date" else dt.datetime.combine(value, dt.time()).strftime(fmt)
    if not isinstance(value, str):
        raise ValueError(f"parameter '{name}' must be a {kind} written {shown}, got {value!r}")
    text = value.strip().replace("T", " ")
    try:
        # strptime alone accepts "2024-1-5": the length check keeps the format exact.
        parsed = dt.datetime.strptime(text, fmt)
        if len(text) != len(parsed.strftime(fmt)):
            raise ValueError
    except ValueError:
        raise ValueError(f"parameter '{name}' must be a {kind} written {shown}, got {value!r}") from None
    return text, parsed


def coerce_parameter(name: str, kind: str, value: Any, options: Iterable[str] = ()) -> Any:
    """``value`` in the JSON shape Redash expects for a parameter of type ``kind``.

    Raises ValueError with a message naming the parameter. Numbers become int or float,
    dates stay strings in their exact format, ranges become ``{"start", "end"}`` with the
    end not before the start.
    """
    if kind == "number":
        if isinstance(value, bool):
            raise ValueError(f"parameter '{name}' must be a number, got {value!r}")
        if isinstance(value, int | float):
            return value
        try:
            number = float(str(value).strip())
        except ValueError:
            raise ValueError(f"parameter '{name}' must be a number, got {value!r}") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError(f"parameter '{name}' must be a finite number, got {value!r}")
        return int(number) if number.is_integer() and "." not in str(value) else number
    if kind == "text":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise ValueError(f"parameter '{name}' must be text, got {value!r}")
        return value
    if kind in ("enum", "query"):
        allowed = list(options)
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str | int) and not isinstance(v, bool) for v in values):
            raise ValueError(f"parameter '{name}' must be one of its options, got {value!r}")
        if kind == "enum" and allowed:
            wrong = [str(v) for v in values if str(v) not in allowed]
            if wrong:
                raise ValueError(f"parameter '{name}' must be one of {', '.join(allowed)}; got {', '.join(wrong)}")
        return value
    if kind in DATE_FORMATS:
        return _parse_date(name, kind, value)[0]
    if kind in RANGE_TYPES:
        if not isinstance(value, Mapping) or set(value) != {"start", "end"}:
            raise ValueError(f"parameter '{name}' must be a range with a start and an end, got {value!r}")
        start, start_at = _parse_date(f"{name}.start", RANGE_TYPES[kind], value["start"])
        end, end_at = _parse_date(f"{name}.end", RANGE_TYPES[kind], value["end"])
        if end_at < start_at:
            raise ValueError(f"parameter '{name}' ends ({end}) before it starts ({start})")
        return {"start": start, "end": end}
    raise ValueError(f"parameter '{name}' has an unknown type {kind!r}")


def is_blank(kind: str, value: Any) -> bool:
    # A form sends "" for an empty field: only a text parameter can mean an empty string.
    return value is None or (value == "" and kind != "text")


def parameter_declarations(query: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A Redash query's ``options.parameters`` as plain declarations.

    Each is ``{"name", "title", "type", "value", "enum_options", "multiple"}``; ``value``
    is the query's saved default as Redash stores it (possibly a dynamic date like
    ``"d_last_7_days"``, which only the Redash UI resolves).
    """
    options = query.get("options") or {}
    declared = []
    for p in options.get("parameters") or []:
        if not isinstance(p, Mapping) or not p.get("name"):
            continue
        enum = p.get("enumOptions") or ""
        declared.append(
            {
                "name": p["name"],
                "title": p.get("title") or p["name"],
                "type": p.get("type") or "text",
                "value": p.get("value"),
                "enum_options": [o for o in enum.splitlines() if o] if isinstance(enum, str) else [],
                "multiple": bool(p.get("multiValuesOptions")),
            }
        )
    return declared
