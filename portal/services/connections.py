"""Writes on connections: encrypted credentials, tests, enable / disable / archive."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from pydantic import SecretStr
from pydantic import ValidationError as SchemaError

from connectors.base import Connector, ConnectorError, Schema
from connectors.outbound import destination
from connectors.registry import get_connector_class
from portal import jobs
from portal.crypto import UNREADABLE_CREDENTIALS, InvalidToken, decrypt_json, encrypt_json
from portal.exceptions import ApplicationError
from portal.models import Connection, ObjectState, Team
from portal.security.outbound import url_check
from portal.services.audit import audit


def _merge_secrets(
    connector_class: type[Connector[Any, Any, Any]], new: dict[str, Any], old: dict[str, Any] | None
) -> dict[str, Any]:
    """A secret left blank keeps its stored value (the form never shows it)."""
    merged = dict(new)
    for name in connector_class.secret_fields():
        value = merged.get(name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if not value and old and old.get(name):
            value = old[name]
        merged[name] = value
    return merged


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.get_secret_value() if isinstance(v, SecretStr) else v) for k, v in values.items()}


def credentials_validate(*, platform: str, data: dict[str, Any], old: dict[str, Any] | None = None) -> Schema:
    """Validate credentials through the connector's schema, keeping blank secrets."""
    connector_class = get_connector_class(platform)
    return connector_class.Credentials.model_validate(_merge_secrets(connector_class, data, old))


@transaction.atomic
def connection_create(
    *, team: Team, platform: str, name: str, base_url: str, credentials: dict[str, Any], actor: User
) -> Connection:
    url_check(base_url, field="base_url")
    validated = credentials_validate(platform=platform, data=credentials)
    connection = Connection(
        team=team,
        platform=platform,
        name=name,
        base_url=base_url,
        created_by=actor,
        credentials_encrypted=encrypt_json(_plain(validated.model_dump())),
    )
    connection.full_clean()
    connection.save()
    audit(
        actor=actor, action="connection-created", obj=connection, changes={"platform": platform, "base_url": base_url}
    )
    return connection


DESTINATION_CHANGED = "The base URL now points to another scheme, host or port: the stored secrets are not sent there."


def connection_destination_changed(*, connection: Connection, base_url: str) -> bool:
    return destination(base_url) != destination(connection.base_url)


@transaction.atomic
def connection_update(
    *, connection: Connection, name: str, base_url: str, credentials: dict[str, Any], actor: User
) -> Connection:
    url_check(base_url, field="base_url")
    try:
        old: dict[str, Any] | None = decrypt_json(connection.credentials_encrypted)
    except InvalidToken:  # unreadable with the current keys: every secret must be entered again
        old = None
    moved = connection_destination_changed(connection=connection, base_url=base_url)
    if moved:
        # Secrets are bound to their destination (scheme, host, port): a new one gets none of the
        # stored secrets, so an admin cannot redirect a connection to a listener and read them.
        missing = sorted(
            name
            for name in connection.connector_class.secret_fields()
            if (old or {}).get(name) and not _plain({name: credentials.get(name)}).get(name)
        )
        if missing:
            raise ValidationError(
                {"base_url": f"{DESTINATION_CHANGED} Enter {', '.join(missing)} again in the same submission."}
            )
        old = None
    validated = credentials_validate(platform=connection.platform, data=credentials, old=old)
    new = _plain(validated.model_dump())
    changed = sorted(k for k in new if new.get(k) != (old or {}).get(k))  # names only: never values
    connection.name, connection.base_url = name, base_url
    connection.credentials_encrypted = encrypt_json(new)
    connection.full_clean()
    connection.save()
    audit(
        actor=actor,
        action="connection-updated",
        obj=connection,
        changes={"fields": changed, "base_url": base_url, "secrets_cleared": moved},
    )
    return connection


@transaction.atomic
def connection_request_test(*, connection: Connection, actor: User) -> Connection:
    """Ask a worker to test the connection; the page polls the result."""
    connection.test_requested_at = timezone.now()
    connection.save(update_fields=["test_requested_at"])
    jobs.connection_test(connection.pk)
    return connection


def connection_test(*, connection: Connection) -> Connection:
    """Run the connector's test and store the outcome (runs in a worker)."""
    try:
        with connection.connector() as connector:
            message, ok = connector.test_connection(), True
    except ConnectorError as exc:
        message, ok = exc.message, False
    except SchemaError:
        message, ok = "The stored credentials no longer fit this platform: edit the connection.", False
    except InvalidToken:
        message, ok = UNREADABLE_CREDENTIALS, False
    Connection.objects.filter(pk=connection.pk).update(
        last_test_at=timezone.now(), last_test_ok=ok, last_test_message=message[:500]
    )
    connection.refresh_from_db()
    return connection


@transaction.atomic
def connection_set_state(*, connection: Connection, state: str, actor: User) -> Connection:
    if state == ObjectState.ARCHIVED and connection.mappings.exclude(state=ObjectState.ARCHIVED).exists():
        raise ApplicationError("Archive or move this connection's mappings first.")
    old = connection.state
    connection.state = ObjectState(state)
    connection.save(update_fields=["state", "updated_at"])
    audit(actor=actor, action="connection-state", obj=connection, changes={"from": old, "to": state})
    return connection
