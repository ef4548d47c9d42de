"""Structured logs: the JSON and console formats, the context every line carries, and the request id
travelling from a web request into the Celery task it enqueued (a real worker process)."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
import structlog
from django.urls import reverse

from config.logging import logging_config
from portal.models import Connection
from tests.helpers import wait_for

CANARY = "CANARY-log-9d1e-never-show-me"


def formatter(json_logs: bool) -> logging.Formatter:
    spec = dict(logging_config(json_logs=json_logs)["formatters"]["structured"])
    factory = spec.pop("()")
    return factory(**spec)


@pytest.fixture
def captured():
    """Records of the ``portal.test`` logger, formatted as production would."""

    def capture(json_logs: bool) -> io.StringIO:
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter(json_logs))
        logger = logging.getLogger("portal.test")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        handlers.append(handler)
        return stream

    handlers: list[logging.Handler] = []
    yield capture
    for handler in handlers:
        logging.getLogger("portal.test").removeHandler(handler)
    structlog.contextvars.clear_contextvars()


def test_json_lines_carry_the_bound_context(captured):
    stream = captured(True)
    structlog.contextvars.bind_contextvars(
        request_id="req-1", user_id=7, team_id=3, release_id=42, step="upload", task_id="task-9", platform="toucan"
    )
    logging.getLogger("portal.test").info("plain %s", "stdlib")
    structlog.get_logger("portal.test").warning("structured", attempt=2)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["plain stdlib", "structured"]
    for line in lines:
        assert line["request_id"] == "req-1"
        assert (line["user_id"], line["team_id"], line["release_id"]) == (7, 3, 42)
        assert (line["step"], line["task_id"], line["platform"]) == ("upload", "task-9", "toucan")
        assert line["timestamp"].endswith("Z")
        assert line["logger"] == "portal.test"
    assert lines[1]["level"] == "warning" and lines[1]["attempt"] == 2


def test_secrets_are_masked_whatever_logs_them(captured):
    stream = captured(True)
    log = structlog.get_logger("portal.test")
    log.info("called", credentials={"login": "ann", "password": CANARY}, api_key=CANARY)
    log.info("uploaded", url=f"https://bucket.example/f.csv?X-Amz-Signature={CANARY}&X-Amz-Expires=60")
    logging.getLogger("portal.test").info("extra", extra={"token": CANARY, "harmless": "kept"})
    text = stream.getvalue()
    assert CANARY not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["credentials"] == "[redacted]" and lines[0]["api_key"] == "[redacted]"
    assert lines[1]["url"] == "https://bucket.example/f.csv?X-Amz-Signature=[redacted]&X-Amz-Expires=[redacted]"
    assert lines[2]["harmless"] == "kept"


def test_the_console_format_is_one_readable_line(captured):
    stream = captured(False)
    structlog.contextvars.bind_contextvars(request_id="req-2", release_id=5)
    logging.getLogger("portal.test").info("release event: Upload sales.csv: started")
    line = stream.getvalue().strip()
    assert "\n" not in line
    assert not line.startswith("{")
    assert "release event: Upload sales.csv: started" in line
    assert "release_id=5" in line and "request_id=req-2" in line


@pytest.mark.django_db
def test_a_page_request_logs_its_release_team_and_platform(client, alice, toucan_mapping, csv_upload, caplog):
    from tests.factories import ReleaseFactory

    release = ReleaseFactory(mapping=toucan_mapping, upload=csv_upload, created_by=alice)
    client.force_login(alice)
    caplog.set_level(logging.INFO)
    assert client.get(release.get_absolute_url()).status_code == 200
    finished = [r.msg for r in caplog.records if isinstance(r.msg, dict) and r.msg.get("event") == "request_finished"]
    assert len(finished) == 1
    line = finished[0]
    assert line["release_id"] == release.pk and line["platform"] == "toucan"
    assert line["team_id"] == release.team_id and line["user_id"] == alice.pk
    assert re.fullmatch(r"[0-9a-f-]{36}", line["request_id"])


def fields(line: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", line))


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_the_request_id_travels_into_the_task_it_enqueued(
    client, alice, toucan_mapping, caplog, celery_worker_process, media_root
):
    """The connection test is requested on the page and run by the worker: the worker's log lines for
    that task carry the web request's id, the task id, the team and the platform."""
    connection = toucan_mapping.connection
    client.force_login(alice)
    caplog.set_level(logging.INFO)
    client.post(reverse("portal:connection-test", args=[connection.pk]))
    started = [r.msg for r in caplog.records if isinstance(r.msg, dict) and r.msg.get("event") == "request_started"]
    request_id = started[-1]["request_id"]
    enqueued = [r.msg for r in caplog.records if isinstance(r.msg, dict) and r.msg.get("event") == "task_enqueued"]
    assert enqueued and enqueued[-1]["request_id"] == request_id
    task_id = enqueued[-1]["child_task_id"]

    wait_for(lambda: Connection.objects.get(pk=connection.pk).last_test_at, timeout=30, message="the test to run")
    worker_log = media_root.parent / "celery-worker.log"

    def task_lines() -> list[str]:
        return [line for line in worker_log.read_text().splitlines() if f"task_id={task_id}" in line]

    wait_for(lambda: any("task_succeeded" in line for line in task_lines()), timeout=10, message="task_succeeded")
    lines = task_lines()
    assert any("task_started" in line for line in lines)
    for line in map(fields, lines):
        assert line["request_id"] == request_id
        assert line["user_id"] == str(alice.pk)
        assert line["platform"] == "toucan"
        assert line["team_id"] == str(connection.team_id)
        assert line["connection_id"] == str(connection.pk)
