"""Ask the platform, when a mapping is saved, whether its target exists there.

A target the platform does not know (a Toucan data source missing from the small app's
etl_config) used to be accepted and fail only at the first release. Connectors that can
tell implement ``Connector.check_target``; the others answer [] and nothing changes."""

from __future__ import annotations

from dataclasses import dataclass, field

from connectors.base import ConnectorError, Schema
from portal.crypto import InvalidToken
from portal.models import Connection


@dataclass(frozen=True)
class TargetCheck:
    #: What the platform says is wrong: the mapping is not saved.
    problems: list[str] = field(default_factory=list)
    #: Why the platform could not be asked (unreachable, credentials): saved, with a warning.
    unverified: str = ""


def mapping_target_check(*, connection: Connection, target: Schema) -> TargetCheck:
    """Never raises for a platform error: an unreachable platform must not block editing."""
    try:
        with connection.connector(interactive=True) as connector:
            problems = connector.check_target(target)
    except ConnectorError as exc:
        return TargetCheck(unverified=f"{connection.connector_class.label} could not confirm the target: {exc.message}")
    except (InvalidToken, ValueError):  # undecryptable or stale credentials: the connection page says so
        return TargetCheck(unverified="The connection's credentials cannot be read, so the target was not checked.")
    return TargetCheck(problems=problems)
