"""Platform features that connectors declare: actions, browse, target preview, params, downloads."""

from __future__ import annotations

import difflib
import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import HTMX_STOP_POLLING

from connectors.base import Action, Connector, ConnectorError
from portal import permissions
from portal.exceptions import ApplicationError
from portal.forms.mappings import ParamsNoteForm
from portal.forms.schema import SchemaForm
from portal.models import ActionRun, Connection, Mapping, ParamsVersion, ReleaseStep
from portal.permissions import MANAGE, VIEW, get_for_user
from portal.requests import AuthenticatedHttpRequest
from portal.services.actions import action_read, action_request, tables_as_json
from portal.services.mappings import params_version_save


def platform_panels(
    request: AuthenticatedHttpRequest, connection: Connection, mapping: Mapping | None
) -> list[dict[str, Any]]:

    return action_panels(request, connection, mapping)


ROLE = {"view": permissions.VIEW, "operate": permissions.OPERATE, "manage": permissions.MANAGE}


def _action_or_404(connector_class: type[Connector[Any, Any, Any]], name: str, scope: str, target: Any) -> Action:
    for action in connector_class.actions_for(scope, target):
        if action.name == name:
            return action
    raise Http404("No such action here")


def _params_form(action: Action, data: Any = None) -> SchemaForm | None:
    return SchemaForm(data, schema=action.params, prefix=f"a-{action.name}") if action.params else None


def action_panels(
    request: AuthenticatedHttpRequest, connection: Connection, mapping: Mapping | None
) -> list[dict[str, Any]]:
    """What the page shows for each action the user may see (used by detail views)."""
    scope = "mapping" if mapping else "connection"
    target = mapping.target_schema() if mapping else None
    panels = []
    for action in connection.connector_class.actions_for(scope, target):
        allowed = permissions.has_role(request.user, connection.team_id, ROLE[action.role])
        if not action.mutating and not allowed:
            continue
        panels.append({"action": action, "allowed": allowed, "form": _params_form(action)})
    return panels


@login_required
def action(request: AuthenticatedHttpRequest, scope: str, pk: int, name: str) -> HttpResponse:
    """GET: run a read-only action now and render its result. POST: queue a mutating one."""
    if scope == "mapping":
        mapping = get_for_user(request.user, Mapping.objects.select_related("connection"), VIEW, pk=pk)
        connection, target = mapping.connection, mapping.target_schema()
    else:
        mapping, connection = None, get_for_user(request.user, Connection.objects.all(), VIEW, pk=pk)
        target = None
    act = _action_or_404(connection.connector_class, name, scope, target)
    permissions.require(request.user, connection.team_id, ROLE[act.role])
    data = request.POST if request.method == "POST" else (request.GET or None)
    form = _params_form(act, data)
    context: dict[str, Any] = {"action": act, "form": form, "scope": scope, "pk": pk}
    if form is not None and data is not None and not form.is_valid():
        context["error"] = "; ".join(str(e) for errors in form.errors.values() for e in errors)
        return render(request, "portal/_action_result.html", context, status=200)
    params = form.validated if form is not None and data is not None else (act.params() if act.params else None)
    if act.mutating:
        if request.method != "POST":
            raise Http404("This action changes the platform: POST it")
        try:
            run = action_request(connection=connection, mapping=mapping, action=act, params=params, actor=request.user)
        except ApplicationError as exc:
            context["error"] = exc.message
            return render(request, "portal/_action_result.html", context)
        if not request.htmx:
            messages.info(request, f"{act.label}: sent to the platform.")
            return redirect(mapping or connection)
        return render(request, "portal/_action_run.html", {"run": run})
    try:
        result = action_read(connection=connection, mapping=mapping, action=act, params=params)
        context.update(message=result.message, tables=tables_as_json(result.tables))
    except ConnectorError as exc:
        context["error"] = exc.message
    return render(request, "portal/_action_result.html", context)


