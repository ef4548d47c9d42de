"""Schedules, notifications and the command line."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django_celery_beat.models import PeriodicTask

from portal import jobs
from portal.automation.notifications import channel_create, release_finished
from portal.automation.schedules import TASK, next_run, parse_cron, schedule_set, scheduled_release
from portal.engine.core import release_advance
from portal.models import NotificationDelivery, Release, ReleaseStatus, StepStatus
from portal.services.mappings import params_validate, params_version_save
from portal.services.releases import release_create

pytestmark = pytest.mark.django_db


# Schedules


def test_a_schedule_is_a_beat_task_with_a_next_run(toucan_mapping, alice):
    schedule = schedule_set(mapping=toucan_mapping, cron="30 6 * * 1-5", enabled=True, actor=alice)
    task = PeriodicTask.objects.get(pk=schedule.periodic_task_id)
    assert task.task == "portal.tasks.scheduled_release_task" and json.loads(task.args) == [toucan_mapping.pk]
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("30", "6", "1-5")
    monday = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
    assert next_run(schedule, now=monday) == datetime(2026, 11, 23, 6, 30, tzinfo=UTC)
    friday_night = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
    assert next_run(schedule, now=friday_night) == datetime(2026, 11, 30, 6, 30, tzinfo=UTC)
    schedule_set(mapping=toucan_mapping, cron="30 6 * * 1-5", enabled=False, actor=alice)
    task.refresh_from_db()
    assert task.enabled is False


@pytest.mark.parametrize("cron", ["every day", "61 * * * *", "* * * *"])
def test_a_bad_cron_is_refused_with_a_reason(cron):
    with pytest.raises(ValueError):
        parse_cron(cron)


def test_firing_a_schedule_releases_the_newest_upload_with_saved_params(
    toucan_mapping, csv_upload, alice, django_capture_on_commit_callbacks
):
    from portal.tasks import scheduled_release_task

    params_version_save(
        mapping=toucan_mapping,
        params=params_validate(mapping=toucan_mapping, data={"operations": ["release"]}),
        actor=alice,
    )
    schedule = schedule_set(mapping=toucan_mapping, cron="0 6 * * *", enabled=True, actor=alice)
    with django_capture_on_commit_callbacks():
        scheduled_release_task.run(toucan_mapping.pk)
    release = Release.objects.get()
    assert release.trigger == "schedule" and release.schedule == schedule and release.created_by is None
    assert release.upload == csv_upload and release.params["operations"] == ["release"]
    schedule.refresh_from_db()
    assert schedule.last_outcome == f"Started release #{release.pk}."


def test_a_schedule_does_not_run_a_disabled_mapping_and_says_why(toucan_mapping, csv_upload, alice):
    schedule = schedule_set(mapping=toucan_mapping, cron="0 6 * * *", enabled=True, actor=alice)
    toucan_mapping.state = "disabled"
    toucan_mapping.save()
    assert scheduled_release(mapping_id=toucan_mapping.pk) is None
    schedule.refresh_from_db()
    assert schedule.last_outcome == "Not run: the mapping is disabled."
    assert not Release.objects.exists()


def test_a_schedule_without_a_file_does_not_run_and_says_why(toucan_mapping, alice, client):
    schedule = schedule_set(mapping=toucan_mapping, cron="0 6 * * *", enabled=True, actor=alice)
    scheduled_release(mapping_id=toucan_mapping.pk)
    schedule.refresh_from_db()
    assert schedule.last_outcome == "Not run: no file has been uploaded for this dataset."
    client.force_login(alice)
    page = client.get(toucan_mapping.get_absolute_url()).content.decode()
    assert "no file has been uploaded" in page and "data-next-run" in page


def test_the_schedule_form_refuses_bad_cron(client, alice, toucan_mapping):
    client.force_login(alice)
    response = client.post(
        f"/mappings/{toucan_mapping.pk}/schedule/", {"cron": "whenever", "enabled": "on"}, follow=True
    )
    assert "five fields" in response.content.decode()
    assert not PeriodicTask.objects.filter(task=TASK).exists()


# Notifications


class Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict, bytes]] = []
    answers: list[int] = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((dict(self.headers), body))
        self.send_response(Receiver.answers.pop(0) if Receiver.answers else 200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    Receiver.received, Receiver.answers = [], []
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


@pytest.fixture
def failed_release(toucan_mapping, csv_upload, alice, monkeypatch, sim):
    monkeypatch.setattr(jobs, "release_advance", lambda *a, **k: None)
    sim.fail("toucan", "operation_failed", message="Preprocess failed: column amount missing")
    release = release_create(
        mapping=toucan_mapping,
        upload=csv_upload,
        params=params_validate(mapping=toucan_mapping, data={"operations": ["preprocess_data_sources"]}),
        actor=alice,
    )
    from django.utils import timezone as tz

    from portal.models import ReleaseStep

    for _ in range(40):
        release_advance(release.pk)
        release.refresh_from_db()
        if release.is_terminal:
            break
        ReleaseStep.objects.filter(release=release, status=StepStatus.WAITING).update(next_check_at=tz.now())
        import time

        time.sleep(0.1)
    assert release.status == ReleaseStatus.FAILED
    return release


def deliver_all(django_capture_on_commit_callbacks, release):
    """Run the notification fan-out and every delivery now, as the worker would."""
    from portal.tasks import notification_deliver_task

    with django_capture_on_commit_callbacks() as callbacks:
        release_finished(release)
    for delivery in NotificationDelivery.objects.filter(status=NotificationDelivery.Status.PENDING):
        notification_deliver_task.run(delivery.pk)
    return callbacks


def test_a_failure_is_posted_to_a_signed_webhook(failed_release, receiver, team, django_capture_on_commit_callbacks):
    channel_create(team=team, kind="webhook", target=receiver, secret="hook-secret")
    deliver_all(django_capture_on_commit_callbacks, failed_release)
    headers, body = Receiver.received[0]
    timestamp = headers["X-Portal-Timestamp"]
    assert abs(int(timestamp) - time.time()) < 60  # the receiver's replay window
    expected = "sha256=" + hmac.new(b"hook-secret", timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers["X-Portal-Signature"] == expected
    data = json.loads(body)
    assert data["event"] == "release.failed" and data["dataset"] == "Sales" and data["platform"] == "Toucan Toco"
    assert (
        data["failed_step"] == "Preprocess data sources" and data["error"] == "Preprocess failed: column amount missing"
    )
    assert data["url"].endswith(f"/releases/{failed_release.pk}/")
    delivery = NotificationDelivery.objects.get()
    assert delivery.status == "delivered" and delivery.response_code == 200


def test_a_failing_receiver_is_retried_and_every_attempt_recorded(
    failed_release, receiver, team, django_capture_on_commit_callbacks, settings
):
    settings.PORTAL_WEBHOOK_MAX_ATTEMPTS = 3
    Receiver.answers = [500, 503]
    channel_create(team=team, kind="webhook", target=receiver, secret="s")
    from portal.tasks import notification_deliver_task

    with django_capture_on_commit_callbacks(execute=False):
        release_finished(failed_release)
    for _ in range(3):
        for delivery in NotificationDelivery.objects.filter(status=NotificationDelivery.Status.PENDING):
            with django_capture_on_commit_callbacks(execute=False):
                notification_deliver_task.run(delivery.pk)
    attempts = list(NotificationDelivery.objects.order_by("attempt").values_list("attempt", "status", "response_code"))
    assert attempts == [(1, "retrying", 500), (2, "retrying", 503), (3, "delivered", 200)]
    assert len(Receiver.received) == 3


def test_a_mapping_channel_replaces_the_teams_and_email_names_the_failure(
    failed_release, team, receiver, django_capture_on_commit_callbacks
):
    channel_create(team=team, kind="webhook", target=receiver)
    channel_create(team=team, mapping=failed_release.mapping, kind="email", target="oncall@example.com")
    deliver_all(django_capture_on_commit_callbacks, failed_release)
    assert Receiver.received == [], "the mapping's own channel replaces the team's"
    (message,) = mail.outbox
    assert "Sales" in message.subject and "failed" in message.subject
    assert (
        "Preprocess failed: column amount missing" in message.body and f"/releases/{failed_release.pk}/" in message.body
    )


def test_success_is_sent_only_when_asked(toucan_mapping, csv_upload, alice, team, django_capture_on_commit_callbacks):
    release = release_create(
        mapping=toucan_mapping,
        upload=csv_upload,
        params=params_validate(mapping=toucan_mapping, data={}),
        actor=alice,
    )
    Release.objects.filter(pk=release.pk).update(status=ReleaseStatus.SUCCEEDED)
    release.refresh_from_db()
    channel_create(team=team, kind="email", target="a@example.com")
    channel_create(team=team, kind="email", target="b@example.com", on_success=True)
    deliver_all(django_capture_on_commit_callbacks, release)
    assert [m.to for m in mail.outbox] == [["b@example.com"]]


# Command line


def test_release_file_exits_0_on_success(toucan_mapping, olivia, tmp_path, monkeypatch, sim):
    path = tmp_path / "sales.csv"
    path.write_text("a,b\n1,2\n")
    # The worker's part, done in-process: the command only waits on the database.
    monkeypatch.setattr(jobs, "release_advance", lambda release_id, countdown=0: None)
    real_sleep = __import__("time").sleep

    def advance_then_sleep(seconds):
        from django.utils import timezone as tz

        from portal.models import ReleaseStep

        for release in Release.objects.filter(status__in=["queued", "running"]):
            ReleaseStep.objects.filter(release=release, status=StepStatus.WAITING).update(next_check_at=tz.now())
            release_advance(release.pk)
        real_sleep(0.2)

    monkeypatch.setattr("portal.management.commands.release_file.time.sleep", advance_then_sleep)
    call_command(
        "release_file",
        "--mapping",
        str(toucan_mapping.pk),
        "--file",
        str(path),
        "--user",
        "olivia",
        "--param",
        'operations=["release"]',
        "--timeout",
        "30",
        stdout=io.StringIO(),
    )
    release = Release.objects.get()
    assert release.status == "succeeded" and release.trigger == "cli" and release.upload.original_name == "sales.csv"


def test_release_file_exits_non_zero_with_the_reason(toucan_mapping, olivia, bob, tmp_path, monkeypatch):
    path = tmp_path / "sales.csv"
    path.write_text("a\n1\n")
    with pytest.raises(CommandError) as info:
        call_command("release_file", "--mapping", str(toucan_mapping.pk), "--file", str(path), "--user", "bob")
    assert info.value.returncode == 2 and "may release" in str(info.value)
    with pytest.raises(CommandError) as info:
        call_command(
            "release_file",
            "--mapping",
            str(toucan_mapping.pk),
            "--file",
            str(tmp_path / "missing.csv"),
            "--user",
            "olivia",
        )
    assert info.value.returncode == 2 and "No file" in str(info.value)
    toucan_mapping.state = "disabled"
    toucan_mapping.save()
    with pytest.raises(CommandError) as info:
        call_command("release_file", "--mapping", str(toucan_mapping.pk), "--file", str(path), "--user", "olivia")
    assert info.value.returncode == 2 and "disabled" in str(info.value)


def test_release_file_reports_a_failed_release(toucan_mapping, olivia, tmp_path, monkeypatch):
    path = tmp_path / "sales.csv"
    path.write_text("a\n1\n")
    monkeypatch.setattr(jobs, "release_advance", lambda release_id, countdown=0: None)

    def fail_it(seconds):
        Release.objects.filter(status="queued").update(status="failed", error="Upload: 401 Unauthorized")

    monkeypatch.setattr("portal.management.commands.release_file.time.sleep", fail_it)
    with pytest.raises(CommandError) as info:
        call_command(
            "release_file",
            "--mapping",
            str(toucan_mapping.pk),
            "--file",
            str(path),
            "--user",
            "olivia",
            stdout=io.StringIO(),
        )
    assert info.value.returncode == 1 and "401 Unauthorized" in str(info.value)


def test_list_releases(toucan_mapping, csv_upload, olivia, capsys):
    release_create(
        mapping=toucan_mapping,
        upload=csv_upload,
        params=params_validate(mapping=toucan_mapping, data={}),
        actor=olivia,
    )
    from io import StringIO

    out = StringIO()
    call_command("list_releases", "--limit", "5", stdout=out)
    assert "queued\ttoucan\tSales → Sales on Toucan\tolivia" in out.getvalue()


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/hook", "http://10.1.2.3/hook", "http://localhost/hook", "ftp://example.com/x"]
)
def test_webhooks_into_private_networks_are_refused(team, settings, url):
    from django.core.exceptions import ValidationError

    settings.PORTAL_OUTBOUND_ALLOW = []
    with pytest.raises(ValidationError):
        channel_create(team=team, kind="webhook", target=url)
    assert not team.notification_channels.exists()
