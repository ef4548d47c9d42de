"""The one list of platforms. Model choices and forms derive from it; nothing else
names a platform. Classes are imported lazily, so an optional SDK that is missing
breaks only its own platform.

To add a platform: write ``connectors/<slug>.py`` (or a package ``connectors/<slug>/``) with a
``Connector`` subclass and
add one line here (see the README's "Adding a connector" checklist).
"""

from __future__ import annotations

from functools import cache
from importlib import import_module
from typing import Any

from .base import Connector

CONNECTORS: dict[str, tuple[str, str]] = {
    "toucan": ("Toucan Toco", "connectors.toucan.ToucanConnector"),
    "tonalytica": ("TONalytica", "connectors.tonalytica.connector.TonalyticaConnector"),
    "tailer": ("Tailer", "connectors.tailer.TailerConnector"),
    "usmart": ("uSmart", "connectors.usmart.connector.UsmartConnector"),
    "datahq": ("DataHQ spec store", "connectors.datahq.DatahqConnector"),
}


def platform_choices() -> list[tuple[str, str]]:
    return [(slug, label) for slug, (label, _) in CONNECTORS.items()]


@cache
def get_connector_class(slug: str) -> type[Connector[Any, Any, Any]]:
    """The connector class of a platform; KeyError for an unknown slug."""
    _label, dotted = CONNECTORS[slug]
    module_name, class_name = dotted.rsplit(".", 1)
    cls = getattr(import_module(module_name), class_name)
    if cls.slug != slug:
        raise RuntimeError(f"{dotted}.slug is {cls.slug!r}, registered as {slug!r}")
    return cls
