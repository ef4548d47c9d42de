"""HTML and htmx views. Each has one shape: access helper (``portal.permissions``) →
form validation → one service call → redirect with a message, or render (a partial
for htmx). No business logic here."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import HTMX_STOP_POLLING
from django_htmx.middleware import HtmxDetails

from connectors.registry import CONNECTORS, get_connector_class

from . import permissions, selectors, services, stats_selectors
from .crypto import UNREADABLE_CREDENTIALS
from .filters import ReleaseFilter
from .forms import ConnectionForm, DatasetForm, MappingForm, MemberForm, ReleaseForm, RoleForm, SchemaForm, UploadForm
from .models import (
    AuditEvent,
    Connection,
    Dataset,
    Mapping,
    Membership,
    ObjectState,
    Release,
    Team,
)
from .permissions import MANAGE, OPERATE, VIEW, get_for_user
from .preflight import release_preflight
from .release_log import log_page
from .target_checks import TargetCheck, mapping_target_check


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def platform_panels(request, connection, mapping):  # type: ignore[no-untyped-def]
    from .platform_views import action_panels

    return action_panels(request, connection, mapping)


def _state_or_404(state: str) -> str:
    if state not in ObjectState.values:
        raise Http404("Unknown state")
    return state


# DASHBOARD


@login_required
def dashboard(request: HtmxHttpRequest) -> HttpResponse:
    user = request.user
    return render(
        request,
        "portal/dashboard.html",
        {
            "recent": selectors.release_history(user=user)[:10],
            "failing": selectors.failing_mappings(user=user),
            "connections": selectors.connection_list(user=user),
            "running_count": selectors.open_release_count(user=user),
            "daily": stats_selectors.release_daily_counts(user=user),
            "platform_stats": stats_selectors.platform_stats(user=user),
        },
    )


# CONNECTIONS


@login_required
def connection_list(request: HtmxHttpRequest) -> HttpResponse:
    show_archived = request.GET.get("archived") == "1"
    return render(
        request,
        "portal/connection_list.html",
        {
            "connections": selectors.connection_list(user=request.user, include_archived=show_archived),
            "show_archived": show_archived,
            "platforms": [(slug, label) for slug, (label, _) in CONNECTORS.items()],
            "can_add": permissions.teams_for(request.user, MANAGE).exists(),
        },
    )


def _credentials_form(connector_class, data=None) -> SchemaForm:  # type: ignore[no-untyped-def]
    return SchemaForm(data, schema=connector_class.Credentials, prefix="cred")


@login_required
def connection_add(request: HtmxHttpRequest) -> HttpResponse:
    teams = permissions.teams_for(request.user, MANAGE)
    if not teams.exists():
        raise permissions.PermissionDenied("Adding a connection needs the admin role in a team.")
    platform = request.GET.get("platform") or request.POST.get("platform")
    if platform not in CONNECTORS:
        return render(
            request, "portal/connection_platform.html", {"platforms": [(s, l) for s, (l, _) in CONNECTORS.items()]}
        )
    connector_class = get_connector_class(platform)
    form = ConnectionForm(request.POST or None, teams=teams, initial={"name": connector_class.label})
    cred_form = _credentials_form(connector_class, request.POST or None)
    if request.method == "POST" and form.is_valid() and cred_form.is_valid():
        try:
            connection = services.connection_create(
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
            services.connection_request_test(connection=connection, actor=request.user)
            # Neutral, not green: the test may still fail (its result shows under "Connection test").
            messages.info(request, f"Connection {connection.name} saved. Its test is running: see Connection test below.")
            return redirect(connection)
    return render(
        request,
        "portal/connection_form.html",
        {"form": form, "cred_form": cred_form, "platform": platform, "connector": connector_class},
    )


@login_required
def connection_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
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
def connection_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    connection = get_for_user(request.user, Connection.objects.all(), MANAGE, pk=pk)
    connector_class = connection.connector_class
    stored = _stored_credentials(connection)
    secret_names = connector_class.secret_fields()
    form = ConnectionForm(request.POST or None, initial={"name": connection.name, "base_url": connection.base_url})
    # Secrets are bound to their destination: a new scheme, host or port keeps none of them.
    moved = request.method == "POST" and services.connection_destination_changed(
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
            services.connection_update(
                connection=connection,
                name=form.cleaned_data["name"],
                base_url=form.cleaned_data["base_url"],
                credentials=cred_form.data_dict(),
                actor=request.user,
            )
        except ValidationError as exc:  # refused URL, or a new destination without its secrets
            form.add_error(None, exc)
        else:
            services.connection_request_test(connection=connection, actor=request.user)
            messages.info(request, "Connection saved. Its test is running: see Connection test below.")
            return redirect(connection)
    elif moved and cred_form.errors:
        form.add_error("base_url", services.DESTINATION_CHANGED)
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
    from .crypto import InvalidToken, decrypt_json

    try:
        return decrypt_json(connection.credentials_encrypted)
    except InvalidToken:
        return {}


@login_required
def connection_test_status(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    connection = get_for_user(request.user, Connection.objects.all(), VIEW, pk=pk)
    response = render(request, "portal/connection_detail.html#connection-test", {"connection": connection})
    if not connection.test_pending:
        response.status_code = HTMX_STOP_POLLING
    return response


@login_required
@require_POST
def connection_test(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    connection = get_for_user(request.user, Connection.objects.all(), OPERATE, pk=pk)
    services.connection_request_test(connection=connection, actor=request.user)
    if request.htmx:
        return render(request, "portal/connection_detail.html#connection-test", {"connection": connection})
    return redirect(connection)


@login_required
@require_POST
def connection_state(request: HtmxHttpRequest, pk: int, state: str) -> HttpResponse:
    connection = get_for_user(request.user, Connection.objects.all(), MANAGE, pk=pk)
    try:
        services.connection_set_state(connection=connection, state=_state_or_404(state), actor=request.user)
        messages.success(request, f"Connection {connection.name} is now {state}.")
    except services.ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect(connection)


# DATASETS


@login_required
def dataset_list(request: HtmxHttpRequest) -> HttpResponse:
    show_archived = request.GET.get("archived") == "1"
    return render(
        request,
        "portal/dataset_list.html",
        {
            "datasets": selectors.dataset_list(user=request.user, include_archived=show_archived),
            "show_archived": show_archived,
            "can_add": permissions.teams_for(request.user, MANAGE).exists(),
        },
    )


@login_required
def dataset_add(request: HtmxHttpRequest) -> HttpResponse:
    teams = permissions.teams_for(request.user, MANAGE)
    if not teams.exists():
        raise permissions.PermissionDenied("Adding a dataset needs the admin role in a team.")
    form = DatasetForm(request.POST or None, teams=teams)
    if request.method == "POST" and form.is_valid():
        try:
            dataset = services.dataset_create(
                team=form.cleaned_data["team"],
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                actor=request.user,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Dataset {dataset.name} created. Now map it onto a platform.")
            return redirect(dataset)
    return render(request, "portal/dataset_form.html", {"form": form})


@login_required
def dataset_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    dataset = get_for_user(request.user, Dataset.objects.all(), MANAGE, pk=pk)
    form = DatasetForm(request.POST or None, initial={"name": dataset.name, "description": dataset.description})
    if request.method == "POST" and form.is_valid():
        try:
            services.dataset_update(
                dataset=dataset,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                actor=request.user,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Dataset saved.")
            return redirect(dataset)
    return render(request, "portal/dataset_form.html", {"form": form, "dataset": dataset})


@login_required
def dataset_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    dataset = get_for_user(request.user, Dataset.objects.all(), VIEW, pk=pk)
    show_archived = request.GET.get("archived") == "1"
    return render(
        request,
        "portal/dataset_detail.html",
        {
            "dataset": dataset,
            "mappings": selectors.mapping_list(user=request.user, dataset=dataset, include_archived=show_archived),
            "show_archived": show_archived,
            "uploads": selectors.upload_list(user=request.user, dataset=dataset)[:10],
            "releases": selectors.release_history(user=request.user).filter(dataset=dataset)[:10],
            "connections": selectors.connection_list(user=request.user).filter(
                team=dataset.team, state=ObjectState.ENABLED
            ),
        },
    )


@login_required
@require_POST
def dataset_state(request: HtmxHttpRequest, pk: int, state: str) -> HttpResponse:
    dataset = get_for_user(request.user, Dataset.objects.all(), MANAGE, pk=pk)
    services.dataset_set_state(dataset=dataset, state=_state_or_404(state), actor=request.user)
    messages.success(request, f"Dataset {dataset.name} is now {state}.")
    return redirect(dataset)


# MAPPINGS


@login_required
def mapping_add(request: HtmxHttpRequest, dataset_pk: int) -> HttpResponse:
    dataset = get_for_user(request.user, Dataset.objects.all(), MANAGE, pk=dataset_pk)
    connections = selectors.connection_list(user=request.user).filter(team=dataset.team, state=ObjectState.ENABLED)
    connection_pk = request.GET.get("connection") or request.POST.get("connection")
    connection = (
        connections.filter(pk=connection_pk).first() if connection_pk and str(connection_pk).isdigit() else None
    )
    if connection is None:
        return render(request, "portal/mapping_connection.html", {"dataset": dataset, "connections": connections})
    connector_class = connection.connector_class
    suggested = selectors.mapping_name_suggestion(dataset=dataset, connection=connection)
    form = MappingForm(request.POST or None, initial={"name": suggested})
    target_form = SchemaForm(request.POST or None, schema=connector_class.Target, prefix="target")
    _mark_browsable(target_form, connection)
    check = None
    if request.method == "POST" and form.is_valid() and target_form.is_valid():
        check = _check_target(target_form, connection)
    if check is not None and not check.problems:
        try:
            mapping = services.mapping_create(
                dataset=dataset,
                connection=connection,
                name=form.cleaned_data["name"],
                target=target_form.validated,
                actor=request.user,
            )  # type: ignore[arg-type]
        except services.ApplicationError as exc:
            form.add_error(None, exc.message)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Mapping {mapping.name} created.")
            if check.unverified:
                messages.warning(request, check.unverified)
            return redirect(mapping)
    return render(
        request,
        "portal/mapping_form.html",
        {"form": form, "target_form": target_form, "dataset": dataset, "connection": connection},
    )


@login_required
def mapping_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    mapping = get_for_user(request.user, Mapping.objects.select_related("connection", "dataset"), MANAGE, pk=pk)
    connector_class = mapping.connection.connector_class
    form = MappingForm(request.POST or None, initial={"name": mapping.name})
    target_form = SchemaForm(
        request.POST or None, schema=connector_class.Target, prefix="target", initial=mapping.target
    )
    _mark_browsable(target_form, mapping.connection)
    check = None
    if request.method == "POST" and form.is_valid() and target_form.is_valid():
        check = _check_target(target_form, mapping.connection)
    if check is not None and not check.problems:
        try:
            services.mapping_update(
                mapping=mapping, name=form.cleaned_data["name"], target=target_form.validated, actor=request.user
            )  # type: ignore[arg-type]
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Mapping saved.")
            if check.unverified:
                messages.warning(request, check.unverified)
            return redirect(mapping)
    return render(
        request,
        "portal/mapping_form.html",
        {
            "form": form,
            "target_form": target_form,
            "dataset": mapping.dataset,
            "connection": mapping.connection,
            "mapping": mapping,
        },
    )


def _check_target(target_form: SchemaForm, connection: Connection) -> TargetCheck:
    """Ask the platform whether the target exists; its problems become form errors."""
    check = mapping_target_check(connection=connection, target=target_form.validated)
    for problem in check.problems:
        target_form.add_error(None, problem)
    return check


def _mark_browsable(form: SchemaForm, connection: Connection) -> None:
    """Fields the connector can fill from the platform get a Browse button (portal.js)."""
    from django.urls import reverse

    for name, info in form.schema.model_fields.items():
        if (info.json_schema_extra or {}).get("browse"):
            field = form.fields[name]
            if isinstance(field.widget, forms.NumberInput):
                # What is typed is also the search text (a query name, not only its id).
                field.widget = forms.TextInput(attrs=field.widget.attrs)
            field.widget.attrs["data-browse"] = reverse("portal:browse", args=[connection.pk, name])


@login_required
def mapping_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    mapping = get_for_user(request.user, Mapping.objects.select_related("connection", "dataset"), VIEW, pk=pk)
    return render(
        request,
        "portal/mapping_detail.html",
        {
            "mapping": mapping,
            "connector": mapping.connection.connector_class,
            "releases": selectors.release_history(user=request.user).filter(mapping=mapping)[:20],
            "panels": platform_panels(request, mapping.connection, mapping),
            "action_runs": mapping.action_runs.select_related("requested_by")[:10],
            "params_version": mapping.params_versions.first(),
            **_trend_context(mapping),
            **_automation_context(mapping),
        },
    )


def _trend_context(mapping: Mapping) -> dict[str, Any]:
    trend = stats_selectors.mapping_duration_trend(mapping=mapping)
    return {
        "trend": trend,
        "trend_chart": stats_selectors.trend_chart(trend),
        "trend_summary": stats_selectors.trend_summary(trend),
    }


def _automation_context(mapping: Mapping) -> dict[str, Any]:
    from .automation_views import ChannelForm, ScheduleForm
    from .schedules import next_run

    schedule = getattr(mapping, "schedule", None)
    return {
        "schedule": schedule,
        "next_run": next_run(schedule) if schedule else None,
        "schedule_form": ScheduleForm(
            initial={"cron": schedule.cron, "enabled": schedule.enabled}
            if schedule
            else {"cron": "0 6 * * 1-5", "enabled": True}
        ),
        "channels": mapping.notification_channels.all(),
        "team_channels": mapping.team.notification_channels.filter(mapping__isnull=True),
        "channel_form": ChannelForm(),
    }


@login_required
@require_POST
def mapping_state(request: HtmxHttpRequest, pk: int, state: str) -> HttpResponse:
    mapping = get_for_user(request.user, Mapping.objects.select_related("connection"), MANAGE, pk=pk)
    try:
        services.mapping_set_state(mapping=mapping, state=_state_or_404(state), actor=request.user)  # type: ignore[arg-type]
        messages.success(request, f"Mapping {mapping.name} is now {state}.")
    except services.ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect(mapping)


# UPLOADS


@login_required
def upload_create(request: HtmxHttpRequest, dataset_pk: int) -> HttpResponse:
    """The drag-and-drop page; the browser POSTs here with XHR (JSON answers) or a plain form."""
    dataset = get_for_user(request.user, Dataset.objects.all(), OPERATE, pk=dataset_pk)
    wants_json = request.headers.get("Accept", "").startswith("application/json")
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                upload = services.upload_create(dataset=dataset, file=form.cleaned_data["file"], actor=request.user)
            except ValidationError as exc:
                form.add_error("file", exc)
            else:
                if wants_json:
                    return JsonResponse(
                        {
                            "id": upload.pk,
                            "name": upload.original_name,
                            "size": upload.size,
                            "sha256": upload.sha256,
                            "dataset_url": dataset.get_absolute_url(),
                        },
                        status=201,
                    )
                messages.success(request, f"Uploaded {upload.original_name} ({upload.size:,} bytes).")
                return redirect(dataset)
        if wants_json:
            return JsonResponse({"errors": {k: [str(e) for e in v] for k, v in form.errors.items()}}, status=400)
    from django.conf import settings

    return render(
        request,
        "portal/upload_form.html",
        {
            "dataset": dataset,
            "form": form,
            "max_bytes": settings.PORTAL_UPLOAD_MAX_BYTES,
            "extensions": settings.PORTAL_UPLOAD_EXTENSIONS,
            "chunk_bytes": settings.PORTAL_UPLOAD_CHUNK_BYTES,
            "uploads": selectors.upload_list(user=request.user, dataset=dataset)[:10],
        },
    )


# RELEASES


@login_required
def release_create(request: HtmxHttpRequest, mapping_pk: int) -> HttpResponse:
    mapping = get_for_user(
        request.user, Mapping.objects.select_related("connection", "dataset"), OPERATE, pk=mapping_pk
    )
    connector_class = mapping.connection.connector_class
    uploads = selectors.upload_list(user=request.user, dataset=mapping.dataset)
    form = ReleaseForm(request.POST or None, uploads=uploads)
    params_form = SchemaForm(
        request.POST or None,
        schema=connector_class.Params,
        prefix="params",
        context={"target": mapping.target_schema()},
        initial=mapping.default_params or None,
    )
    if request.method == "POST" and form.is_valid() and params_form.is_valid():
        # The platform would refuse what pre-flight calls a blocker: say so before creating anything.
        for blocker in release_preflight(mapping=mapping, upload=form.cleaned_data["upload"]).blockers:
            form.add_error(None, f"{blocker.title}: {blocker.detail}" if blocker.detail else blocker.title)
    if request.method == "POST" and form.is_valid() and params_form.is_valid():
        try:
            release = services.release_create(
                mapping=mapping,
                upload=form.cleaned_data["upload"],
                params=params_form.validated,  # type: ignore[arg-type]
                actor=request.user,
                idempotency_key=f"form:{request.user.pk}:{form.cleaned_data['submission_token']}",
            )
        except services.ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            return redirect(release)
    return render(
        request,
        "portal/release_form.html",
        {
            "mapping": mapping,
            "form": form,
            "params_form": params_form,
            "connector": connector_class,
            "has_uploads": uploads.exists(),
        },
    )


def _release_context(release: Release) -> dict[str, Any]:
    connector_class = release.mapping.connection.connector_class
    steps = list(release.steps.all())
    for step in steps:
        # What the connector makes of the step's output: pipelines, previews, downloads.
        step.tables = connector_class.step_tables(step.name, step.output)
        step.downloads = connector_class.downloads(step.name, step.output) if step.status == "succeeded" else []
    return {
        "release": release,
        "steps": steps,
        "log": log_page(release=release),
        "deliveries": release.deliveries.select_related("channel")[:20],
        "retries": list(release.retries.values_list("pk", flat=True)),
        "timeline": stats_selectors.release_timeline(release=release),
    }


@login_required
def release_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    release = get_for_user(
        request.user,
        Release.objects.select_related("mapping__connection", "dataset", "upload", "created_by"),
        VIEW,
        pk=pk,
    )
    return render(request, "portal/release_detail.html", _release_context(release))


@login_required
def release_status(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The live part of the release page; polling stops (286) at a terminal state."""
    release = get_for_user(
        request.user, Release.objects.select_related("mapping__connection", "dataset", "upload"), VIEW, pk=pk
    )
    response = render(request, "portal/release_detail.html#release-status", _release_context(release))
    if release.is_terminal:
        response.status_code = HTMX_STOP_POLLING
    return response


