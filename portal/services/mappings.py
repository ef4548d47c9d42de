"""Writes on mappings (dataset -> platform target) and their saved parameter versions."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from connectors.base import ConnectorError, Schema, TargetState
from portal.exceptions import ApplicationError
from portal.models import Connection, Dataset, Mapping, ObjectState, ParamsVersion
from portal.services.audit import audit


def target_validate(*, connection: Connection, data: dict[str, Any]) -> Schema:
    return connection.connector_class.Target.model_validate(data)


@transaction.atomic
def mapping_create(*, dataset: Dataset, connection: Connection, name: str, target: Schema, actor: User) -> Mapping:
    if connection.team_id != dataset.team_id:
        raise ApplicationError("The connection belongs to another team.")
    if connection.state != ObjectState.ENABLED:
        raise ApplicationError(f"The connection {connection.name} is {connection.state}.")
    mapping = Mapping(
        team=dataset.team, dataset=dataset, connection=connection, name=name, target=target.model_dump(mode="json")
    )
    mapping.full_clean()
    mapping.save()
    audit(actor=actor, action="mapping-created", obj=mapping, changes={"target": mapping.target})
    return mapping


@transaction.atomic
def mapping_update(*, mapping: Mapping, name: str, target: Schema, actor: User) -> Mapping:
    mapping.name, mapping.target = name, target.model_dump(mode="json")
    mapping.full_clean()
    mapping.save()
    audit(actor=actor, action="mapping-updated", obj=mapping, changes={"target": mapping.target})
    return mapping


def mapping_set_state(*, mapping: Mapping, state: TargetState, actor: User) -> Mapping:
    """Change a mapping's state. Where the platform has toggles, it changes there first:
    the local state moves only when the platform said ok."""
    connector_class = mapping.connection.connector_class
    remote_message = ""
    if connector_class.remote_toggles:
        try:
            with mapping.connection.connector(interactive=True) as connector:
                remote_message = connector.set_target_state(mapping.target_schema(), state)
        except ConnectorError as exc:
            raise ApplicationError(f"{connector_class.label} refused: {exc.message}. Nothing was changed.") from None
    with transaction.atomic():
        old = mapping.state
        mapping.state = ObjectState(state)
        fields = ["state", "updated_at"]
        if connector_class.remote_toggles:
            mapping.remote_state, mapping.remote_state_at = mapping.state, timezone.now()
            fields += ["remote_state", "remote_state_at"]
        mapping.save(update_fields=fields)
        audit(
            actor=actor,
            action="mapping-state",
            obj=mapping,
            changes={"from": old, "to": state, "remote": remote_message},
        )
    return mapping


@transaction.atomic
def params_version_save(*, mapping: Mapping, params: Schema, note: str = "", actor: User) -> ParamsVersion:
    """Save the mapping's default parameters as a new version; every version is kept."""
    data = params.model_dump(mode="json")
    last = mapping.params_versions.order_by("-number").first()
    if last is not None and last.params == data:
        raise ApplicationError(f"Nothing changed since version {last.number}.")
    version = ParamsVersion.objects.create(
        mapping=mapping, number=(last.number + 1 if last else 1), params=data, note=note[:200], created_by=actor
    )
    Mapping.objects.filter(pk=mapping.pk).update(default_params=data)
    mapping.default_params = data
    audit(actor=actor, action="params-saved", obj=mapping, changes={"version": version.number, "note": note[:200]})
    return version


def params_validate(*, mapping: Mapping, data: dict[str, Any]) -> Schema:
    connector_class = mapping.connection.connector_class
    return connector_class.Params.model_validate(data, context={"target": mapping.target_schema()})
