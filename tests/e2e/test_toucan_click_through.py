"""The walking skeleton's goal, clicked through in a browser: log in, add a Toucan
connection, map a dataset, drag a CSV onto the upload page, release, watch every step
go to succeeded live without reloading, and find the release in the job history."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from portal.models import Release, Upload

from .conftest import UPPY_DROP, drop_file, login

pytestmark = [pytest.mark.e2e, pytest.mark.worker]

CSV = "region,amount\nnorth,10\nsouth,20\n"


def test_a_data_team_member_releases_a_csv_to_toucan(page, alice, sim):
    login(page, "alice")

    # Add a Toucan connection; its test runs in the worker and shows up live.
    page.click("text=Connections")
    page.click("text=Add a connection")
    page.click("a.button:has-text('Toucan Toco')")
    page.fill("#id_name", "Toucan staging")
    page.fill("#id_base_url", sim.url("toucan"))
    page.fill("#id_cred-login", "contributor@demo.example")
    page.fill("#id_cred-password", "toucan-demo-password")
    page.click("text=Save and test")
    expect(page.locator("[data-test-result=ok]")).to_contain_text("Logged in to Toucan", timeout=20_000)
    assert "toucan-demo-password" not in page.content()

    # A dataset, mapped onto a data source of a small app.
    page.click("nav >> text=Datasets")
    page.click("text=Add a dataset")
    page.fill("#id_name", "Sales")
    page.click("button:has-text('Save')")
    page.click("text=Map onto a platform")
    page.click("a.button:has-text('Toucan staging')")
    page.fill("#id_target-small_app", "demo-app")
    page.fill("#id_target-data_source", "sales.csv")
    page.select_option("#id_target-stage", "staging")
    page.click("text=Save mapping")
    expect(page.locator("h1")).to_contain_text("Sales on Toucan staging")

    # Drag a CSV onto the upload page; the progress bar fills.
    page.click("a:has-text('Sales')")
    page.click("text=Upload a file")
    # An empty file is refused in the page, before anything is sent.
    drop_file(page, UPPY_DROP, "empty.csv", "")
    expect(page.locator("#tus-error")).to_contain_text("The file is empty")
    drop_file(page, UPPY_DROP, "sales-2026-11.csv", CSV)
    expect(page.locator("#tus-done")).to_contain_text("Uploaded 1 file")
    expect(page.locator("#tus-files tr[data-name='sales-2026-11.csv'] progress")).to_have_attribute("value", "100")

    # Release it and watch the steps live, on one page load.
    page.click("text=Back to the dataset")
    page.click("a.button.small:has-text('Release')")
    upload = Upload.objects.get(original_name="sales-2026-11.csv")
    page.select_option("#id_upload", str(upload.pk))
    page.click("text=Start release")
    page.wait_for_url(re.compile(r"/releases/\d+/$"))
    page.evaluate("window.__sameLoad = true")
    status = page.locator("#release-status")
    seen = set()
    for _ in range(200):
        seen |= set(page.locator("tr[data-step]").evaluate_all("rows => rows.map(r => r.dataset.status)"))
        if status.get_attribute("data-status") in ("succeeded", "failed"):
            break
        page.wait_for_timeout(100)
    expect(status).to_have_attribute("data-status", "succeeded", timeout=30_000)
    assert page.evaluate("window.__sameLoad") is True, "the page updated without a reload"
    assert {"pending", "succeeded"} <= seen and seen & {"running", "waiting"}, f"steps seen live: {seen}"
    steps = page.locator("tr[data-step]")
    expect(steps).to_have_count(6)
    for i in range(6):
        expect(steps.nth(i)).to_have_attribute("data-status", "succeeded")
    expect(page.locator("#release-log")).to_contain_text("Release succeeded")

    # The job history has it, and links back to it.
    release = Release.objects.get()
    page.click("nav >> text=Job history")
    page.select_option("#id_platform", "toucan")
    page.select_option("#id_status", "succeeded")
    page.click("button:has-text('Filter')")
    row = page.locator(f"a:has-text('#{release.pk}')")
    expect(row).to_be_visible()
    row.click()
    expect(page.locator("h1")).to_have_text(f"Release #{release.pk}")


def test_archiving_asks_for_confirmation_and_can_be_restored(page, alice, toucan_mapping):
    login(page, "alice")
    page.goto(toucan_mapping.get_absolute_url())
    page.dismiss_dialogs = True
    page.click("button:has-text('Archive')")
    assert page.dialogs and page.dialogs[0].startswith("Archive")
    toucan_mapping.refresh_from_db()
    assert toucan_mapping.state == "enabled", "dismissing the dialog changes nothing"

    page.dismiss_dialogs = False
    page.click("button:has-text('Archive')")
    expect(page.locator(".messages")).to_contain_text("is now archived")
    page.goto(toucan_mapping.dataset.get_absolute_url())
    expect(page.locator("main")).to_contain_text("Not mapped onto any platform yet")  # archived: hidden by default
    page.click("text=Show archived")
    page.click(f"text={toucan_mapping.name}")
    page.click("button:has-text('Restore')")
    expect(page.locator(".messages")).to_contain_text("is now enabled")
