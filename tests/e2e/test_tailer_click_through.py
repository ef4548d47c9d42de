"""Tailer's goal, clicked through in a browser against the live server, a real worker and
the Tailer simulator: connect with an API key and refresh token, map a dataset onto a
table-to-table data operation (the page shows the ``_DEV``-suffixed id that will be sent
and refuses the id typed with it), launch it and watch the run to its end live, see the
last runs refresh by themselves, flip the operation's toggles on Tailer (local and remote
states side by side), reset a workflow, and get warned about a pasted JWT about to lapse.

``TAILER_SCREENSHOTS=/tmp/tailer`` saves a screenshot of each page on the way."""

from __future__ import annotations

import datetime as dt
import os
import re

import httpx
import pytest
from playwright.sync_api import expect

from connectors.base import StepContext, StepSpec
from connectors.tailer import TailerConnector, TailerCredentials, TailerParams, TailerTarget
from portal.crypto import encrypt_json
from portal.models import Mapping, Release
from simulators.tailer import TailerSimulator
from tests.factories import ConnectionFactory, DatasetFactory, MappingFactory

from .conftest import login

pytestmark = [pytest.mark.e2e, pytest.mark.worker]

API_KEY, REFRESH_TOKEN = "tailer-demo-api-key", "tailer-demo-refresh-token"
CONFIG_ID = "000099_iowa_liquor_prepare_pda"
SENT_ID = f"{CONFIG_ID}_DEV"
WORKFLOW = {
    "account": "000099",
    "environment": "DEV",
    "configuration_type": "workflow",
    "configuration_id": "000099-iowa-liquor-load-pda",
}
SHOTS = os.environ.get("TAILER_SCREENSHOTS", "")


@pytest.fixture
def tailer_connection(team, sim):
    """A connection in the refresh-token mode, made without the UI."""
    base = sim.url("tailer")
    credentials = encrypt_json(TailerSimulator.demo(base)["credentials"])
    return ConnectionFactory(
        team=team, platform="tailer", name="Tailer sim", base_url=base, credentials_encrypted=credentials
    )


def shot(page, name: str) -> None:
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def sim_flags(sim, config_id: str) -> tuple[bool, bool]:
    """(activated, archived) of a configuration on the simulated Tailer."""
    configs = sim.state("tailer")["configurations"]
    (config,) = [c for key, c in configs.items() if key.endswith(f"/{config_id}")]
    return config["activated"], config["archived"]


def launch_elsewhere(sim) -> str:
    """Launch the operation on Tailer without the portal (as Tailer Studio would); its run id."""
    credentials = TailerCredentials(**TailerSimulator.demo(sim.url("tailer"))["credentials"])
    connector = TailerConnector(credentials, base_url=sim.url("tailer"), timeout=5)
    target = TailerTarget(
        account="000099", environment="DEV", configuration_type="table-to-table", configuration_id=CONFIG_ID
    )
    context = StepContext(target=target, params=TailerParams(), release_key="studio")
    return connector.run_step(StepSpec("launch", "Launch"), context).remote_ref


def expect_states(page, local: str, remote: str) -> None:
    """The mapping page's side-by-side table: the portal's state and Tailer's."""
    row = page.locator("table.states tbody tr")
    expect(row.locator("td").nth(0)).to_have_text(local)
    expect(row.locator("td").nth(1)).to_have_attribute("data-remote-state", remote)
    expect(row.locator("td").nth(1)).to_contain_text(remote)


