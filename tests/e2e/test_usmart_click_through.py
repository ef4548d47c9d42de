"""The uSmart issue's goal, clicked through in a browser: map a dataset by picking the
uSmart dataset, its file and its output pipelines with Browse (no GUID typed), add an
output pipeline from the mapping page, drag a CSV onto the upload page, release it and
watch the upload, the new revision and every pipeline go to succeeded live."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from portal.crypto import encrypt_json
from portal.models import Release, Upload
from simulators.usmart import API_PIPELINE, CSV_PIPELINE, DEMO_DATASET, READINGS_FILE, UsmartSimulator
from tests.factories import ConnectionFactory, DatasetFactory

from .conftest import UPPY_DROP, drop_file, login

pytestmark = [pytest.mark.e2e, pytest.mark.worker]

CSV = "sensor,at,value\ns1,2026-11-01T00:00:00Z,12.5\ns2,2026-11-01T00:00:00Z,9.75\n"


def browse(page, field: str, choice: str) -> None:
    """Click the Browse… button next to a target field, then the choice labelled ``choice``."""
    page.click(f"#id_target-{field} + button.browse-toggle")
    page.locator(f"#id_target-{field} + button + div .browse-list button", has_text=choice).click()


def test_a_team_member_maps_by_browsing_uploads_and_watches_the_pipelines(page, alice, team, sim):
    base = sim.url("usmart")
    ConnectionFactory(
        team=team,
        platform="usmart",
        name="uSmart sim",
        base_url=base,
        credentials_encrypted=encrypt_json(UsmartSimulator.demo(base)["credentials"]),
    )
    dataset = DatasetFactory(team=team, name="Air quality")
    login(page, "alice")

    # Map the dataset: the dataset, its file and its pipelines are picked from uSmart's lists.
    page.click("nav >> text=Datasets")
    page.click("a:has-text('Air quality')")
    page.click("text=Map onto a platform")
    page.click("a.button:has-text('uSmart sim')")
    browse(page, "dataset_guid", "Air quality sensors")
    expect(page.locator("#id_target-dataset_guid")).to_have_value(DEMO_DATASET)
    expect(page.locator("#id_target-dataset_title")).to_have_value("Air quality sensors")
    browse(page, "file_guid", "readings-2025.csv")
    expect(page.locator("#id_target-file_guid")).to_have_value(READINGS_FILE)
    expect(page.locator("#id_target-file_name")).to_have_value("readings-2025.csv")
    browse(page, "pipeline_guids", "CSV download")
    browse(page, "pipeline_guids", "Data API")
    expect(page.locator("#id_target-pipeline_guids")).to_have_value(f"{CSV_PIPELINE}\n{API_PIPELINE}")
    expect(page.locator("#id_target-pipeline_names")).to_have_value(
        f"{CSV_PIPELINE}: CSV download\n{API_PIPELINE}: Data API"
    )
    label = "Air quality sensors: new revision of readings-2025.csv, then CSV download, Data API"
    expect(page.locator("#target-preview")).to_contain_text(label)
    page.click("text=Save mapping")
    expect(page.locator("h1")).to_contain_text("Air quality on uSmart sim")
    expect(page.locator(".facts")).to_contain_text(label)

    # The mapping page shows the dataset as uSmart has it, and adds an output pipeline.
    panel = page.locator("#action-dataset-out")
    expect(panel).to_contain_text("replaced by each release")
    expect(panel.locator(".badge.status-processed")).to_have_count(2)
    page.select_option("#id_a-create_pipeline-pipeline_id", "geojson")
    page.click("#action-create_pipeline button[type=submit]")
    expect(page.locator("#action-create_pipeline-out")).to_contain_text(
        "✓ Add an output pipeline: Added output pipeline GeoJSON download"
    )
    kinds = [p["pipelineId"] for p in sim.state("usmart")["datasets"][DEMO_DATASET]["resourceContainers"]]
    assert kinds == ["csv", "api", "geojson"]

    # A new revision of the file, dragged onto the upload page.
    page.click(".crumbs a")
    page.click("text=Upload a file")
    drop_file(page, UPPY_DROP, "readings-2026.csv", CSV)
    expect(page.locator("#tus-files tr[data-name='readings-2026.csv'] .status")).to_have_text("stored")

    # Release it and watch every step, pipelines included, on one page load.
    page.click("text=Back to the dataset")
    page.click("a.button.small:has-text('Release')")
    upload = Upload.objects.get(original_name="readings-2026.csv")
    page.select_option("#id_upload", str(upload.pk))
    page.click("text=Start release")
    page.wait_for_url(re.compile(r"/releases/\d+/$"))
    page.evaluate("window.__sameLoad = true")
    status = page.locator("#release-status")
    seen: dict[str, set[str]] = {}
    for _ in range(300):
        rows = page.locator("tr[data-step]").evaluate_all("rows => rows.map(r => [r.dataset.step, r.dataset.status])")
        for name, state in rows:
            seen.setdefault(name, set()).add(state)
        if status.get_attribute("data-status") in ("succeeded", "failed"):
            break
        page.wait_for_timeout(100)
    expect(status).to_have_attribute("data-status", "succeeded", timeout=30_000)
    assert page.evaluate("window.__sameLoad") is True, "the page updated without a reload"
    pipeline_steps = [f"pipeline:{CSV_PIPELINE}", f"pipeline:{API_PIPELINE}"]
    assert any(seen[s] & {"waiting", "running"} for s in pipeline_steps), f"pipelines seen live: {seen}"
    steps = page.locator("tr[data-step]")
    expect(steps).to_have_count(4)
    for i in range(4):
        expect(steps.nth(i)).to_have_attribute("data-status", "succeeded")
    expect(page.locator("tr[data-step='revision'] + tr.step-detail")).to_contain_text("new revision")
    for step, name in zip(pipeline_steps, ("CSV download", "Data API"), strict=False):
        detail = page.locator(f"tr[data-step-detail='{step}']")
        expect(detail).to_contain_text(name)
        expect(detail.locator(".badge.status-processed")).to_have_count(1)
    expect(page.locator("#release-log")).to_contain_text("Release succeeded")
    assert "signature=" not in page.content()

    # uSmart has the new revision, processed by both pipelines.
    state = sim.state("usmart")["datasets"][DEMO_DATASET]
    readings = next(f for f in state["files"] if f["fileGUID"] == READINGS_FILE)
    assert (readings["revision"], readings["fileSize"]) == (2, len(CSV))
    runs = {p["resourceContainerGUID"]: (p["status"], p["runs"]) for p in state["resourceContainers"]}
    assert runs[CSV_PIPELINE] == runs[API_PIPELINE] == ("processed", 1)
    assert Release.objects.get().upload_id == upload.pk and dataset.pk == upload.dataset_id
