"""A canary secret goes in through the form; it must come out nowhere: not in HTML, the
admin, logs, audit events, release events, errors or Celery messages."""

from __future__ import annotations

import logging

import pytest
from django.contrib import admin
from django.urls import reverse

from portal import jobs
from portal.engine.core import release_advance
from portal.models import (
    ActionRun,
    AuditEvent,
    ChunkedUpload,
    Connection,
    Membership,
    NotificationChannel,
    Release,
    ReleaseEvent,
    ReleaseSet,
    ReleaseStep,
)
from portal.services.connections import connection_test
from portal.services.datasets import dataset_create
from portal.services.mappings import mapping_create, params_validate, target_validate
from portal.services.releases import release_create
from portal.services.uploads import upload_create

from ..security.test_authz_matrix import EXPECTED, url_for

pytestmark = pytest.mark.django_db

CANARY = "CANARY-9d1e-never-show-me"


@pytest.fixture
def leaky_release(client, alice, team, sim, monkeypatch, django_capture_on_commit_callbacks):
    """A connection whose password is the canary, and a release that fails on it."""
    sent: list = []
    # Every task the portal enqueues leaves through jobs.send (name and ids): record the ids.
    monkeypatch.setattr(jobs, "send", lambda name, *ids, **kw: sent.append((ids, kw)))
    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("portal:connection-add") + "?platform=toucan",
            {
                "platform": "toucan",
                "team": team.pk,
                "name": "Leaky",
                "base_url": sim.url("toucan"),
                "cred-login": "contributor@demo.example",
                "cred-password": CANARY,
            },
        )
    connection = Connection.objects.get(name="Leaky")
    dataset = dataset_create(team=team, name="Canary data", actor=alice)
    target = target_validate(connection=connection, data={"small_app": "demo-app", "data_source": "sales.csv"})
    mapping = mapping_create(dataset=dataset, connection=connection, name="Canary map", target=target, actor=alice)
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = upload_create(dataset=dataset, file=SimpleUploadedFile("sales.csv", b"a,b\n1,2\n"), actor=alice)
    with django_capture_on_commit_callbacks(execute=True):
        release = release_create(
            mapping=mapping, upload=upload, params=params_validate(mapping=mapping, data={}), actor=alice
        )
    connection_test(connection=connection)
    release_advance(release.pk)  # the password is wrong for Toucan: the upload fails with 401
    release.refresh_from_db()
    return {"release": release, "connection": connection, "mapping": mapping, "sent": sent}


def test_the_release_failed_for_the_right_reason(leaky_release):
    release = leaky_release["release"]
    assert release.status == "failed"
    assert "401" in release.steps.get(name="upload").error