def test_a_team_member_launches_a_tailer_operation_and_flips_its_toggles(page, alice, sim):
    # Remote runs stay RUNNING for two delays: long enough to be seen live on the page.
    sim.config("tailer", delay=1.5)
    login(page, "alice")

    # 1. A Tailer connection in the API key + refresh token mode; its test shows up live.
    page.click("nav >> text=Connections")
    page.click("text=Add a connection")
    page.click("a.button:has-text('Tailer')")
    page.fill("#id_name", "Tailer DEV")
    page.fill("#id_base_url", sim.url("tailer"))
    page.select_option("#id_cred-auth_mode", "refresh_token")
    page.fill("#id_cred-api_key", API_KEY)
    page.fill("#id_cred-refresh_token", REFRESH_TOKEN)
    page.fill("#id_cred-token_url", f"{sim.url('tailer')}/token")
    page.fill("#id_cred-test_job", "000099/DEV/table-to-table/000099_iowa_liquor_prepare_pda")
    shot(page, "01-connection-form")
    page.click("text=Save and test")
    expect(page.locator("[data-test-result=ok]")).to_contain_text(
        "Tailer accepted the token of demo@tailer.example", timeout=20_000
    )
    expect(page.locator(".msg-warning")).to_have_count(0)  # fetched tokens renew themselves: nothing to warn about
    content = page.content()
    assert API_KEY not in content and REFRESH_TOKEN not in content
    shot(page, "02-connection-detail")

    # 2. A dataset mapped onto the table-to-table operation. The id typed with its _DEV
    # suffix is refused under its field, before anything is saved or sent; the preview of
    # the re-rendered form says the same. Typed without it, the page shows the id sent.
    page.click("nav >> text=Datasets")
    page.click("text=Add a dataset")
    page.fill("#id_name", "Iowa liquor")
    page.click("button:has-text('Save')")
    page.click("text=Map onto a platform")
    page.click("a.button:has-text('Tailer DEV')")
    page.fill("#id_name", "Iowa liquor PDA (DEV)")
    page.fill("#id_target-account", "000099")
    page.fill("#id_target-environment", "DEV")
    page.select_option("#id_target-configuration_type", "table-to-table")
    page.fill("#id_target-configuration_id", SENT_ID)
    page.click("text=Save mapping")
    suffix_error = f"without its '_DEV' suffix ('{CONFIG_ID}'): the connector adds it"
    expect(page.locator(".field.has-error")).to_contain_text(suffix_error)
    expect(page.locator(".field.has-error label")).to_contain_text("Configuration id")
    expect(page.locator("#target-preview .error")).to_contain_text(
        f"Configuration id: enter the table-to-table configuration id {suffix_error}"
    )
    shot(page, "03-mapping-form-suffix-error")
    assert not Mapping.objects.exists()
    page.fill("#id_target-configuration_id", CONFIG_ID)
    page.click("text=Save mapping")
    expect(page.locator("h1")).to_contain_text("Iowa liquor PDA (DEV)")
    expect(page.locator(".facts code").first).to_have_text(f"000099 / DEV / table-to-table / {SENT_ID}")
    mapping = Mapping.objects.get(name="Iowa liquor PDA (DEV)")
    assert mapping.target["configuration_id"] == CONFIG_ID, "stored as typed; the suffix is added when sent"
    # The edit form's preview shows the id that will be sent.
    page.click("a.button:has-text('Edit')")
    expect(page.locator("#target-preview [data-preview]")).to_have_text(f"000099 / DEV / table-to-table / {SENT_ID}")
    shot(page, "04-mapping-edit-preview")
    page.click("text=Cancel")

    # 3. Release it from the form: a date in the wrong format is refused before anything is
    # sent, then the launch's run is followed live to its end on one page load.
    page.click("a.button.primary:has-text('Release')")
    page.fill("#id_params-execution_date", "15/01/2026")
    page.click("text=Start release")
    expect(page.locator(".field.has-error")).to_contain_text("YYYY-MM-DD")
    assert not [r for r in sim.state("tailer")["requests"] if r["action"] == "launch_job"], "nothing launched"
    page.fill("#id_params-execution_date", "2026-01-15")
    shot(page, "05-release-form")
    page.click("text=Start release")
    page.wait_for_url(re.compile(r"/releases/\d+/$"))
    page.evaluate("window.__sameLoad = true")
    status = page.locator("#release-status")
    step = page.locator("tr[data-step=launch]")
    run_table = page.locator("tr[data-step-detail=launch] table")
    seen, remote_seen = set(), set()
    for _ in range(300):
        seen.add(step.get_attribute("data-status"))
        if run_table.count():
            remote_seen.add(run_table.locator("tbody td").nth(1).inner_text())
            if remote_seen == {"RUNNING"}:
                shot(page, "06-release-running")
        if status.get_attribute("data-status") in ("succeeded", "failed"):
            break
        page.wait_for_timeout(100)
    expect(status).to_have_attribute("data-status", "succeeded", timeout=30_000)
    assert page.evaluate("window.__sameLoad") is True, "the page updated without a reload"
    assert "waiting" in seen and "RUNNING" in remote_seen, f"steps seen live: {seen}, remote statuses: {remote_seen}"
    release = Release.objects.get()
    run_id = release.steps.get().remote_ref
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f-]{36}", run_id)
    expect(step.locator("code")).to_have_text(run_id)
    # The run under the step: its id, the platform's status, start and duration.
    expect(run_table.locator("thead")).to_have_text(re.compile(r"Run id\s*Status\s*Started\s*Duration\s*Last update"))
    cells = run_table.locator("tbody tr").first.locator("td")
    expect(cells.nth(0)).to_have_text(run_id)
    expect(cells.nth(1)).to_have_text("SUCCESS")
    today = dt.datetime.now(dt.UTC).date().isoformat()
    expect(cells.nth(2)).to_contain_text(today)
    expect(cells.nth(3)).to_have_text(re.compile(r"^0:00:0\d"))
    expect(page.locator("#release-log")).to_contain_text("Release succeeded")
    launched = [r for r in sim.state("tailer")["requests"] if r["action"] == "launch_job"]
    assert (
        len(launched) == 1
        and launched[0]["configuration_id"] == SENT_ID
        and launched[0]["execution_date"] == "2026-01-15"
    )
    shot(page, "07-release-done")

    # 4. The mapping page lists the operation's last runs, newest first, with the documented
    # filters; the list refreshes by itself every 10 s (the page's clock is driven here).
    page.clock.install()
    page.click(f".crumbs >> text={mapping.name}")
    runs = page.locator("#action-last_runs-out")
    first_row = runs.locator("tbody tr").first.locator("td")
    expect(first_row.nth(0)).to_have_text(run_id)
    expect(runs.locator("tbody tr")).to_have_count(4)  # this run and the three of the docs' history
    page.fill("#id_a-last_runs-execution_date", "2020-12-30")
    page.locator("#id_a-last_runs-execution_date").press("Enter")
    expect(runs.locator("tbody tr")).to_have_count(2)
    expect(runs).not_to_contain_text(run_id)
    page.fill("#id_a-last_runs-execution_date", "")
    page.select_option("#id_a-last_runs-status", "SUCCESS")
    page.fill("#id_a-last_runs-limit", "1")
    page.locator("#id_a-last_runs-limit").press("Enter")
    expect(runs.locator("tbody tr")).to_have_count(1)
    expect(first_row.nth(0)).to_have_text(run_id)
    shot(page, "08-mapping-last-runs")
    page.select_option("#id_a-last_runs-status", "")
    page.fill("#id_a-last_runs-limit", "10")
    page.locator("#id_a-last_runs-limit").press("Enter")
    expect(runs.locator("tbody tr")).to_have_count(4)
    # Someone launches the operation from Tailer Studio: the list shows it without a reload.
    other_run = launch_elsewhere(sim)
    page.evaluate("window.__sameLoad = true")
    page.clock.fast_forward(10_500)
    expect(first_row.nth(0)).to_have_text(other_run)
    expect(first_row.nth(1)).to_have_text(re.compile("RUNNING|SUCCESS"))
    expect(runs.locator("tbody tr")).to_have_count(5)
    assert page.evaluate("window.__sameLoad") is True

    # 5. Disable, enable, archive (after a confirmation) and restore: each on Tailer first,
    # with the portal's and Tailer's states side by side.
    expect_states(page, "enabled", "")
    page.click(".toggles button:has-text('Disable')")
    expect(page.locator(".messages")).to_contain_text("is now disabled")
    assert len(page.dialogs) == 1 and page.dialogs[0].startswith("Disable"), "disabling asks first"
    page.dialogs.clear()
    expect_states(page, "disabled", "disabled")
    assert sim_flags(sim, SENT_ID) == (False, False)
    expect(page.locator("a.button:has-text('Release')")).to_have_count(0)
    shot(page, "09-mapping-disabled")
    page.click(".toggles button:has-text('Enable')")
    expect(page.locator(".messages")).to_contain_text("is now enabled")
    expect_states(page, "enabled", "enabled")
    assert sim_flags(sim, SENT_ID) == (True, False)

    page.dismiss_dialogs = True
    page.click(".toggles button:has-text('Archive')")
    assert len(page.dialogs) == 1 and page.dialogs[0].startswith("Archive")
    expect_states(page, "enabled", "enabled")
    assert sim_flags(sim, SENT_ID) == (True, False), "a dismissed confirmation sends nothing"
    page.dismiss_dialogs = False
    page.click(".toggles button:has-text('Archive')")
    expect(page.locator(".messages")).to_contain_text("is now archived")
    assert len(page.dialogs) == 2
    expect_states(page, "archived", "archived")
    assert sim_flags(sim, SENT_ID) == (False, True)
    shot(page, "10-mapping-archived")
    page.click(".toggles button:has-text('Restore')")
    expect(page.locator(".messages")).to_contain_text("is now enabled")
    expect_states(page, "enabled", "enabled")
    assert sim_flags(sim, SENT_ID) == (True, False)


