"""The authorization matrix: every route of the URLconf (pages and API) × every method it serves ×
anonymous, viewer, operator, admin and the admin of another team, with real object ids.

``EXPECTED`` holds the answer for every route; a route added without a line here fails
``test_every_route_has_an_expected_answer``. Answers are classes, not exact codes:
``ok`` (served: 2xx, 3xx, or 400/405/409 for a body the test does not fill — never 401/403/404/5xx),
``login`` (a page redirects to the login, the API answers 401), ``403`` (the role does not allow it)
and ``404`` (another team's object does not exist for you).
"""

from __future__ import annotations

import json
import uuid
from base64 import b64encode
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from portal.models import ActionRun, ChunkedUpload, Membership, NotificationChannel, Release, ReleaseSet, ReleaseStep
from portal.services.mappings import params_validate
from portal.services.releases import release_create
from portal.uploads.services import tus_create
from portal.uploads.views import OCTET_STREAM

from ..factories import TOUCAN_CREDENTIALS

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "viewer", "operator", "admin", "other_admin")

# Who gets what, by rule.
RULES: dict[str, dict[str, str]] = {
    # Anyone, logged in or not.
    "public": dict.fromkeys(ROLES, "ok"),
    # Any logged-in user (lists show their own teams' objects only; the account is their own).
    "user": {"anonymous": "login", "viewer": "ok", "operator": "ok", "admin": "ok", "other_admin": "ok"},
    # Read an object of the team.
    "view": {"anonymous": "login", "viewer": "ok", "operator": "ok", "admin": "ok", "other_admin": "404"},
    # Act on an object of the team (upload, release, cancel, test).
    "operate": {"anonymous": "login", "viewer": "403", "operator": "ok", "admin": "ok", "other_admin": "404"},
    # Manage an object of the team (connections, datasets, mappings, members, channels).
    "manage": {"anonymous": "login", "viewer": "403", "operator": "403", "admin": "ok", "other_admin": "404"},
    # Create in one's own team: the admin of another team creates in theirs.
    "create_manage": {"anonymous": "login", "viewer": "403", "operator": "403", "admin": "ok", "other_admin": "ok"},
    "create_operate": {"anonymous": "login", "viewer": "403", "operator": "ok", "admin": "ok", "other_admin": "ok"},
    # The API creates in the team its body names (the data team's here): another team's admin gets 404.
    "api_create_manage": {
        "anonymous": "login",
        "viewer": "403",
        "operator": "403",
        "admin": "ok",
        "other_admin": "404",
    },
    "api_create_operate": {
        "anonymous": "login",
        "viewer": "403",
        "operator": "ok",
        "admin": "ok",
        "other_admin": "404",
    },
    # A resumable upload belongs to the user who started it (the operator here).
    "owner": {"anonymous": "login", "viewer": "403", "operator": "ok", "admin": "404", "other_admin": "404"},
    # Lists filtered to the caller's teams, through the API (an empty list for others).
    "api_list": {"anonymous": "login", "viewer": "ok", "operator": "ok", "admin": "ok", "other_admin": "ok"},
    # Staff only (the Django admin): everybody else is sent to the admin's login.
    "staff": dict.fromkeys(ROLES, "admin_login"),
    # Team admins (of any team: they see their own teams' numbers) and staff: the operations page.
    "admins": {"anonymous": "login", "viewer": "403", "operator": "403", "admin": "ok", "other_admin": "ok"},
    # A bearer token only (the Prometheus scraper's): no session opens it, not even an admin's (401).
    "bearer": dict.fromkeys(ROLES, "login"),
}

