"""The engine keeps its promise under faults (issue 14): every release ends terminal or
*needs attention*, no mutating call reaches a platform twice, and no step's state
contradicts its release's.

Real worker processes (2 prefork workers of 2 children) and a beat on a private
redis-server the suite kills and restarts, the simulators, PostgreSQL. Test settings:
lease 5 s, HTTP timeout 2 s, sweeper every 1 s, visibility timeout 6 s.
"""

from __future__ import annotations

import random
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.test import APIClient

from portal import tokens
from portal.models import Release, ReleaseStatus, ReleaseStep, StepStatus
from portal.services.mappings import params_validate
from portal.services.releases import release_create, release_step_resolve
from portal.services.uploads import upload_create
from tests.helpers import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults, pytest.mark.worker]

SETTLED = {ReleaseStatus.SUCCEEDED, ReleaseStatus.FAILED, ReleaseStatus.CANCELLED, ReleaseStatus.ATTENTION}
OPEN_STEPS = {StepStatus.PENDING, StepStatus.RUNNING, StepStatus.WAITING, StepStatus.UNKNOWN}


@pytest.fixture
def setup(broker, toucan_mapping, alice, sim):
    upload = upload_create(
        dataset=toucan_mapping.dataset,
        file=SimpleUploadedFile("sales.csv", b"region,amount\nnorth,1\n" * 50),
        actor=alice,
    )
    return toucan_mapping, upload, alice


def start(mapping, file, user, **params) -> Release:
    params = params or {"operations": ["preprocess_data_sources", "release"]}
    return release_create(
        mapping=mapping, upload=file, params=params_validate(mapping=mapping, data=params), actor=user
    )


def settled(releases: list[Release]) -> bool:
    return all(Release.objects.get(pk=r.pk).status in SETTLED for r in releases)


def step_of(release: Release, name: str) -> ReleaseStep:
    return ReleaseStep.objects.get(release=release, name=name)


def check(releases: list[Release], sim, *, timeout: float = 40) -> list[Release]:
    """Wait until every release settles, then assert the three invariants."""
    wait_for(lambda: settled(releases), timeout=timeout, message="every release to end or need attention")
    fresh = [Release.objects.get(pk=r.pk) for r in releases]
    for release in fresh:
        statuses = list(release.steps.order_by("position").values_list("status", flat=True))
        if release.status == ReleaseStatus.ATTENTION:
            # One step waits for a person; those after it have not started.
            assert statuses.count(StepStatus.ATTENTION) == 1, statuses
            after = statuses[statuses.index(StepStatus.ATTENTION) + 1 :]
            assert set(after) <= {StepStatus.PENDING}, statuses
            statuses = statuses[: statuses.index(StepStatus.ATTENTION)]
        else:
            assert StepStatus.ATTENTION not in statuses, statuses
        assert not OPEN_STEPS & set(statuses), f"release #{release.pk} {release.status} has open steps {statuses}"
        if release.status == ReleaseStatus.SUCCEEDED:
            assert set(statuses) == {StepStatus.SUCCEEDED}, statuses
    duplicates = {
        key: count
        for slug in ("toucan",)
        for key, count in sim.state(slug)["mutations"].items()
        if count > 1 and not key.startswith("-")
    }
    assert duplicates == {}, f"mutating calls sent twice: {duplicates}"
    return fresh


def test_sigkill_of_a_worker_child_during_a_mutating_call(setup, sim, fleet):
    mapping, upload, user = setup
    sim.fail("toucan", "hold", match="/operations", hang_seconds=1.5)
    release = start(mapping, upload, user, operations=["release"], upload=False)
    wait_for(lambda: step_of(release, "operation:release").status == StepStatus.RUNNING, message="the call")
    time.sleep(0.3)
    assert fleet.kill_children() > 0
    (release,) = check([release], sim)
    # Toucan cannot be asked about an operation whose id never came back: a person decides.
    assert release.status in (ReleaseStatus.ATTENTION, ReleaseStatus.SUCCEEDED)
    assert len(sim.state("toucan")["operations"]) <= 1


def test_sigkill_of_a_worker_child_during_a_wait(setup, sim, fleet):
    mapping, upload, user = setup
    sim.config("toucan", delay=1.0)
    release = start(mapping, upload, user)
    wait_for(lambda: step_of(release, "operation:preprocess_data_sources").status == StepStatus.WAITING)
    fleet.kill_children()
    (release,) = check([release], sim)
    assert release.status == ReleaseStatus.SUCCEEDED
    assert len(sim.state("toucan")["operations"]) == 2


def test_sigkill_of_a_whole_worker(setup, sim, fleet):
    mapping, upload, user = setup
    sim.config("toucan", delay=0.5)
    releases = [start(mapping, upload, user) for _ in range(6)]
    time.sleep(1.0)
    fleet.kill_worker()
    fresh = check(releases, sim, timeout=60)
    assert sum(r.status == ReleaseStatus.SUCCEEDED for r in fresh) >= 1


@pytest.mark.parametrize("how", ["restart-empty", "flushall"])
def test_redis_lost_mid_release(setup, sim, fleet, private_redis, how):
    mapping, upload, user = setup
    sim.config("toucan", delay=1.0)
    releases = [start(mapping, upload, user) for _ in range(4)]
    wait_for(lambda: all(step_of(r, "upload").status == StepStatus.SUCCEEDED for r in releases))
    if how == "flushall":
        private_redis.client().flushall()
    else:
        private_redis.kill()
        time.sleep(2)
        private_redis.start()
    fresh = check(releases, sim, timeout=60)
    assert {r.status for r in fresh} == {ReleaseStatus.SUCCEEDED}