def test_a_stuck_workflow_is_reset_after_a_confirmation_that_explains_why(page, alice, sim, team, tailer_connection):
    dataset = DatasetFactory(team=team, name="Iowa liquor")
    workflow = MappingFactory(dataset=dataset, connection=tailer_connection, name="Load workflow", target=WORKFLOW)
    login(page, "alice")
    page.goto(workflow.get_absolute_url())
    panel = page.locator("#action-reset_workflow")
    expect(panel.locator("h2")).to_have_text("Reset workflow")
    expect(panel.locator(".help")).to_contain_text("JA(0), JB(0), JC(1)")
    # Workflows are not launched through the API: no run to launch, but their last runs show.
    expect(page.locator("#action-last_runs-out")).to_contain_text("Nothing to show")
    shot(page, "11-workflow")

    page.dismiss_dialogs = True
    panel.locator("button:has-text('Reset workflow')").click()
    assert len(page.dialogs) == 1 and "JA(0), JB(0), JC(1)" in page.dialogs[0] and "JT" in page.dialogs[0]
    expect(panel.locator(".action-run")).to_have_count(0)

    page.dismiss_dialogs = False
    panel.locator("button:has-text('Reset workflow')").click()
    outcome = panel.locator(".action-run")
    expect(outcome).to_have_attribute("data-status", "succeeded", timeout=20_000)
    expect(outcome).to_contain_text("Reset workflow: ok")
    assert len(page.dialogs) == 2
    config = sim.state("tailer")["configurations"]["000099/DEV/workflow/000099-iowa-liquor-load-pda"]
    assert config["resets"] == 1 and config["triggered_jobs"] == []
    shot(page, "12-workflow-reset")