# route name → {method: rule}
EXPECTED: dict[str, dict[str, str]] = {
    "healthz": {"GET": "public"},
    "readyz": {"GET": "public"},
    "login": {"GET": "public"},
    "logout": {"POST": "public"},
    "password_reset": {"GET": "public", "POST": "public"},
    "password_reset_done": {"GET": "public"},
    "password_reset_confirm": {"GET": "public"},
    "password_reset_complete": {"GET": "public"},
    "admin:index": {"GET": "staff"},
    "api-schema": {"GET": "user"},
    "api-docs": {"GET": "user"},
    "api-connections": {"GET": "api_list", "POST": "api_create_manage"},
    "api-connection": {"GET": "view", "PATCH": "manage"},
    "api-connection-test": {"POST": "operate"},
    "api-connection-state": {"POST": "manage"},
    "api-connection-browse": {"GET": "manage"},
    "api-datasets": {"GET": "api_list", "POST": "api_create_manage"},
    "api-dataset": {"GET": "view"},
    "api-mappings": {"GET": "api_list", "POST": "api_create_manage"},
    "api-mapping": {"GET": "view"},
    "api-mapping-state": {"POST": "manage"},
    "api-mapping-action": {"GET": "view", "POST": "operate"},
    "api-action-run": {"GET": "view"},
    "api-uploads": {"POST": "api_create_operate"},
    "api-upload": {"GET": "view"},
    "api-chunked": {"POST": "api_create_operate"},
    "api-chunked-detail": {"GET": "owner", "PUT": "owner"},
    "api-chunked-complete": {"POST": "owner"},
    "api-tus": {"POST": "api_create_operate"},
    "api-tus-upload": {"HEAD": "owner", "PATCH": "owner", "DELETE": "owner"},
    "api-tus-upload-noslash": {"HEAD": "owner", "PATCH": "owner", "DELETE": "owner"},
    "api-releases": {"GET": "api_list", "POST": "api_create_operate"},
    "api-release": {"GET": "view"},
    "api-release-ledger": {"GET": "view"},
    "api-release-export": {"GET": "api_list"},
    "api-release-cancel": {"POST": "operate"},
    # A person's decision on a step that needs attention (the engine issue): operators.
    "api-release-resolve": {"POST": "operate"},
    "api-release-retry": {"POST": "operate"},
    "api-release-sets": {"GET": "api_list", "POST": "api_create_operate"},
    "api-release-set": {"GET": "view"},
    "api-release-set-cancel": {"POST": "operate"},
    "api-release-set-retry": {"POST": "operate"},
    "portal:dashboard": {"GET": "user"},
    "portal:connection-list": {"GET": "user"},
    "portal:connection-add": {"GET": "create_manage", "POST": "create_manage"},
    "portal:connection-detail": {"GET": "view"},
    "portal:connection-edit": {"GET": "manage", "POST": "manage"},
    "portal:connection-test": {"POST": "operate"},
    "portal:connection-test-status": {"GET": "view"},
    "portal:connection-state": {"POST": "manage"},
    "portal:dataset-list": {"GET": "user"},
    "portal:dataset-add": {"GET": "create_manage", "POST": "create_manage"},
    "portal:dataset-detail": {"GET": "view"},
    "portal:dataset-edit": {"GET": "manage", "POST": "manage"},
    "portal:dataset-state": {"POST": "manage"},
    "portal:upload-create": {"GET": "operate", "POST": "operate"},
    "portal:mapping-add": {"GET": "manage", "POST": "manage"},
    "portal:mapping-detail": {"GET": "view"},
    "portal:mapping-edit": {"GET": "manage", "POST": "manage"},
    "portal:mapping-state": {"POST": "manage"},
    "portal:release-create": {"GET": "operate", "POST": "operate"},
    "portal:release-preflight": {"GET": "operate"},
    "portal:history": {"GET": "user"},
    # The history's own releases only (scoped to the user's teams).
    "portal:history-export": {"GET": "user"},
    # Any user may post; the releases are scoped to their teams and cancel/retry touch only those
    # where they operate (portal.bulk.bulk_plan; tests/portal/views/test_history_bulk.py).
    "portal:history-bulk": {"POST": "user"},
    "portal:release-detail": {"GET": "view"},
    "portal:release-status": {"GET": "view"},
    "portal:release-cancel": {"POST": "operate"},
    "portal:release-step-resolve": {"POST": "operate"},
    "portal:release-log-earlier": {"GET": "view"},
    "portal:release-log-download": {"GET": "view"},
    "portal:mapping-action": {"GET": "view", "POST": "operate"},
    "portal:connection-action": {"GET": "view", "POST": "operate"},
    "portal:action-run": {"GET": "view"},
    "portal:browse": {"GET": "manage"},
    "portal:target-preview": {"POST": "manage"},
    "portal:params-edit": {"GET": "view", "POST": "manage"},
    "portal:params-diff": {"GET": "view"},
    "portal:step-download": {"GET": "view"},
    "portal:account": {"GET": "user", "POST": "user"},
    # Searches the user's own teams' objects only.
    "portal:jump": {"GET": "user"},
    "portal:release-set-new": {"GET": "operate", "POST": "operate"},
    "portal:release-set-list": {"GET": "user"},
    "portal:release-set-detail": {"GET": "view"},
    "portal:release-set-matrix": {"GET": "view"},
    "portal:release-set-cancel": {"POST": "operate"},
    "portal:release-set-retry": {"GET": "operate", "POST": "operate"},
    "portal:release-set-retry-one": {"GET": "operate", "POST": "operate"},
    "portal:schedule-edit": {"POST": "manage"},
    "portal:mapping-channel-add": {"POST": "manage"},
    "portal:team-channel-add": {"POST": "manage"},
    "portal:channel-delete": {"POST": "manage"},
    "portal:release-retry": {"POST": "operate"},
    "portal:team-list": {"GET": "user"},
    "portal:team-detail": {"GET": "view"},
    "portal:member-update": {"POST": "manage"},
    "portal:ops": {"GET": "admins"},
    "portal:ops-releases": {"GET": "admins"},
    "portal:metrics": {"GET": "bearer"},
}