def test_redis_down_at_trigger_time(setup, sim, fleet, private_redis, client):
    mapping, upload, user = setup
    client.force_login(user)
    private_redis.kill()
    url = reverse("portal:release-create", args=[mapping.pk])
    form = {"upload": upload.pk, "submission_token": "once", "params-operations": ["release"], "params-upload": "on"}
    began = time.monotonic()
    response = client.post(url, form)
    took = time.monotonic() - began
    assert response.status_code == 302, response.status_code
    again = client.post(url, form)  # the same submission, sent again
    assert again.status_code == 302 and again["Location"] == response["Location"]
    assert Release.objects.filter(mapping=mapping).count() == 1
    release = Release.objects.get(mapping=mapping)
    assert release.status == ReleaseStatus.QUEUED
    assert took < 2.0, f"the form answered in {took:.1f} s"
    # The API too: 201, the release queued, the same one for the same key.
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens.token_create(user=user, name='t')[1]}")
    body = {"mapping": mapping.pk, "upload": upload.pk, "params": {"operations": ["release"], "upload": False}}
    began = time.monotonic()
    answer = api.post("/api/v1/releases/", body, format="json", HTTP_IDEMPOTENCY_KEY="down-1")
    took = time.monotonic() - began
    assert answer.status_code == 201, answer.content
    assert answer.json()["status"] == ReleaseStatus.QUEUED and took < 2.0
    again = api.post("/api/v1/releases/", body, format="json", HTTP_IDEMPOTENCY_KEY="down-1")
    assert again.json()["id"] == answer.json()["id"]
    by_api = Release.objects.get(pk=answer.json()["id"])
    private_redis.start()
    back = time.monotonic()
    wait_for(lambda: Release.objects.get(pk=release.pk).status != ReleaseStatus.QUEUED, timeout=15)
    assert time.monotonic() - back <= 10
    released = check([release, by_api], sim)
    assert {r.status for r in released} == {ReleaseStatus.SUCCEEDED}


def test_an_answer_held_past_the_client_timeout(setup, sim, fleet):
    mapping, upload, user = setup
    sim.fail("toucan", "hold", match="/operations", hang_seconds=3)  # the HTTP timeout is 2 s
    release = start(mapping, upload, user, operations=["release"], upload=False)
    (release,) = check([release], sim)
    assert release.status == ReleaseStatus.ATTENTION
    assert len(sim.state("toucan")["operations"]) == 1, "the platform acted once"
    # A person checked: it happened. The release follows on without sending it again.
    release_step_resolve(release=release, step=step_of(release, "operation:release"), happened=True, actor=user)
    (release,) = check([release], sim)
    assert release.status == ReleaseStatus.SUCCEEDED
    assert len(sim.state("toucan")["operations"]) == 1


def test_an_upload_slower_than_the_lease_keeps_its_lease(setup, sim, fleet, alice):
    mapping, _, user = setup
    big = upload_create(
        dataset=mapping.dataset,
        file=SimpleUploadedFile("sales.csv", b"region,amount\nnorth,1\n" * 330_000),  # ~7 MB: 4 chunks
        actor=alice,
    )
    sim.fail("toucan", "hold", match="/data/sources", hang_seconds=1.6, times=4)  # 6.4 s > the 5 s lease
    release = start(mapping, big, user, operations=["release"])
    (release,) = check([release], sim, timeout=60)
    assert release.status == ReleaseStatus.SUCCEEDED
    upload_step = step_of(release, "upload")
    assert upload_step.attempts == 1, "the upload never ran twice"
    assert not release.events.filter(message__contains="interrupted").exists()


def test_an_unknown_status_is_bounded_by_the_deadline(setup, sim, fleet):
    mapping, upload, user = setup
    mapping.wait_deadlines = {"operation": 3}
    mapping.save()
    sim.config("toucan", delay=30)
    sim.fail("toucan", "unknown_status", match="/operations/", message="paused", times=1000)
    release = start(mapping, upload, user, operations=["release"], upload=False)
    (release,) = check([release], sim)
    assert release.status == ReleaseStatus.FAILED
    step = step_of(release, "operation:release")
    assert step.remote_status == "paused" and "deadline" in step.error


def test_a_retry_after_longer_than_half_the_visibility_timeout(setup, sim, fleet):
    mapping, upload, user = setup
    sim.fail("toucan", "429", match="/operations", retry_after=5)  # VT/2 is 3 s in this suite
    release = start(mapping, upload, user, operations=["release"], upload=False)
    (release,) = check([release], sim)
    assert release.status == ReleaseStatus.SUCCEEDED
    assert len(sim.state("toucan")["operations"]) == 1


def test_soak_with_random_faults_and_two_worker_kills(setup, sim, fleet, private_redis):
    mapping, upload, user = setup
    sim.config("toucan", delay=0.2)
    rng = random.Random(14)
    modes = ["500", "503", "429", "hold", "hang", "operation_failed"]
    for _ in range(30):
        mode = rng.choice(modes)
        sim.fail("toucan", mode, match="/operations", retry_after=1, hang_seconds=2.5, times=rng.randint(1, 3))
    releases = []
    for i in range(100):
        releases.append(start(mapping, upload, user, operations=["release"], upload=i % 5 == 0))
        if i in (30, 70):
            fleet.kill_worker()
        if i == 50:
            private_redis.client().flushall()
    fresh = check(releases, sim, timeout=150)
    counts = {s: sum(r.status == s for r in fresh) for s in SETTLED}
    assert counts[ReleaseStatus.SUCCEEDED] >= 50, counts
