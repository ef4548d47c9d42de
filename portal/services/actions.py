"""Platform actions declared by connectors: reads in the request, writes through a worker."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from pydantic import ValidationError as SchemaError

from connectors.base import Action, ActionResult, ConnectorError, Schema
from portal import jobs
from portal.exceptions import ApplicationError
from portal.models import ActionRun, Connection, Mapping, ObjectState
from portal.services.audit import audit


def tables_as_json(tables: Any) -> list[dict[str, Any]]:
    return [
        {
            "title": t.title,
            "columns": list(t.columns),
            "rows": [list(r) for r in t.rows],
            "status_column": t.status_column,
        }
        for t in tables
    ]


def action_read(
    *, connection: Connection, mapping: Mapping | None, action: Action, params: Schema | None
) -> ActionResult:
    """Run a read-only action now, in the caller's process (short timeout). Raises ConnectorError."""
    if action.mutating:
        raise ApplicationError("This action changes the platform: it runs in a worker.")
    target = mapping.target_schema() if mapping else None
    with connection.connector(interactive=True) as connector:  # a person waits: the short read timeout
        return connector.run_action(action, target=target, params=params)


@transaction.atomic
def action_request(
    *, connection: Connection, mapping: Mapping | None, action: Action, params: Schema | None, actor: User
) -> ActionRun:
    """Record a mutating action and hand it to a worker."""
    if connection.state != ObjectState.ENABLED:
        raise ApplicationError(f"The connection {connection.name} is {connection.state}.")
    run = ActionRun.objects.create(
        team=connection.team,
        connection=connection,
        mapping=mapping,
        action=action.name,
        label=action.label,
        params=params.model_dump(mode="json") if params is not None else {},
        requested_by=actor,
    )
    audit(actor=actor, action=f"action-{action.name}", obj=mapping or connection, changes={"params": run.params})
    jobs.action_run(run.pk)
    return run


def action_perform(*, run: ActionRun) -> ActionRun:
    """Perform a recorded action (in the worker) and store its outcome."""
    connector_class = run.connection.connector_class
    action = connector_class.action(run.action)
    try:
        params = action.params.model_validate(run.params) if action.params else None
        target = run.mapping.target_schema() if run.mapping else None
        with run.connection.connector() as connector:
            result = connector.run_action(action, target=target, params=params)
        status, message, tables = ActionRun.Status.SUCCEEDED, result.message, tables_as_json(result.tables)
    except ConnectorError as exc:
        status, message, tables = ActionRun.Status.FAILED, exc.message, []
    except SchemaError:
        status, message, tables = ActionRun.Status.FAILED, "The saved settings no longer fit this platform.", []
    ActionRun.objects.filter(pk=run.pk).update(
        status=status, message=message, tables=tables, finished_at=timezone.now()
    )
    run.refresh_from_db()
    return run