def test_no_page_shows_the_canary(client, alice, leaky_release):
    client.force_login(alice)
    alice.is_staff = alice.is_superuser = True
    alice.save()
    release, connection, mapping = leaky_release["release"], leaky_release["connection"], leaky_release["mapping"]
    urls = [
        connection.get_absolute_url(),
        reverse("portal:connection-edit", args=[connection.pk]),
        reverse("portal:connection-list"),
        reverse("portal:connection-test-status", args=[connection.pk]),
        release.get_absolute_url(),
        mapping.get_absolute_url(),
        reverse("portal:history"),
        reverse("portal:dashboard"),
        reverse("portal:team-detail", args=[connection.team_id]),
        reverse("admin:portal_connection_change", args=[connection.pk]),
        reverse("admin:portal_connection_changelist"),
        reverse("admin:portal_auditevent_changelist"),
        reverse("admin:portal_releaseevent_changelist"),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code in (200, 286), url
        assert CANARY not in response.content.decode(), url


def test_no_row_outside_the_encrypted_field_holds_the_canary(leaky_release):
    for event in AuditEvent.objects.all():
        assert CANARY not in f"{event.changes} {event.object_repr}"
    for event in ReleaseEvent.objects.all():
        assert CANARY not in event.message
    for step in ReleaseStep.objects.all():
        assert CANARY not in f"{step.error} {step.message} {step.output}"
    assert CANARY not in Release.objects.get().error
    assert CANARY not in leaky_release["connection"].last_test_message
    assert CANARY not in leaky_release["connection"].credentials_encrypted


def test_celery_messages_carry_ids_only(leaky_release):
    assert leaky_release["sent"], "tasks were enqueued"
    for args, kwargs in leaky_release["sent"]:
        assert CANARY not in repr((args, kwargs))
        assert all(isinstance(a, int) for a in (args[0] if args and isinstance(args[0], tuple) else args))


def test_logs_and_reprs_never_show_it(leaky_release, caplog):
    caplog.set_level(logging.DEBUG)
    connection = leaky_release["connection"]
    credentials = connection.credentials()
    logging.getLogger("portal").info("credentials: %r / %s", credentials, credentials)
    connection_test(connection=connection)
    release_advance(leaky_release["release"].pk)
    assert CANARY not in caplog.text
    assert CANARY not in repr(connection.connector().credentials)


def test_structured_log_lines_never_show_it(leaky_release, client, alice):
    """The production format (JSON through structlog) of everything logged while the canary is used:
    the release failing on it, the connection test, and a request whose query string carries it."""
    import io
    import json

    import structlog

    from config.logging import logging_config

    spec = dict(logging_config(json_logs=True)["formatters"]["structured"])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(spec.pop("()")(**spec))
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.DEBUG)
    try:
        connection = leaky_release["connection"]
        connection_test(connection=connection)
        release_advance(leaky_release["release"].pk)
        structlog.get_logger("portal").info("connection used", credentials=connection.credentials())
        client.force_login(alice)
        client.get(connection.get_absolute_url() + f"?token={CANARY}")
        logging.getLogger("portal").info("signed url https://bucket.example/x.csv?X-Amz-Signature=%s", CANARY)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    assert any(line.get("event") == "request_finished" for line in lines)
    assert any("X-Amz-Signature" in line.get("event", "") for line in lines)
    assert CANARY not in stream.getvalue()


def test_no_page_api_answer_or_log_of_a_full_run_shows_the_canary(client, alice, leaky_release, caplog):
    """Every GET route of the URLconf (pages and API, the matrix's list), every admin list and change
    page, as a superuser, after a full run (form, test, release, notification); and every log line."""
    caplog.set_level(logging.DEBUG)
    release, connection, mapping = leaky_release["release"], leaky_release["connection"], leaky_release["mapping"]
    alice.is_staff = alice.is_superuser = True
    alice.save()
    connection_test(connection=connection)
    release_advance(release.pk)
    world = {
        "connection": connection,
        "dataset": mapping.dataset,
        "mapping": mapping,
        "release": release,
        "upload": release.upload,
        "step": release.steps.first(),
        "release_set": ReleaseSet.objects.create(team=connection.team, dataset=mapping.dataset, created_by=alice),
        "run": ActionRun.objects.create(team=connection.team, connection=connection, action="x", label="X"),
        "channel": NotificationChannel.objects.create(team=connection.team, kind="email", target="ops@example.org"),
        "chunked": ChunkedUpload.objects.create(
            team=connection.team, dataset=mapping.dataset, user=alice, filename="a.csv", size=3
        ),
        "member": Membership.objects.get(team=connection.team, user=alice),
        "team": connection.team,
    }
    client.force_login(alice)
    seen = 0
    for name, methods in EXPECTED.items():
        if "GET" not in methods:
            continue
        response = client.get(url_for(name, world))
        body = b"".join(response.streaming_content) if response.streaming else response.content
        assert CANARY not in body.decode(errors="replace"), name
        seen += 1
    for model, model_admin in admin.site._registry.items():
        info = (model._meta.app_label, model._meta.model_name)
        pages = [reverse("admin:{}_{}_changelist".format(*info))]
        first = model._default_manager.first()
        if first is not None and model_admin.has_change_permission:
            pages.append(reverse("admin:{}_{}_change".format(*info), args=[first.pk]))
        for page in pages:
            response = client.get(page)
            assert response.status_code == 200, page
            assert CANARY not in response.content.decode(), page
            seen += 1
    assert seen > 60
    assert CANARY not in caplog.text