# Every tus request names the protocol's version (else 412, before any authorization).
TUS_HEADERS = {"Tus-Resumable": "1.0.0"}


def routes() -> Iterator[tuple[str, str]]:
    """(name, pattern) of every named route; the admin site counts as one route (its index)."""

    def walk(patterns: list[Any], prefix: str, namespace: str | None) -> Iterator[tuple[str, str]]:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.namespace == "admin":
                    yield "admin:index", prefix + str(pattern.pattern)
                    continue
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), pattern.namespace or namespace)
            elif isinstance(pattern, URLPattern):
                assert pattern.name, f"every route needs a name: {prefix}{pattern.pattern}"
                yield (f"{namespace}:{pattern.name}" if namespace else pattern.name), prefix + str(pattern.pattern)

    return walk(get_resolver().url_patterns, "", None)


def api_methods(name: str) -> set[str]:
    """The methods an API view implements: a DRF class view's handlers; for a function view (tus),
    the Allow header of its 405 answer to a method nobody serves (OPTIONS, tus discovery, is public)."""
    url = reverse(name, kwargs=sample_kwargs(name))
    match = get_resolver().resolve(url)
    view_class = getattr(match.func, "view_class", None) or getattr(match.func, "cls", None)
    if view_class is None:
        answer = Client().generic("TRACE", url, headers=TUS_HEADERS)
        assert answer.status_code == 405, f"{name}: {answer.status_code}"
        return {m.strip() for m in answer["Allow"].split(",")} - {"OPTIONS"}
    return {m.upper() for m in ("get", "post", "put", "patch", "delete") if hasattr(view_class, m)}


def sample_kwargs(name: str) -> dict[str, Any]:
    pattern = dict(routes())[name]
    kwargs: dict[str, Any] = {}
    for part in pattern.split("<")[1:]:
        converter_name = part.split(">")[0]
        converter, _, key = converter_name.rpartition(":")
        kwargs[key] = uuid.uuid4() if converter == "uuid" else (1 if converter == "int" else "x")
    return kwargs


def test_every_route_has_an_expected_answer() -> None:
    names = {name for name, _ in routes()}
    assert names - set(EXPECTED) == set(), "new routes need a line in EXPECTED"
    assert set(EXPECTED) - names == set(), "EXPECTED names routes that no longer exist"
    for name in names:
        if name.startswith("api-") and name not in ("api-schema", "api-docs"):
            assert api_methods(name) == set(EXPECTED[name]), f"{name}: its methods changed"


