"""The TONalytica issue's goal, clicked through in a browser: map a dataset onto a saved
query found with Browse… (its parameters filled from TONalytica), release it with a
parameter and "force a fresh run", watch the query job to its end live, see the preview
of the first rows, and download the result as CSV through the portal.

The connection is made with a factory: creating one through the UI is covered by the
Toucan click-through.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from portal.crypto import encrypt_json
from portal.models import Mapping, Release
from simulators.tonalytica import USER_KEY, TonalyticaSimulator
from tests.factories import ConnectionFactory, DatasetFactory

from .conftest import login

pytestmark = [pytest.mark.e2e, pytest.mark.worker]

SLUG = "tonalytica"


def test_a_team_member_runs_a_saved_query_and_downloads_its_result(page, alice, team, sim):
    # One second per job state: the job is seen queued, then started, before it finishes.
    sim.config(SLUG, delay=1.0)
    ConnectionFactory(
        team=team,
        platform=SLUG,
        name="TONalytica sim",
        base_url=sim.url(SLUG),
        credentials_encrypted=encrypt_json(TonalyticaSimulator.demo(sim.url(SLUG))["credentials"]),
    )
    dataset = DatasetFactory(team=team, name="Top wallets")
    login(page, "alice")

    # Map the dataset: search the saved queries by name with Browse…, pick one.
    page.goto(dataset.get_absolute_url())
    page.click("text=Map onto a platform")
    page.click("a.button:has-text('TONalytica sim')")
    page.fill("#id_target-query_name", "wallet")
    page.click("#id_target-query_name + button.browse-toggle")
    choices = page.locator(".browse-list li")
    expect(choices).to_have_count(2)
    expect(choices.filter(has_text="#2 Top wallets by balance")).to_contain_text("limit (number, default 10)")
    page.click(".browse-list button:has-text('#2 Top wallets by balance')")
    # The choice filled the id and the query's parameter declarations.
    expect(page.locator("#id_target-query_id")).to_have_value("2")
    expect(page.locator("#id_target-query_name")).to_have_value("Top wallets by balance")
    assert json.loads(page.input_value("#id_target-parameter_types")) == {"limit": "number"}
    assert json.loads(page.input_value("#id_target-parameter_defaults")) == {"limit": 10}
    # The filled fields announce their change: the live preview shows what will be sent.
    expect(page.locator("#target-preview")).to_contain_text("Query #2 Top wallets by balance, parameters limit")
    page.click("text=Save mapping")
    expect(page.locator("h1")).to_contain_text("Top wallets on TONalytica sim")
    assert Mapping.objects.get().target["parameter_types"] == {"limit": "number"}
    # The mapping page asks TONalytica for the query's declared parameters.
    expect(page.locator("#action-query_info")).to_contain_text("Number of wallets")

    # Release with a parameter. A wrong type first: refused under the field, nothing lost.
    page.click("a.button.primary:has-text('Release')")
    page.fill("#id_params-parameters", '{"limit": "twelve"}')
    page.check("#id_params-force_refresh")
    page.click("text=Start release")
    expect(page.locator(".field.has-error")).to_contain_text("parameter 'limit' must be a number, got 'twelve'")
    expect(page.locator("#id_params-parameters")).to_have_value('{"limit": "twelve"}')
    expect(page.locator("#id_params-force_refresh")).to_be_checked()
    assert not Release.objects.exists()
    page.fill("#id_params-parameters", '{"limit": 12}')
    page.click("text=Start release")
    page.wait_for_url(re.compile(r"/releases/\d+/$"))

    # Watch the query job to its end, on one page load.
    page.evaluate("window.__sameLoad = true")
    status = page.locator("#release-status")
    job_seen: set[str] = set()
    for _ in range(200):
        job = page.locator("[data-step-detail=refresh] .badge")
        if job.count():
            job_seen.add(job.first.inner_text())
        if status.get_attribute("data-status") in ("succeeded", "failed", "cancelled"):
            break
        page.wait_for_timeout(100)
    expect(status).to_have_attribute("data-status", "succeeded", timeout=20_000)
    assert page.evaluate("window.__sameLoad") is True, "the page updated without a reload"
    assert job_seen & {"queued", "started"} and "finished" in job_seen, f"job states seen live: {job_seen}"
    for step in ("refresh", "fetch"):
        expect(page.locator(f"tr[data-step={step}]")).to_have_attribute("data-status", "succeeded")

    # The preview: the column names and the 12 rows asked for.
    preview = page.locator("[data-step-detail=fetch]")
    expect(preview.locator("h4")).to_have_text("Result: all 12 rows")
    expect(preview.locator("thead th")).to_have_text(["rank", "address", "balance_ton"])
    expect(preview.locator("tbody tr")).to_have_count(12)
    expect(preview.locator("tbody tr").first.locator("td").first).to_have_text("1")

    # Download the CSV through the portal.
    with page.expect_download() as info:
        preview.locator("a.button:has-text('CSV')").click()
    download = info.value
    result_id = Release.objects.get().steps.get(name="fetch").output["query_result_id"]
    assert download.suggested_filename == f"Top_wallets_by_balance_{result_id}.csv"
    assert not download.url.startswith(sim.url(SLUG)), "served by the portal, not TONalytica"
    lines = Path(download.path()).read_text().splitlines()
    assert lines[0] == "rank,address,balance_ton" and len(lines) == 13
    assert [line.split(",")[0] for line in lines[1:]] == [str(n) for n in range(1, 13)]
    assert USER_KEY not in page.content()