@login_required
@require_POST
def release_cancel(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    release = get_for_user(request.user, Release.objects.all(), OPERATE, pk=pk)
    try:
        services.release_cancel(release=release, actor=request.user)
        messages.warning(request, "Cancel requested.")
    except services.ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect(release)


@login_required
def history(request: HtmxHttpRequest) -> HttpResponse:
    """Every release the user may see, filtered, newest first, keyset-paginated."""
    base = selectors.release_history(user=request.user)
    filterset = ReleaseFilter(request.GET or None, queryset=base, user=request.user)
    qs = filterset.qs if filterset.is_bound and filterset.is_valid() else base
    page, total = selectors.history_page(
        qs, cursor=request.GET.get("after"), size=50, search=request.GET.get("q", ""), window_base=base
    )
    query = request.GET.copy()
    query.pop("after", None)
    return render(
        request,
        "portal/history.html",
        {
            "filter": filterset,
            "page": page,
            "total": total,
            "query": query.urlencode(),
            "first_page": not request.GET.get("after"),
        },
    )


# TEAM MEMBERS


@login_required
def team_list(request: HtmxHttpRequest) -> HttpResponse:
    teams = permissions.teams_for(request.user)
    roles = permissions.roles_of(request.user)
    return render(request, "portal/team_list.html", {"teams": [(team, roles[team.pk]) for team in teams]})


@login_required
def team_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    team = permissions.teams_for(request.user).filter(pk=pk).first()
    if team is None:
        raise Http404("No such team")
    can_manage = permissions.has_role(request.user, team.pk, MANAGE)
    form = MemberForm(request.POST or None)
    if request.method == "POST":
        permissions.require(request.user, team.pk, MANAGE)
        if form.is_valid():
            services.membership_set(
                team=team, user=form.cleaned_data["username"], role=form.cleaned_data["role"], actor=request.user
            )
            messages.success(
                request,
                f"{form.cleaned_data['username'].get_username()} is now {form.cleaned_data['role']} of {team.name}.",
            )
            return redirect("portal:team-detail", pk=team.pk)
    return render(
        request,
        "portal/team_detail.html",
        {
            "team": team,
            "memberships": team.memberships.select_related("user").order_by("user__username"),
            "form": form,
            "role_form": RoleForm(),
            "can_manage": can_manage,
            "audit": AuditEvent.objects.filter(team=team).select_related("actor")[:20] if can_manage else [],
            "channels": team.notification_channels.filter(mapping__isnull=True),
            "channel_form": _channel_form(),
        },
    )


@login_required
@require_POST
def member_update(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    membership = get_for_user(request.user, Membership.objects.select_related("team", "user"), MANAGE, pk=pk)
    if request.POST.get("remove"):
        try:
            services.membership_remove(membership=membership, actor=request.user)
            messages.success(request, f"{membership.user.get_username()} removed from {membership.team.name}.")
        except services.ApplicationError as exc:
            messages.error(request, exc.message)
    else:
        form = RoleForm(request.POST)
        if form.is_valid():
            services.membership_set(
                team=membership.team, user=membership.user, role=form.cleaned_data["role"], actor=request.user
            )
            messages.success(request, "Role changed.")
    return redirect("portal:team-detail", pk=membership.team_id)


def _channel_form():  # type: ignore[no-untyped-def]
    from .automation_views import ChannelForm

    return ChannelForm()


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "404.html", {"path": request.path}, status=404)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "403.html", {"reason": str(exception or "")}, status=403)