CASES = [(name, method, role) for name, methods in EXPECTED.items() for method in methods for role in ROLES]


@pytest.fixture
def world(team, alice, olivia, bob, charlie, toucan_mapping, csv_upload):
    """One object of every kind in the data team; charlie administers another team."""
    mapping = toucan_mapping
    release = release_create(
        mapping=mapping, upload=csv_upload, params=params_validate(mapping=mapping, data={}), actor=alice
    )
    step = ReleaseStep.objects.filter(release=release).first()
    release_set = ReleaseSet.objects.create(team=team, dataset=mapping.dataset, upload=csv_upload, created_by=alice)
    Release.objects.filter(pk=release.pk).update(release_set=release_set)
    run = ActionRun.objects.create(team=team, connection=mapping.connection, mapping=mapping, action="x", label="X")
    channel = NotificationChannel.objects.create(team=team, kind="email", target="ops@example.org")
    chunked = ChunkedUpload.objects.create(team=team, dataset=mapping.dataset, user=olivia, filename="a.csv", size=3)
    tus = tus_create(dataset=mapping.dataset, filename="a.csv", length=8, content_type="text/csv", actor=olivia)
    member = Membership.objects.get(team=team, user=bob)
    return {
        "users": {"viewer": bob, "operator": olivia, "admin": alice, "other_admin": charlie},
        "connection": mapping.connection,
        "dataset": mapping.dataset,
        "mapping": mapping,
        "release": release,
        "step": step,
        "release_set": release_set,
        "run": run,
        "channel": channel,
        "chunked": chunked,
        "tus": tus,
        "member": member,
        "upload": csv_upload,
        "team": team,
    }


# Which object a route's ``pk`` is, by the route's name.
PK_OF = [
    ("chunked", "chunked"),
    ("tus-upload", "tus"),
    ("action-run", "run"),
    ("release-set", "release_set"),
    ("sets", "release_set"),
    ("release", "release"),
    ("connection", "connection"),
    ("browse", "connection"),
    ("target-preview", "connection"),
    ("dataset", "dataset"),
    ("mapping", "mapping"),
    ("params", "mapping"),
    ("schedule", "mapping"),
    ("step", "step"),
    ("upload", "upload"),
    ("channel-delete", "channel"),
    ("team", "team"),
    ("member", "member"),
]


UNKNOWN_NAME = {
    "api-mapping-action",
    "portal:mapping-action",
    "portal:connection-action",
    "api-connection-browse",
    "portal:browse",
    "portal:step-download",
    "portal:params-diff",
}


def url_for(name: str, world: dict[str, Any]) -> str:
    kwargs: dict[str, Any] = {}
    pattern = dict(routes())[name]
    short = name.split(":")[-1].removeprefix("api-")
    if name.startswith("portal:release-set"):
        short = "sets"
    for part in pattern.split("<")[1:]:
        key = part.split(">")[0].rpartition(":")[2]
        if key == "pk":
            obj = next(world[attr] for prefix, attr in PK_OF if short.startswith(prefix))
            kwargs[key] = obj.pk
        elif key in ("dataset_pk",):
            kwargs[key] = world["dataset"].pk
        elif key == "mapping_pk":
            kwargs[key] = world["mapping"].pk
        elif key == "state":
            kwargs[key] = "disabled"
        elif key == "name":
            kwargs[key] = "no-such-action"
        elif key == "field":
            kwargs[key] = "small_app"
        elif key == "fmt":
            kwargs[key] = "csv"
        elif key == "what":
            kwargs[key] = "overdue"
        elif key == "step_pk":
            kwargs[key] = world["step"].pk
        elif key == "decision":
            kwargs[key] = "happened"
        elif key in ("uidb64", "token"):
            kwargs[key] = "x"
        else:  # pragma: no cover - a new kind of argument: teach the matrix
            raise AssertionError(f"{name}: no sample for <{part.split('>')[0]}>")
    return reverse(name, kwargs=kwargs) if name != "admin:index" else "/admin/"