def test_a_pasted_jwt_about_to_lapse_is_warned_about(page, alice, sim):
    token = httpx.get(f"{sim.url('tailer')}/_sim/jwt", params={"ttl": 2 * 3600}, timeout=5).json()["jwt"]
    login(page, "alice")
    page.goto("/connections/add/?platform=tailer")
    page.fill("#id_name", "Tailer pasted token")
    page.fill("#id_base_url", sim.url("tailer"))
    page.select_option("#id_cred-auth_mode", "jwt")
    page.click("text=Save and test")
    # The JWT mode without a JWT: the error is under the JWT field, nothing is saved.
    expect(page.locator(".field.has-error")).to_contain_text("the JWT mode needs the JWT")
    expect(page.locator(".field.has-error label")).to_contain_text("JWT")
    page.fill("#id_cred-jwt", token)
    page.fill("#id_cred-test_job", "000099/DEV/table-to-table/000099_iowa_liquor_prepare_pda")
    page.click("text=Save and test")
    expect(page.locator("[data-test-result=ok]")).to_contain_text(
        "Tailer accepted the token of demo@tailer.example", timeout=20_000
    )
    warning = page.locator(".msg-warning")
    expect(warning).to_contain_text(re.compile(r"The pasted JWT expires in 1 h 5\d min"))
    assert token not in page.content()
    shot(page, "13-jwt-warning")


def test_the_mapping_form_preview_follows_what_is_typed(page, alice, team, tailer_connection):
    dataset = DatasetFactory(team=team, name="Iowa liquor")
    login(page, "alice")
    page.goto(f"/datasets/{dataset.pk}/mappings/add/?connection={tailer_connection.pk}")
    page.fill("#id_target-account", "000099")
    page.fill("#id_target-environment", "DEV")
    page.select_option("#id_target-configuration_type", "table-to-table")
    page.locator("#id_target-configuration_id").press_sequentially(SENT_ID)
    preview = page.locator("#target-preview")
    expect(preview).to_contain_text(
        "Configuration id: enter the table-to-table configuration id without its '_DEV' suffix"
    )
    page.locator("#id_target-configuration_id").fill("")
    page.locator("#id_target-configuration_id").press_sequentially(CONFIG_ID)
    expect(preview).to_contain_text(f"Will be sent as: 000099 / DEV / table-to-table / {SENT_ID}")


def test_the_credentials_form_shows_only_the_chosen_modes_fields(page, alice):
    login(page, "alice")
    page.goto("/connections/add/?platform=tailer")
    expect(page.locator("#id_cred-api_key")).to_be_visible()
    expect(page.locator("#id_cred-jwt")).to_be_hidden()
    page.select_option("#id_cred-auth_mode", "jwt")
    expect(page.locator("#id_cred-jwt")).to_be_visible()
    expect(page.locator("#id_cred-api_key")).to_be_hidden()
    expect(page.locator("#id_cred-refresh_token")).to_be_hidden()