__all__ = ["Team"]


# ACCOUNT: personal API tokens

NEW_TOKEN_SESSION_KEY = "portal_new_api_token"  # noqa: S105 - the session entry's name, not a secret


@login_required
def account(request: HtmxHttpRequest) -> HttpResponse:
    from . import tokens

    if request.method == "POST":
        if request.POST.get("revoke"):
            token = request.user.api_tokens.filter(pk=request.POST["revoke"]).first()
            if token is None:
                raise Http404("No such token")
            tokens.token_revoke(token=token, actor=request.user)
            messages.success(request, f"Token {token.name} revoked: it no longer works.")
            return redirect("portal:account")
        name = (request.POST.get("name") or "").strip()
        days = request.POST.get("days") or str(settings.PORTAL_TOKEN_DEFAULT_DAYS)
        if not name:
            messages.error(request, "Give the token a name, e.g. the script that will use it.")
        elif not days.isdigit():
            messages.error(request, "Choose how many days the token lives.")
        else:
            try:
                _token, new_key = tokens.token_create(user=request.user, name=name, expires_in_days=int(days))
            except ValidationError as exc:
                messages.error(request, "; ".join(exc.messages))
            else:
                # Post/redirect/get: a reload must not create a second token. The key waits in the
                # server-side session for the next page only, then is gone.
                request.session[NEW_TOKEN_SESSION_KEY] = new_key
        return redirect("portal:account")
    new_key = request.session.pop(NEW_TOKEN_SESSION_KEY, None)
    return render(
        request,
        "portal/account.html",
        {
            "tokens": request.user.api_tokens.all(),
            "new_key": new_key,
            "expiry_choices": [30, 90, 180, 365],
            "default_days": settings.PORTAL_TOKEN_DEFAULT_DAYS,
        },
    )
