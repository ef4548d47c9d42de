"""The DataHQ issue's goal, clicked through in a browser: open a mapping's saved
parameters, edit its source spec, be stopped by a schedule under a minute, fix it, save a
new version, release it from the mapping and watch the revision's pipelines go through
their states live on one page load, with the stats at the end."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from connectors.datahq import parse_spec_text
from portal.crypto import encrypt_json
from portal.models import ParamsVersion, Release
from portal.services.mappings import params_validate, params_version_save
from simulators.datahq import DatahqSimulator, demo_spec
from tests.factories import ConnectionFactory, DatasetFactory, MappingFactory

from .conftest import login

pytestmark = [pytest.mark.e2e, pytest.mark.worker]


@pytest.fixture
def mapping(team, alice, sim):
    """A DataHQ connection to the simulator and a mapping of "Sales" with one saved spec."""
    credentials = DatahqSimulator.demo(sim.url("datahq"))["credentials"]
    connection = ConnectionFactory(
        team=team,
        platform="datahq",
        name="DataHQ sim",
        base_url=sim.url("datahq"),
        credentials_encrypted=encrypt_json(credentials),
    )
    mapping = MappingFactory(
        dataset=DatasetFactory(team=team, name="Sales"),
        connection=connection,
        name="Sales on DataHQ",
        target={"owner": "demo-team", "dataset": "sales"},
    )
    spec = demo_spec()
    spec["meta"]["dataset"] = "sales"
    params = params_validate(mapping=mapping, data={"spec": spec})
    params_version_save(mapping=mapping, params=params, note="first spec", actor=alice)
    return mapping


def test_edit_the_spec_release_it_and_watch_the_pipelines_live(page, alice, mapping, sim):
    sim.config("datahq", delay=1.5)  # 1.5 s per pipeline: slow enough to watch
    login(page, "alice")
    page.goto(mapping.get_absolute_url())
    expect(page.locator("#action-revisions")).to_contain_text("no revision of demo-team/sales yet")

    # The spec editor: add an Excel output and a schedule under a minute.
    page.click("text=Edit and see versions")
    editor = page.locator("#id_params-spec")
    spec = parse_spec_text(editor.input_value())
    assert spec["meta"]["dataset"] == "sales", "the editor starts from the saved version"
    spec["outputs"] = [{"kind": "zip"}, {"kind": "excel"}]
    spec["schedule"] = "every 30s"
    editor.fill(json.dumps(spec, indent=2))
    page.fill("#id_note", "Excel output, hourly")
    page.click("button:has-text('Save a new version')")
    error = page.locator(".field.has-error small.error")
    expect(error).to_contain_text("schedule 'every 30s' is under one minute")
    assert ParamsVersion.objects.filter(mapping=mapping).count() == 1, "nothing saved"

    # Fix it: what was typed is still there.
    typed = page.locator("#id_params-spec").input_value()
    assert '"kind": "excel"' in typed
    page.locator("#id_params-spec").fill(typed.replace("every 30s", "every 1h"))
    page.click("button:has-text('Save a new version')")
    expect(page.locator(".messages")).to_contain_text("Saved as version 2.")
    expect(page.locator("table.compact tbody tr").first).to_contain_text("Excel output, hourly")
    page.click("button:has-text('Compare')")
    expect(page.locator("pre.diff .add")).to_contain_text(['"kind": "excel"'])
    expect(page.locator("pre.diff")).to_contain_text('"schedule": "every 1h"')

    # Release from the mapping: the form starts from version 2.
    page.goto(mapping.get_absolute_url())
    page.click("a.button:has-text('Release')")
    assert parse_spec_text(page.locator("#id_params-spec").input_value())["schedule"] == "every 1h"
    page.click("text=Start release")
    page.wait_for_url(re.compile(r"/releases/\d+/$"))
    page.evaluate("window.__sameLoad = true")

    # Watch: the revision queued, then each pipeline running and succeeding, on one page load.
    status = page.locator("#release-status")
    step = page.locator("tr[data-step=upload]")
    pipelines = page.locator("tr[data-step-detail=upload] .subtable").first
    remote: set[str] = set()  # the revision's state, in the step's "Platform says"
    seen: set[str] = set()  # the pipelines' states in the sub-table
    rows_seen: set[str] = set()

    def look() -> None:
        # Cells by textContent, in one evaluation: htmx may be swapping the rows out meanwhile.
        said = step.locator("td").nth(3).evaluate("td => td.textContent.trim().split(/\\s/)[0]")
        remote.add(said)
        cells = "rows => rows.map(r => Array.from(r.cells, c => c.textContent.trim()))"
        for title, state, *_ in pipelines.locator("tbody tr").evaluate_all(cells):
            seen.add(state)
            rows_seen.add(title)

    for _ in range(300):
        look()
        if status.get_attribute("data-status") in ("succeeded", "failed"):
            break
        page.wait_for_timeout(100)
    expect(status).to_have_attribute("data-status", "succeeded", timeout=30_000)
    look()
    assert page.evaluate("window.__sameLoad") is True, "the page updated without a reload"
    # The revision was QUEUED first: seen live, or at least by the engine (the page polls each second).
    log = page.locator("#release-log").inner_text()
    assert "QUEUED" in remote or "QUEUED: 0 pipelines finished" in log, f"revision states seen: {remote}"
    assert "SUCCEEDED" in remote, f"revision states seen: {remote}"
    assert {"INPROGRESS", "SUCCEEDED"} <= seen, f"pipeline states seen live: {seen}"
    assert rows_seen == {"Creating CSV", "Creating JSON", "Creating Excel", "Creating ZIP"}
    expect(pipelines.locator("h4")).to_have_text("Pipelines of revision 1")
    expect(pipelines.locator("tbody tr")).to_have_count(4)
    expect(pipelines.locator(".badge.status-succeeded")).to_have_count(4)
    release = Release.objects.get()
    stats = release.steps.get().output["stats"]
    stats_table = page.locator("tr[data-step-detail=upload] .subtable").nth(1)
    expect(stats_table.locator("h4")).to_have_text("Stats")
    expect(stats_table.locator("tbody tr")).to_have_text(re.compile(rf"{stats['count_of_rows']:,}.*{stats['hash']}"))
    expect(step.locator("code")).to_have_text("u-demo/sales/1")

    # Back on the mapping, the spec store's revisions panel has it.
    page.click(f"a:has-text('{mapping.name}')")
    panel = page.locator("#action-revisions")
    expect(panel).to_contain_text("u-demo/sales/1")
    expect(panel.locator(".badge.status-succeeded")).to_have_count(2)  # latest and latest successful
    assert mapping.connection.credentials().token.get_secret_value() not in page.content()
