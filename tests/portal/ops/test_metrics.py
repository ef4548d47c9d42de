"""/metrics: its content after a release, its bearer-token guard, and the same figures from every
process of a two-worker gunicorn (counters live in Redis, the rest is read at scrape time)."""

from __future__ import annotations

import json
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from portal.crypto import encrypt_json
from portal.models import Release
from portal.operations.heartbeats import beat_tick, worker_heartbeat
from portal.operations.metrics import DB_CACHE_KEY, record_sweep, redis_client
from portal.services.mappings import params_validate
from portal.services.releases import release_create
from portal.services.uploads import upload_create
from portal.tokens import token_create
from simulators.tonalytica import TonalyticaSimulator
from tests.factories import ConnectionFactory
from tests.helpers import drive_release
from tests.simulator import free_port

from .conftest import Process, process_env


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of a Prometheus text exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def released(toucan_mapping, alice, sim):
    upload = upload_create(
        dataset=toucan_mapping.dataset,
        file=SimpleUploadedFile("sales.csv", b"region,amount\nnorth,1\n" * 40),
        actor=alice,
    )
    release = release_create(
        mapping=toucan_mapping,
        upload=upload,
        params=params_validate(mapping=toucan_mapping, data={"operations": ["release"]}),
        actor=alice,
    )
    return drive_release(release)


