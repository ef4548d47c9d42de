"""The release set matrix in a browser: preview, confirm, watch cells live, retry the failed one."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from playwright.sync_api import expect

from portal.models import ReleaseSet
from portal.services.uploads import upload_create
from tests.integration.test_release_sets import demo_mapping

from .conftest import login

pytestmark = [pytest.mark.e2e, pytest.mark.worker]


def test_a_dataset_goes_to_three_platforms_and_the_failed_cell_is_retried(page, alice, team, sim):
    from tests.factories import DatasetFactory

    dataset = DatasetFactory(team=team, name="Sales")
    for slug in ("toucan", "tailer", "datahq"):
        demo_mapping(slug, team, dataset, sim)
    upload_create(dataset=dataset, file=SimpleUploadedFile("sales.csv", b"region,amount\nnorth,1\n"), actor=alice)
    sim.fail("toucan", "operation_failed", message="Populate failed: basemap missing")

    login(page, "alice")
    page.goto(dataset.get_absolute_url())
    page.click("text=Release to several platforms")
    page.click("button:has-text('Preview')")
    preview = page.locator("#set-preview")
    expect(preview.locator("tbody tr")).to_have_count(3)
    expect(preview).to_contain_text("sales.csv")
    expect(preview).to_contain_text("Upload sales.csv")
    page.click("button:has-text('Confirm and start 3 releases')")
    page.wait_for_url("**/sets/*/")
    page.evaluate("window.__sameLoad = true")

    matrix = page.locator("#set-matrix")
    seen: set[str] = set()
    for _ in range(300):
        seen |= set(page.locator("td.cell").evaluate_all("cells => cells.map(c => c.dataset.status)"))
        if matrix.get_attribute("data-status") != "running":
            break
        page.wait_for_timeout(100)
    expect(matrix).to_have_attribute("data-status", "partial", timeout=40_000)
    assert page.evaluate("window.__sameLoad") is True, "the matrix updated without a reload"
    assert seen & {"running", "waiting", "pending"}, f"cells seen live: {seen}"
    toucan_row = page.locator("tr[data-mapping]", has_text="Toucan")
    expect(toucan_row).to_have_attribute("data-status", "failed")
    expect(toucan_row).to_contain_text("Populate failed: basemap missing")
    for name in ("Iowa liquor PDA (DEV)", "Demo dataset on DataHQ"):
        expect(page.locator("tr[data-mapping]", has_text=name)).to_have_attribute("data-status", "succeeded")

    page.click("button:has-text('Retry failed')")
    expect(page.locator(".messages")).to_contain_text("only the failed steps run again")
    expect(page.locator("#set-matrix")).to_have_attribute("data-status", "succeeded", timeout=40_000)
    expect(page.locator("tr[data-mapping]", has_text="Toucan")).to_contain_text("attempt 2")
    release_set = ReleaseSet.objects.get()
    assert release_set.releases.count() == 4, "three first attempts and one retry"
