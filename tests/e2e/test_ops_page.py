"""The operations page in a browser: the real worker's heartbeat, a step going overdue shown live, its link."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from portal.models import ReleaseStep, StepStatus
from tests.factories import ReleaseFactory

from .conftest import login

pytestmark = [pytest.mark.e2e, pytest.mark.worker]


def test_the_operations_page_follows_the_portal_live(page, alice, toucan_mapping, tmp_path):
    login(page, "alice")
    page.click("nav >> text=Operations")
    page.wait_for_url("**/ops/")
    expect(page.locator("#ops-workers")).to_contain_text("alive")  # the test worker process
    expect(page.locator("#ops-overdue .stat")).to_have_text("0")
    page.evaluate("window.__sameLoad = true")

    # Its task is queued (so no sweep from another test's leftovers moves it): only its check is late.
    release = ReleaseFactory(
        mapping=toucan_mapping,
        created_by=alice,
        status="running",
        started_at=timezone.now(),
        dispatch_due_at=timezone.now() + timedelta(hours=1),
    )
    ReleaseStep.objects.create(
        release=release,
        position=0,
        name="operation:release",
        label="Release",
        status=StepStatus.WAITING,
        next_check_at=timezone.now() - timedelta(hours=1),
    )
    expect(page.locator("#ops-overdue .stat")).to_have_text("1", timeout=15_000)
    expect(page.locator("#ops-overdue")).to_contain_text(f"release #{release.pk}")
    assert page.evaluate("window.__sameLoad") is True  # htmx swapped the part, no reload
    page.screenshot(path=str(tmp_path / "ops.png"), full_page=True)

    page.click("#ops-overdue .stat a")
    page.wait_for_url("**/ops/releases/overdue/")
    expect(page.locator("table")).to_contain_text(f"#{release.pk}")
