"""What a log line is about: team, release, step, platform, bound once where they become known.

- Web requests: django-structlog's middleware binds ``request_id`` and ``user_id``;
  ``LogContextMiddleware`` adds the team, platform and release of the object in the URL.
- Celery tasks: django-structlog carries the enqueuing request's context (``request_id``,
  ``user_id``...) in the task's headers and binds ``task_id``; ``bind_task_context`` adds the
  release, team and platform of the row the task takes an id of.
- The engine binds ``step`` around each platform call.

The same context labels metrics (``portal.metrics`` reads ``platform`` from it), so a platform
call is counted against its platform wherever it is made."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from django.db.models import Model
from django.http import HttpRequest, HttpResponse

from portal.models import ActionRun, Connection, Dataset, Mapping, NotificationDelivery, Release, ReleaseStep, Team


def release_context(release: Release) -> dict[str, Any]:
    return {"release_id": release.pk, "team_id": release.team_id, "platform": release.platform}


def _release(pk: Any) -> dict[str, Any]:
    row = Release.objects.filter(pk=pk).values("pk", "team_id", "platform").first()
    return {"release_id": row["pk"], "team_id": row["team_id"], "platform": row["platform"]} if row else {}


def _connection(pk: Any) -> dict[str, Any]:
    row = Connection.objects.filter(pk=pk).values("pk", "team_id", "platform").first()
    return {"connection_id": row["pk"], "team_id": row["team_id"], "platform": row["platform"]} if row else {}


def _mapping(pk: Any) -> dict[str, Any]:
    row = Mapping.objects.filter(pk=pk).values("pk", "team_id", "connection__platform").first()
    return {"mapping_id": row["pk"], "team_id": row["team_id"], "platform": row["connection__platform"]} if row else {}


def _step(pk: Any) -> dict[str, Any]:
    row = ReleaseStep.objects.filter(pk=pk).values("name", "release_id").first()
    return {**_release(row["release_id"]), "step": row["name"]} if row else {}


def _action_run(pk: Any) -> dict[str, Any]:
    row = ActionRun.objects.filter(pk=pk).values("connection_id").first()
    return _connection(row["connection_id"]) if row else {}


def _team_of(model: type[Model]) -> Callable[[Any], dict[str, Any]]:
    def load(pk: Any) -> dict[str, Any]:
        team_id = (
            pk if model is Team else model._default_manager.filter(pk=pk).values_list("team_id", flat=True).first()
        )
        return {"team_id": team_id} if team_id else {}

    return load


def _delivery(pk: Any) -> dict[str, Any]:
    row = NotificationDelivery.objects.filter(pk=pk).values("release_id").first()
    return _release(row["release_id"]) if row else {}


# The first segment of a URL route (after api/v1/) names the kind of its <pk>.
ROUTE_LOADERS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "releases": _release,
    "connections": _connection,
    "mappings": _mapping,
    "steps": _step,
    "action-runs": _action_run,
    "datasets": _team_of(Dataset),
    "teams": _team_of(Team),
}


# Other URL keyword arguments that name a row.
KWARG_LOADERS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "mapping_pk": _mapping,
    "dataset_pk": _team_of(Dataset),
}


# Task name -> what its first argument is the id of.
TASK_LOADERS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "portal.tasks.release_advance_task": _release,
    "portal.tasks.release_cancel_task": _release,
    "portal.tasks.notify_release_task": _release,
    "portal.tasks.connection_test_task": _connection,
    "portal.tasks.action_run_task": _action_run,
    "portal.tasks.scheduled_release_task": _mapping,
    "portal.tasks.notification_deliver_task": _delivery,
}


def request_context(route: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The log context of a URL: its route's first segment and keyword arguments name the rows."""
    segments = [s for s in route.split("/") if s]
    if segments[:2] == ["api", "v1"]:
        segments = segments[2:]
    context: dict[str, Any] = {}
    for name, loader in KWARG_LOADERS.items():
        if name in kwargs:
            context.update(loader(kwargs[name]))
    if segments and "pk" in kwargs and segments[0] in ROUTE_LOADERS:
        context.update(ROUTE_LOADERS[segments[0]](kwargs["pk"]))
    return context


class LogContextMiddleware:
    """Binds the team, platform and release of the object a request is about (after URL resolution)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], view_args: Any, view_kwargs: dict[str, Any]
    ) -> None:
        match = request.resolver_match
        if match is not None and view_kwargs:
            context = request_context(match.route, view_kwargs)
            if context:
                structlog.contextvars.bind_contextvars(**context)


def bind_task_context(sender: Any = None, task: Any = None, logger: Any = None, **kwargs: Any) -> None:
    """django-structlog's ``bind_extra_task_metadata`` receiver: the rows a task is about."""
    loader = TASK_LOADERS.get(getattr(task, "name", ""))
    args = getattr(getattr(task, "request", None), "args", None) or ()
    if loader is not None and args:
        context = loader(args[0])
        if context:
            structlog.contextvars.bind_contextvars(**context)


def current(key: str) -> Any:
    """A value of the current log context (e.g. ``platform``), or None."""
    return structlog.contextvars.get_contextvars().get(key)