@pytest.mark.django_db
def test_metrics_after_a_release(client, released):
    assert released.status == "succeeded", released.error
    record_sweep(3)
    worker_heartbeat("celery@test-host")
    beat_tick()
    response = client.get(reverse("portal:metrics"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    found = samples(response.content.decode())

    assert value(found, "portal_releases", status="succeeded", platform="toucan") == 1
    steps = released.steps.count()
    upload_steps = value(found, "portal_step_duration_seconds_count", platform="toucan", kind="upload")
    operation_steps = value(found, "portal_step_duration_seconds_count", platform="toucan", kind="operation")
    assert upload_steps + operation_steps == steps == 2
    assert value(found, "portal_step_duration_seconds_bucket", platform="toucan", kind="upload", le="+Inf") == 1
    assert value(found, "portal_step_duration_seconds_sum", platform="toucan", kind="upload") > 0
    calls = value(found, "portal_platform_http_answers_total", platform="toucan", status_class="2xx")
    assert calls >= 2  # at least the upload and the operation
    assert value(found, "portal_upload_bytes_total") == released.upload.size
    assert value(found, "portal_uploads_total") == 1
    assert value(found, "portal_sweeper_redispatches_total") == 3
    assert value(found, "portal_sweeper_runs_total") == 1
    assert value(found, "portal_celery_queue_length", queue="celery") >= 0
    assert 0 <= value(found, "portal_worker_heartbeat_age_seconds", worker="celery@test-host") < 60
    assert 0 <= value(found, "portal_beat_heartbeat_age_seconds") < 60


@pytest.mark.django_db
def test_platform_errors_are_counted_by_status_class(client, toucan_mapping, alice, sim):
    sim.fail("toucan", "500", match="/operations", times=2)
    upload = upload_create(
        dataset=toucan_mapping.dataset, file=SimpleUploadedFile("sales.csv", b"a,b\n1,2\n"), actor=alice
    )
    release = release_create(
        mapping=toucan_mapping,
        upload=upload,
        params=params_validate(mapping=toucan_mapping, data={"operations": ["release"]}),
        actor=alice,
    )
    drive_release(release)
    found = samples(client.get(reverse("portal:metrics")).content.decode())
    assert value(found, "portal_platform_http_answers_total", platform="toucan", status_class="5xx") == 2


@pytest.mark.django_db
def test_a_token_guards_the_endpoint(client, settings):
    settings.PORTAL_METRICS_TOKEN = "scrape-me"
    url = reverse("portal:metrics")
    assert client.get(url).status_code == 401
    assert client.get(url, HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get(url, HTTP_AUTHORIZATION="Bearer scrape-me").status_code == 200
    settings.PORTAL_METRICS_TOKEN = ""
    settings.PORTAL_METRICS_REQUIRE_TOKEN = True  # production without a token: no metrics at all
    assert client.get(url).status_code == 404


COUNTED = ("portal_platform_http_answers_total", "portal_releases", "portal_upload_bytes_total")


@pytest.mark.django_db(transaction=True)
def test_two_gunicorn_processes_answer_the_same_figures(team, alice, sim, tmp_path, media_root, released):
    """Platform calls made by both gunicorn workers, and a release run in this process, are counted
    once and seen whole by whichever worker answers the scrape."""
    base = sim.url("tonalytica")
    connection = ConnectionFactory(
        team=team,
        platform="tonalytica",
        name="TONalytica sim",
        base_url=base,
        credentials_encrypted=encrypt_json(TonalyticaSimulator.demo(base)["credentials"]),
    )
    _, key = token_create(user=alice, name="scraper test")
    port = free_port()
    server = Process(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--access-logfile",
            "-",
            "--access-logformat",
            "pid=%(p)s %(r)s %(s)s",
            "--no-control-socket",  # the default one is shared by every gunicorn of this user
        ],
        tmp_path / "gunicorn.log",
        process_env(media_root, PORTAL_LOG_FORMAT="json"),
    )
    try:
        server.wait_for_log("Booting worker", timeout=30)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(url + "/login/", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        browse = f"{url}/api/v1/connections/{connection.pk}/browse/query_id/?q=wallets"
        # Two at a time, so that while one worker is busy the other must answer.
        with ThreadPoolExecutor(2) as pool:
            headers = {"Authorization": f"Bearer {key}", "Connection": "close"}
            answers = list(pool.map(lambda _: httpx.get(browse, headers=headers, timeout=10), range(12)))
            assert {answer.status_code for answer in answers} == {200}
            scraped = list(
                pool.map(lambda _: httpx.get(url + "/metrics", headers={"Connection": "close"}, timeout=10), range(12))
            )
        assert {answer.status_code for answer in scraped} == {200}
        scrapes = [{k: v for k, v in samples(a.text).items() if k[0] in COUNTED} for a in scraped]
        log = server.text()
    finally:
        server.stop()

    pids = set(re.findall(r"pid=<(\d+)> GET /api/v1/connections/", log))
    assert len(pids) == 2, "both gunicorn workers made platform calls"
    assert len(set(re.findall(r"pid=<(\d+)> GET /metrics", log))) == 2, "both gunicorn workers answered scrapes"
    assert all(scrape == scrapes[0] for scrape in scrapes), "every process answers the same figures"
    figures = scrapes[0]
    assert value(figures, "portal_platform_http_answers_total", platform="tonalytica", status_class="2xx") >= 12
    assert value(figures, "portal_platform_http_answers_total", platform="toucan", status_class="2xx") >= 2
    assert value(figures, "portal_releases", status="succeeded", platform="toucan") == 1
    assert Release.objects.count() == 1
    # The server logged JSON lines (PORTAL_LOG_FORMAT=json) carrying the request's context.
    finished = [json.loads(line) for line in log.splitlines() if line.startswith("{") and "request_finished" in line]
    browsed = [line for line in finished if "/browse/" in line["request"]]
    assert len(browsed) == 12
    assert {(line["platform"], line["user_id"], line["code"]) for line in browsed} == {("tonalytica", alice.pk, 200)}
    assert len({line["request_id"] for line in browsed}) == 12
    assert all(line["request"].endswith("?q=[redacted]") for line in browsed)


@pytest.mark.django_db
def test_database_figures_are_shared_between_scrapes_for_a_while(client, settings, csv_upload):
    settings.PORTAL_METRICS_DB_CACHE_SECONDS = 60
    first = samples(client.get(reverse("portal:metrics")).content.decode())
    assert value(first, "portal_uploads_total") == 1
    from tests.factories import UploadFactory

    UploadFactory(dataset=csv_upload.dataset)
    again = samples(client.get(reverse("portal:metrics")).content.decode())
    assert value(again, "portal_uploads_total") == 1  # from the shared cache, no query
    redis_client().delete(DB_CACHE_KEY)
    fresh = samples(client.get(reverse("portal:metrics")).content.decode())
    assert value(fresh, "portal_uploads_total") == 2
