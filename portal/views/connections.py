"""Connection pages."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import HTMX_STOP_POLLING

from connectors.base import Connector
from connectors.registry import CONNECTORS, get_connector_class
from portal import permissions
from portal.crypto import UNREADABLE_CREDENTIALS, InvalidToken, decrypt_json
from portal.exceptions import ApplicationError
from portal.forms.connections import ConnectionForm
from portal.forms.schema import SchemaForm
from portal.models import Connection, ObjectState
from portal.permissions import MANAGE, OPERATE, VIEW, get_for_user
from portal.requests import AuthenticatedHttpRequest, state_or_404
from portal.selectors import core as core_selectors
from portal.services.connections import (
    DESTINATION_CHANGED,
    connection_create,
    connection_destination_changed,
    connection_request_test,
    connection_set_state,
    connection_update,
)
from portal.views.platform import platform_panels


@login_required
def connection_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    show_archived = request.GET.get("archived") == "1"
    return render(
        request,
        "portal/connection_list.html",
        {
            "connections": core_selectors.connection_list(user=request.user, include_archived=show_archived),
            "show_archived": show_archived,
            "platforms": [(slug, label) for slug, (label, _) in CONNECTORS.items()],
            "can_add": permissions.teams_for(request.user, MANAGE).exists(),
        },
    )


def _credentials_form(connector_class: type[Connector[Any, Any, Any]], data: Any = None) -> SchemaForm:
    return SchemaForm(data, schema=connector_class.Credentials, prefix="cred")


@login_required
def connection_add(request: AuthenticatedHttpRequest) -> HttpResponse:
    teams = permissions.teams_for(request.user, MANAGE)
    if not teams.exists():
        raise permissions.PermissionDenied("Adding a connection needs the admin role in a team.")
    platform = request.GET.get("platform") or request.POST.get("platform")
    if platform not in CONNECTORS:
        platforms = [(slug, label) for slug, (label, _) in CONNECTORS.items()]
        return render(request, "portal/connection_platform.html", {"platforms": platforms})
    connector_class = get_connector_class(platform)
    form = ConnectionForm(request.POST or None, teams=teams, initial={"name": connector_class.label})
    cred_form = _credentials_form(connector_class, request.POST or None)
    if request.method == "POST" and form.is_valid() and cred_form.is_valid():
        try:
            connection = connection_create(
                team=form.cleaned_data["team"],
                platform=platform,
                name=form.cleaned_data["name"],
                base_url=form.cleaned_data["base_url"],
                credentials=cred_form.data_dict(),
                actor=request.user,
            )
        except ValidationError as exc:  # the outbound policy refused the base URL
            form.add_error(None, exc)
        else:
            connection_request_test(connection=connection, actor=request.user)
            # Neutral, not green: the test may still fail (its result shows under "Connection test").
            messages.info(
                request, f"Connection {connection.name} saved. Its test is running: see Connection test below."
            )
            return redirect(connection)
    return render(
        request,
        "portal/connection_form.html",
        {"form": form, "cred_form": cred_form, "platform": platform, "connector": connector_class},
    )


@login_required
def connection_detail(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    connection = get_for_user(request.user, Connection.objects.all(), VIEW, pk=pk)
    connector_class = connection.connector_class
    try:
        warnings = connector_class.credential_warnings(connection.credentials())
    except Exception:  # wrong key or stale schema: say so without details
        warnings = ["The stored credentials cannot be read with the current keys or schema: edit the connection."]
    stored, secret = _stored_credentials(connection), set(connector_class.secret_fields())
    unreadable = not stored  # a stored blob always holds the schema's fields: empty means undecryptable
    if unreadable:
        warnings = [UNREADABLE_CREDENTIALS]
    credential_rows = [
        # Secrets: only whether one is stored. Other fields: their value.
        (
            info.title or name,
            "cannot be decrypted"
            if unreadable
            else ("set" if stored.get(name) else "not used")
            if name in secret
            else stored.get(name, ""),
            name in secret,
        )
        for name, info in connector_class.Credentials.model_fields.items()
    ]
    return render(
        request,
        "portal/connection_detail.html",
        {
            "connection": connection,
            "connector": connector_class,
            "warnings": warnings,
            "credential_rows": credential_rows,
            "mappings": connection.mappings.exclude(state=ObjectState.ARCHIVED).select_related("dataset"),
            "panels": platform_panels(request, connection, None),
            "action_runs": connection.action_runs.filter(mapping=None)[:10],
        },
    )


@login_required
def connection_edit(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    connection = get_for_user(request.user, Connection.objects.all(), MANAGE, pk=pk)
    connector_class = connection.connector_class
    stored = _stored_credentials(connection)
    secret_names = connector_class.secret_fields()
    form = ConnectionForm(request.POST or None, initial={"name": connection.name, "base_url": connection.base_url})
    # Secrets are bound to their destination: a new scheme, host or port keeps none of them.
    moved = request.method == "POST" and connection_destination_changed(
        connection=connection, base_url=request.POST.get("base_url", "")
    )
    cred_form = SchemaForm(
        request.POST or None,
        schema=connector_class.Credentials,
        prefix="cred",
        initial={k: v for k, v in stored.items() if k not in secret_names},
        stored_secrets={} if moved else {k: v for k, v in stored.items() if k in secret_names},
    )
    if request.method == "POST" and form.is_valid() and cred_form.is_valid():
        try:
            connection_update(
                connection=connection,
                name=form.cleaned_data["name"],
                base_url=form.cleaned_data["base_url"],
                credentials=cred_form.data_dict(),
                actor=request.user,
            )
        except ValidationError as exc:  # refused URL, or a new destination without its secrets
            form.add_error(None, exc)
        else:
            connection_request_test(connection=connection, actor=request.user)
            messages.info(request, "Connection saved. Its test is running: see Connection test below.")
            return redirect(connection)
    elif moved and cred_form.errors:
        form.add_error("base_url", DESTINATION_CHANGED)
    return render(
        request,
        "portal/connection_form.html",
        {
            "form": form,
            "cred_form": cred_form,
            "platform": connection.platform,
            "connector": connector_class,
            "connection": connection,
        },
    )


def _stored_credentials(connection: Connection) -> dict[str, Any]:
    """The stored credentials, or nothing when the keys cannot read them (the form then asks again)."""
    try:
        return decrypt_json(connection.credentials_encrypted)
    except InvalidToken:
        return {}


@login_required
def connection_test_status(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    connection = get_for_user(request.user, Connection.objects.all(), VIEW, pk=pk)
    response = render(request, "portal/connection_detail.html#connection-test", {"connection": connection})
    if not connection.test_pending:
        response.status_code = HTMX_STOP_POLLING
    return response


@login_required
@require_POST
def connection_test(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    connection = get_for_user(request.user, Connection.objects.all(), OPERATE, pk=pk)
    connection_request_test(connection=connection, actor=request.user)
    if request.htmx:
        return render(request, "portal/connection_detail.html#connection-test", {"connection": connection})
    return redirect(connection)


@login_required
@require_POST
def connection_state(request: AuthenticatedHttpRequest, pk: int, state: str) -> HttpResponse:
    connection = get_for_user(request.user, Connection.objects.all(), MANAGE, pk=pk)
    try:
        connection_set_state(connection=connection, state=state_or_404(state), actor=request.user)
        messages.success(request, f"Connection {connection.name} is now {state}.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect(connection)
