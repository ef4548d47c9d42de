"""Release sets across several simulated platforms, run by the real worker."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from portal.crypto import encrypt_json
from portal.exceptions import ApplicationError
from portal.models import Release, ReleaseSet
from portal.services.release_sets import release_set_cancel, release_set_create, release_set_plan, release_set_retry
from portal.services.uploads import upload_create
from simulators.app import simulator_class
from tests.factories import ConnectionFactory, DatasetFactory, MappingFactory
from tests.helpers import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def demo_mapping(slug, team, dataset, sim, index=0):
    demo = simulator_class(slug).demo(sim.url(slug))
    connection = ConnectionFactory(
        team=team,
        platform=slug,
        name=f"{slug} sim",
        base_url=sim.url(slug),
        credentials_encrypted=encrypt_json(demo["credentials"]),
    )
    spec = demo["mappings"][index]
    return MappingFactory(
        dataset=dataset,
        connection=connection,
        name=spec["name"],
        target=spec["target"],
        default_params=spec.get("default_params", {}),
    )


@pytest.fixture
def four_platforms(celery_worker_process, team, alice, sim):
    dataset = DatasetFactory(team=team, name="Sales")
    mappings = {slug: demo_mapping(slug, team, dataset, sim) for slug in ("toucan", "tailer", "tonalytica", "datahq")}
    upload = upload_create(
        dataset=dataset, file=SimpleUploadedFile("sales.csv", b"region,amount\nnorth,1\n"), actor=alice
    )
    return dataset, mappings, upload


def current(release_set: ReleaseSet) -> dict[str, Release]:
    return {r.platform: r for r in ReleaseSet.objects.get(pk=release_set.pk).current_releases()}


def settled(release_set):
    releases = ReleaseSet.objects.get(pk=release_set.pk).current_releases()
    return releases if all(r.is_terminal for r in releases) else None


def test_a_set_runs_each_platform_independently_and_retries_only_the_failed_cell(four_platforms, alice, sim):
    dataset, mappings, upload = four_platforms
    sim.fail("toucan", "operation_failed", message="Populate failed: basemap missing")
    release_set = release_set_create(dataset=dataset, mappings=list(mappings.values()), upload=upload, actor=alice)
    wait_for(lambda: settled(release_set), timeout=45, message="every cell to end")
    first = current(release_set)
    assert {p: r.status for p, r in first.items()} == {
        "toucan": "failed",
        "tailer": "succeeded",
        "tonalytica": "succeeded",
        "datahq": "succeeded",
    }
    assert ReleaseSet.status_of(list(first.values())) == "partial"
    toucan = first["toucan"]
    failed_step = toucan.steps.get(status="failed")
    assert failed_step.error == "Populate failed: basemap missing"
    # The file was stored once; the releases that send it point at that one upload.
    assert {p: r.upload_id for p, r in first.items()} == {
        "toucan": upload.pk,
        "tailer": None,
        "tonalytica": None,
        "datahq": None,
    }

    retries = release_set_retry(release_set=release_set, actor=alice)
    assert [r.platform for r in retries] == ["toucan"], "only the failed cell runs again"
    wait_for(lambda: settled(release_set), timeout=45, message="the retry to end")
    second = current(release_set)
    assert second["toucan"].status == "succeeded" and second["toucan"].retry_of_id == toucan.pk
    carried = second["toucan"].steps.get(name="upload")
    assert carried.message == f"Done in release #{toucan.pk}", "the upload is not sent again"
    assert second["tailer"].pk == first["tailer"].pk
    assert Release.objects.get(pk=toucan.pk).status == "failed", "the first attempt keeps its history"
    with pytest.raises(ApplicationError, match="nothing to retry"):
        release_set_retry(release_set=release_set, actor=alice)


def test_cancel_stops_the_remote_job_where_the_platform_can(four_platforms, alice, sim):
    dataset, mappings, upload = four_platforms
    sim.config("tonalytica", delay=5)
    sim.config("tailer", delay=5)
    release_set = release_set_create(
        dataset=dataset, mappings=[mappings["tonalytica"], mappings["tailer"]], upload=upload, actor=alice
    )
    wait_for(
        lambda: all(r.steps.filter(status="waiting").exists() for r in current(release_set).values()),
        timeout=20,
        message="both jobs to be running remotely",
    )
    assert release_set_cancel(release_set=release_set, actor=alice) == 2
    wait_for(lambda: settled(release_set), timeout=20, message="the cancel to land")
    cells = current(release_set)
    assert {r.status for r in cells.values()} == {"cancelled"}
    tonalytica_step = cells["tonalytica"].steps.get(name="refresh")
    assert tonalytica_step.status == "cancelled" and "no longer followed" not in tonalytica_step.error
    jobs = sim.state("tonalytica")["jobs"]
    assert any(
        job.get("status") == 4 and "cancelled" in (job.get("error") or "").lower()
        for job in (jobs.values() if isinstance(jobs, dict) else jobs)
    )
    tailer_step = cells["tailer"].steps.get(name="launch")
    assert "no longer followed" in tailer_step.error, "Tailer has no cancel API: the reason is shown"


def test_a_set_is_refused_whole_naming_each_problem(four_platforms, alice, team, sim):
    dataset, mappings, upload = four_platforms
    mappings["tailer"].state = "disabled"
    mappings["tailer"].save()
    archive = upload_create(dataset=dataset, file=SimpleUploadedFile("bundle.zip", b"PK\x03\x04"), actor=alice)
    with pytest.raises(ApplicationError) as info:
        release_set_plan(dataset=dataset, mappings=[mappings["toucan"], mappings["tailer"]], upload=archive)
    assert "Iowa liquor PDA (DEV): The mapping" in info.value.message and "is disabled" in info.value.message
    assert "not .zip" in info.value.message
    assert not Release.objects.exists()