@login_required
def action_run_status(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    run = get_for_user(request.user, ActionRun.objects.all(), VIEW, pk=pk)
    response = render(request, "portal/_action_run.html", {"run": run})
    if run.is_terminal:
        response.status_code = HTMX_STOP_POLLING
    return response


@login_required
def browse(request: AuthenticatedHttpRequest, pk: int, field: str) -> HttpResponse:
    """Choices for a target field, from the platform (e.g. saved queries, a dataset's files)."""
    connection = get_for_user(request.user, Connection.objects.all(), MANAGE, pk=pk)
    info = connection.connector_class.Target.model_fields.get(field)
    if info is None or not (info.json_schema_extra or {}).get("browse"):
        raise Http404("Nothing to browse for this field")
    values = {k.removeprefix("target-"): v for k, v in request.GET.items() if k.startswith("target-")}
    context: dict[str, Any] = {"field": field, "query": request.GET.get("q", "")}
    try:
        with connection.connector(interactive=True) as connector:
            choices = connector.browse(field, query=context["query"], values=values)
        context["choices"] = [
            {"value": c.value, "label": c.label, "detail": c.detail, "fill": json.dumps({field: c.value, **c.fill})}
            for c in choices
        ]
    except ConnectorError as exc:
        context["error"] = exc.message
    return render(request, "portal/_browse.html", context)


@login_required
@require_POST
def target_preview(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """What the mapping form's target will be sent as, or why it is invalid, as the user types."""
    connection = get_for_user(request.user, Connection.objects.all(), MANAGE, pk=pk)
    connector_class = connection.connector_class
    form = SchemaForm(request.POST, schema=connector_class.Target, prefix="target")
    context: dict[str, Any] = {}
    if form.is_valid():
        context["label"] = connector_class.describe_target(form.validated)
    else:
        context["errors"] = [
            f"{form.fields[f].label if f in form.fields else ''}: {e}".lstrip(": ")
            for f, errs in form.errors.items()
            for e in errs
        ]
    return render(request, "portal/_target_preview.html", context)


@login_required
def params_edit(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """Edit, validate and save a new version of the mapping's default parameters."""
    mapping = get_for_user(request.user, Mapping.objects.select_related("connection", "dataset"), VIEW, pk=pk)
    can_save = permissions.has_role(request.user, mapping.team_id, MANAGE)
    connector_class = mapping.connection.connector_class
    form = SchemaForm(
        request.POST or None,
        schema=connector_class.Params,
        prefix="params",
        context={"target": mapping.target_schema()},
        initial=mapping.default_params or None,
    )
    note = ParamsNoteForm(request.POST or None)
    if request.method == "POST":
        if not can_save:
            raise PermissionDenied("Saving parameters needs the admin role in this team.")
        if form.is_valid() and note.is_valid():
            try:
                version = params_version_save(
                    mapping=mapping, params=form.validated, note=note.cleaned_data["note"], actor=request.user
                )
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, f"Saved as version {version.number}.")
                return redirect("portal:params-edit", pk=mapping.pk)
    versions = list(mapping.params_versions.select_related("created_by")[:50])
    return render(
        request,
        "portal/params_edit.html",
        {
            "mapping": mapping,
            "form": form,
            "note": note,
            "versions": versions,
            "can_save": can_save,
            "connector": connector_class,
        },
    )


@login_required
def params_diff(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    mapping = get_for_user(request.user, Mapping.objects.all(), VIEW, pk=pk)
    try:
        a, b = int(request.GET.get("a", "")), int(request.GET.get("b", ""))
    except ValueError:
        raise Http404("Choose two versions") from None
    versions = {v.number: v for v in ParamsVersion.objects.filter(mapping=mapping, number__in=[a, b])}
    if a not in versions or b not in versions:
        raise Http404("No such version")
    old = json.dumps(versions[a].params, indent=2, sort_keys=True).splitlines()
    new = json.dumps(versions[b].params, indent=2, sort_keys=True).splitlines()
    lines = list(difflib.unified_diff(old, new, fromfile=f"version {a}", tofile=f"version {b}", lineterm=""))
    return render(
        request, "portal/params_diff.html", {"mapping": mapping, "a": versions[a], "b": versions[b], "lines": lines}
    )


@login_required
def step_download(request: AuthenticatedHttpRequest, pk: int, fmt: str) -> HttpResponse | StreamingHttpResponse:
    """Stream a step's result from the platform through the portal, with the user's permissions."""
    step = get_for_user(
        request.user,
        ReleaseStep.objects.select_related("release__mapping__connection"),
        VIEW,
        team_field="release__team_id",
        pk=pk,
    )
    connection = step.release.mapping.connection
    if fmt not in dict(connection.connector_class.downloads(step.name, step.output)):
        raise Http404("No such download")
    connector = connection.connector(interactive=True)
    try:
        download = connector.download(step.name, step.output, fmt)
    except ConnectorError as exc:
        connector.close()
        messages.error(request, f"The download failed: {exc.message}")
        return redirect(step.release)
    # The connector closes once the last byte is sent (or the client leaves).
    response = StreamingHttpResponse(connector.closing(download.chunks), content_type=download.content_type)
    response["Content-Disposition"] = f'attachment; filename="{download.filename}"'
    response["Cache-Control"] = "private, no-store"
    return response