def body_for(name: str, world: dict[str, Any], sim_url: str) -> dict[str, Any]:
    """A valid body for the API's create routes, naming the data team's objects."""
    team, dataset, mapping = world["team"], world["dataset"], world["mapping"]
    upload = world["release"].upload_id
    return {
        "api-connections": {
            "team": team.pk,
            "platform": "toucan",
            "name": "New",
            "base_url": sim_url,
            "credentials": TOUCAN_CREDENTIALS,
        },
        "api-datasets": {"team": team.pk, "name": "New dataset"},
        "api-mappings": {
            "dataset": dataset.pk,
            "connection": mapping.connection_id,
            "name": "New",
            "target": mapping.target,
        },
        "api-releases": {"mapping": mapping.pk, "upload": upload},
        "api-release-sets": {"dataset": dataset.pk, "mappings": [mapping.pk], "upload": upload},
        "api-chunked": {"dataset": dataset.pk, "filename": "a.csv", "size": 3},
    }.get(name, {})


def classify(name: str, response: Any) -> str:
    status = response.status_code
    location = response.get("Location", "")
    if status == 302 and location.startswith("/admin/login/"):
        return "admin_login"
    if status == 302 and location.startswith(reverse("login")) and name != "logout":
        return "login"
    if status in (401,) or (name.startswith("api-") and status == 403 and "credentials" in response.content.decode()):
        return "login"
    if name == "readyz" and status == 503 and "checks" in response.json():
        return "ok"  # not ready (no worker runs here): an answer, not a refusal
    if status == 403:
        return "403"
    if status == 404:
        return "404"
    assert status < 500, f"{name}: {status}"
    return "ok"


@pytest.mark.parametrize(("name", "method", "role"), CASES, ids=[f"{n}-{m}-{r}" for n, m, r in CASES])
def test_the_authorization_matrix(client, world, sim, settings, name: str, method: str, role: str) -> None:
    cache.clear()
    settings.PORTAL_METRICS_TOKEN = "scraper-token"  # as in production, where one is required
    if role != "anonymous":
        client.force_login(world["users"][role])
    url = url_for(name, world)
    if name == "api-tus":
        metadata = (
            f"dataset {b64encode(str(world['dataset'].pk).encode()).decode()},filename {b64encode(b'a.csv').decode()}"
        )
        headers = {**TUS_HEADERS, "Upload-Length": "8", "Upload-Metadata": metadata}
        response = client.generic(method, url, headers=headers)
    elif name.startswith("api-tus-upload"):
        headers = {**TUS_HEADERS, "Upload-Offset": "0"}
        response = client.generic(method, url, b"a,b\n" if method == "PATCH" else b"", OCTET_STREAM, headers=headers)
    elif name == "portal:history-bulk":
        data = {"action": "cancel", "ids": world["release"].pk, "confirm": "yes"}
        response = client.post(url, data)
    elif name == "api-uploads" and method == "POST":
        file = SimpleUploadedFile("a.csv", b"a,b\n1,2\n")
        response = client.post(url, {"dataset": world["dataset"].pk, "file": file})
    elif name.startswith("api-"):
        body = json.dumps(body_for(name, world, sim.url("toucan")))
        response = client.generic(method, url, body, content_type="application/json")
    else:
        response = client.generic(method, url, "", content_type="application/x-www-form-urlencoded")
    expected = RULES[EXPECTED[name][method]][role]
    if name in UNKNOWN_NAME and (expected == "ok" or (expected == "403" and "action" in name)):
        # Toucan has no actions, browsable fields, downloads or saved versions: once access is granted the
        # name is unknown (404; an action is looked up before the role). These rows prove the login, the
        # role (browse) and the other team's 404.
        expected = "404"
    assert classify(name, response) == expected, f"{method} {url} as {role}: {response.status_code}"
