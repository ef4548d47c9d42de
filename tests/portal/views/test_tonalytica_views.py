"""TONalytica through the portal's generic views, against its simulator: browsing saved
queries for the mapping form, the dashboards / query / archive actions, the release form's
parameters, the release page's job and preview tables, cancel, and the CSV/JSON downloads
streamed with the user's permissions. The API key must never reach a page or a link.

Releases are driven with ``portal.engine.release_advance`` in the test process, as a
worker would (tests/portal/test_engine.py does the same); ``dispatch`` only queues on
commit, which these rolled-back tests never reach.
"""

from __future__ import annotations

import html
import json
import re

import pytest
from django.urls import reverse

from connectors.tonalytica.connector import TonalyticaConnector
from connectors.tonalytica.schemas import TonalyticaCredentials, TonalyticaTarget
from portal.crypto import encrypt_json
from portal.engine.core import release_advance, release_cancel_now
from portal.models import ActionRun, Mapping, Release, ReleaseStatus, ReleaseStep, StepStatus
from portal.services.actions import action_perform
from portal.services.mappings import params_validate
from portal.services.releases import release_create
from simulators.tonalytica import USER_KEY, TonalyticaSimulator
from tests.factories import ConnectionFactory, DatasetFactory, MappingFactory
from tests.helpers import drive_release as drive
from tests.tonalytica_support import target_for_query

pytestmark = pytest.mark.django_db

SLUG = "tonalytica"


@pytest.fixture
def tonalytica(team, sim):
    """A TONalytica connection of the data team, with the simulator's demo user key."""
    base = sim.url(SLUG)
    credentials = TonalyticaSimulator.demo(base)["credentials"]
    return ConnectionFactory(
        team=team, platform=SLUG, name="TONalytica sim", base_url=base, credentials_encrypted=encrypt_json(credentials)
    )


def target_of(sim, query_id: int) -> dict:
    """Target data copied from the live query, as Browse… fills the mapping form."""
    connector = TonalyticaConnector(TonalyticaCredentials(api_key=USER_KEY), base_url=sim.url(SLUG), timeout=3)
    return TonalyticaTarget.model_validate(target_for_query(connector, query_id)).model_dump(mode="json")


@pytest.fixture
def wallets(tonalytica, team, sim):
    """Query 2, "Top wallets by balance": a number parameter `limit`, default 10."""
    dataset = DatasetFactory(team=team, name="Top wallets")
    return MappingFactory(
        dataset=dataset, connection=tonalytica, name="Top wallets on TONalytica", target=target_of(sim, 2)
    )


def release(mapping: Mapping, user, **params) -> Release:
    return release_create(
        mapping=mapping, upload=None, params=params_validate(mapping=mapping, data=params), actor=user
    )


def fills(body: str) -> list[dict]:
    """The data-fill of every choice of a browse answer, as portal.js reads them."""
    return [json.loads(html.unescape(raw)) for raw in re.findall(r"data-fill='([^']*)'", body)]


# The mapping form: Browse…


def test_the_mapping_form_offers_browse_on_the_query_fields(client, alice, tonalytica, team):
    dataset = DatasetFactory(team=team)
    client.force_login(alice)
    body = client.get(reverse("portal:mapping-add", args=[dataset.pk]), {"connection": tonalytica.pk}).content.decode()
    for field in ("query_id", "query_name"):
        assert f'data-browse="{reverse("portal:browse", args=[tonalytica.pk, field])}"' in body
    assert 'name="target-parameter_types"' in body and 'name="target-max_age"' in body


def test_browse_lists_saved_queries_and_fills_the_chosen_querys_parameters(client, alice, tonalytica):
    client.force_login(alice)
    response = client.get(reverse("portal:browse", args=[tonalytica.pk, "query_id"]), {"q": ""})
    body = html.unescape(response.content.decode())
    assert response.status_code == 200
    assert "#2 Top wallets by balance" in body and "parameters: limit (number, default 10)" in body
    assert body.count("<li>") == 7
    chosen = next(f for f in fills(response.content.decode()) if f["query_id"] == 2)
    assert chosen == {
        "query_id": 2,
        "query_name": "Top wallets by balance",
        "parameter_types": {"limit": "number"},
        "parameter_defaults": {"limit": 10},
        "parameter_options": {},
    }
    assert USER_KEY not in body


def test_browse_searches_by_name_and_says_when_a_query_does_not_exist(client, alice, tonalytica):
    client.force_login(alice)
    found = client.get(reverse("portal:browse", args=[tonalytica.pk, "query_name"]), {"q": "wallet"}).content.decode()
    assert sorted(f["query_name"] for f in fills(found)) == ["Top wallets by balance", "Wallet transactions"]
    missing = client.get(reverse("portal:browse", args=[tonalytica.pk, "query_id"]), {"q": "999"}).content.decode()
    assert 'class="error"' in missing
    assert "TONalytica has no query #999 (it was deleted, or this API key cannot see it)" in html.unescape(missing)


def test_browse_needs_the_manage_role_and_a_browsable_field(client, bob, charlie, alice, tonalytica):
    url = reverse("portal:browse", args=[tonalytica.pk, "query_id"])
    client.force_login(bob)
    assert client.get(url).status_code == 403
    client.force_login(charlie)
    assert client.get(url).status_code == 404
    client.force_login(alice)
    assert client.get(reverse("portal:browse", args=[tonalytica.pk, "max_age"])).status_code == 404


def test_a_mapping_saved_from_a_browse_choice_keeps_the_declarations(client, alice, tonalytica, team, sim):
    dataset = DatasetFactory(team=team, name="Blocks")
    client.force_login(alice)
    answer = client.get(reverse("portal:browse", args=[tonalytica.pk, "query_id"]), {"q": "5"})
    (chosen,) = fills(answer.content.decode())
    # What portal.js puts in the form: dicts as JSON text.
    data = {"connection": tonalytica.pk, "name": "Blocks on TONalytica", "target-max_age": "-1"}
    data |= {f"target-{k}": json.dumps(v) if isinstance(v, dict) else v for k, v in chosen.items()}
    response = client.post(reverse("portal:mapping-add", args=[dataset.pk]), data)
    assert response.status_code == 302
    mapping = Mapping.objects.get(name="Blocks on TONalytica")
    assert mapping.target == target_of(sim, 5)
    assert mapping.target_label() == "Query #5 Blocks on a day, parameters day, workchain"


# Actions


def test_the_connection_page_lists_dashboards_for_a_viewer(client, bob, charlie, tonalytica):
    client.force_login(bob)
    page = client.get(tonalytica.get_absolute_url()).content.decode()
    assert 'id="action-dashboards"' in page and "every 10s" in page
    url = reverse("portal:connection-action", args=[tonalytica.pk, "dashboards"])
    body = html.unescape(client.get(url).content.decode())
    assert "Dashboards 1–2 of 2" in body and "Network overview" in body and "whale-watch" in body
    searched = client.get(url, {"a-dashboards-search": "whale"}).content.decode()
    assert "Whale watch" in searched and "Network overview" not in searched
    assert USER_KEY not in page + body
    client.force_login(charlie)
    assert client.get(url).status_code == 404


def test_the_mapping_page_shows_the_querys_declared_parameters(client, bob, wallets):
    client.force_login(bob)
    body = html.unescape(client.get(reverse("portal:mapping-action", args=[wallets.pk, "query_info"])).content.decode())
    assert "Query #2 “Top wallets by balance”: 1 parameter." in body
    row = "<td>limit</td><td>Number of wallets</td><td>number</td><td>10</td><td>10</td><td>—</td>"
    assert row in body.replace("\n", "")


def test_archiving_the_query_needs_manage_confirms_and_goes_through_a_worker(
    client, alice, olivia, bob, wallets, sim, django_capture_on_commit_callbacks
):
    url = reverse("portal:mapping-action", args=[wallets.pk, "archive_query"])
    for user in (bob, olivia):  # viewer, operator: below manage
        client.force_login(user)
        assert client.post(url).status_code == 403
    page = client.get(wallets.get_absolute_url()).content.decode()
    assert "Your role does not allow this." in page
    client.force_login(alice)
    page = html.unescape(client.get(wallets.get_absolute_url()).content.decode())
    assert 'data-confirm="Archive this saved query on TONalytica?' in page
    assert client.get(url).status_code == 404, "a mutating action is never run by a GET"
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(url, headers={"HX-Request": "true"})
    run = ActionRun.objects.get()
    assert response.status_code == 200 and run.status == ActionRun.Status.QUEUED and len(callbacks) == 1
    assert sim.state(SLUG)["queries"]["2"]["is_archived"] is False, "nothing sent before the worker runs"
    action_perform(run=run)  # what the worker task does
    run.refresh_from_db()
    assert (run.status, run.message) == (ActionRun.Status.SUCCEEDED, "Query #2 archived on TONalytica")
    assert run.requested_by == alice
    assert sim.state(SLUG)["queries"]["2"]["is_archived"] is True
    assert "Query #2 archived on TONalytica" in client.get(wallets.get_absolute_url()).content.decode()


# The release form


def test_the_release_form_offers_a_fresh_run_and_a_json_parameters_box(client, olivia, wallets):
    client.force_login(olivia)
    body = client.get(reverse("portal:release-create", args=[wallets.pk])).content.decode()
    assert re.search(r'<input type="checkbox" name="params-force_refresh"[^>]*>\s*Force a fresh run', body)
    assert re.search(r'<textarea name="params-parameters"[^>]*>\s*\{\}</textarea>', body)
    assert "max_age 0" in body


@pytest.mark.parametrize(
    ("query_id", "typed", "message"),
    [
        (2, '{"limit": "ten"}', "parameter 'limit' must be a number, got 'ten'"),
        (
            4,
            '{"period": {"start": "2024-02-10", "end": "2024-02-01"}}',
            "parameter 'period' ends (2024-02-01) before it starts (2024-02-10)",
        ),
        (2, '{"limt": 5}', "unknown parameter 'limt' (query #2 declares: limit)"),
        (2, '{"limit": 5', "Not valid JSON"),
    ],
)
def test_bad_parameters_are_refused_under_the_field_and_nothing_is_lost(
    client, olivia, tonalytica, team, sim, query_id, typed, message
):
    mapping = MappingFactory(dataset=DatasetFactory(team=team), connection=tonalytica, target=target_of(sim, query_id))
    client.force_login(olivia)
    data = {"submission_token": "t1", "params-parameters": typed, "params-force_refresh": "on"}
    response = client.post(reverse("portal:release-create", args=[mapping.pk]), data)
    body = html.unescape(response.content.decode())
    assert response.status_code == 200 and not Release.objects.exists()
    field = body[body.index('name="params-parameters"') :]
    assert message in field[: field.index("</div>")], "the error is shown under the Parameters field"
    assert typed in field, "what the user typed is still there"
    assert re.search(r'name="params-force_refresh"[^>]*checked', body), "and so is the tick"
    assert not [r for r in sim.state(SLUG)["requests"] if r["method"] == "POST"], "nothing was sent"


def test_a_release_of_a_query_that_no_longer_exists_fails_clearly(client, alice, tonalytica, team):
    mapping = MappingFactory(dataset=DatasetFactory(team=team), connection=tonalytica, target={"query_id": 999})
    done = drive(release(mapping, alice))
    assert done.status == ReleaseStatus.FAILED
    client.force_login(alice)
    assert "TONalytica has no query #999" in client.get(done.get_absolute_url()).content.decode()


# The release page: the job, the preview, the downloads


def test_the_release_page_previews_the_first_rows_and_serves_downloads(client, alice, bob, charlie, wallets, sim):
    done = drive(release(wallets, alice, parameters={"limit": "60"}, force_refresh=True))
    assert done.status == ReleaseStatus.SUCCEEDED
    refresh, fetch = done.steps.order_by("position")
    assert sim.state(SLUG)["jobs"][refresh.output["job_id"]]["parameters"] == {"limit": 60}
    client.force_login(bob)  # a viewer may look and download
    page = client.get(done.get_absolute_url()).content.decode()
    assert "Query job" in page and 'status-finished">finished' in page
    assert "Preview: the first 50 of 60 rows" in page
    assert "<th>rank</th><th>address</th><th>balance_ton</th>" in page
    preview = page[page.index('data-step-detail="fetch"') :]
    assert preview[: preview.index("</table>")].count("<tr>") == 51, "a header and 50 rows"
    csv_url = reverse("portal:step-download", args=[fetch.pk, "csv"])
    json_url = reverse("portal:step-download", args=[fetch.pk, "json"])
    assert f'href="{csv_url}"' in page and f'href="{json_url}"' in page
    # The platform is reached by the portal only: no key and no TONalytica URL in the page.
    assert USER_KEY not in page and sim.url(SLUG) not in page

    response = client.get(csv_url)
    result_id = fetch.output["query_result_id"]
    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="Top_wallets_by_balance_{result_id}.csv"'
    assert response["Cache-Control"] == "private, no-store"
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0] == "rank,address,balance_ton" and len(lines) == 61
    response = client.get(json_url)
    body = b"".join(response.streaming_content)
    assert response["Content-Type"] == "application/json"
    assert [row["rank"] for row in json.loads(body)["query_result"]["data"]["rows"]] == list(range(1, 61))
    assert USER_KEY.encode() not in body and USER_KEY not in str(response.headers)

    client.force_login(charlie)
    assert client.get(csv_url).status_code == 404
    assert client.get(done.get_absolute_url()).status_code == 404
    assert client.get(reverse("portal:step-download", args=[refresh.pk, "csv"])).status_code == 404


def test_a_download_of_a_result_gone_from_tonalytica_says_so(client, alice, wallets):
    done = drive(release(wallets, alice))
    fetch = done.steps.get(name="fetch")
    ReleaseStep.objects.filter(pk=fetch.pk).update(output={**fetch.output, "query_result_id": 9999})
    client.force_login(alice)
    response = client.get(reverse("portal:step-download", args=[fetch.pk, "csv"]), follow=True)
    assert response.redirect_chain[-1][0] == done.get_absolute_url()
    assert "The download failed: TONalytica no longer has query result 9999" in response.content.decode()


def test_a_running_refresh_is_cancelled_from_the_release_page(client, olivia, wallets, sim):
    sim.config(SLUG, delay=5)
    running = release(wallets, olivia, force_refresh=True)
    release_advance(running.pk)
    refresh = running.steps.get(name="refresh")
    assert refresh.status == StepStatus.WAITING
    client.force_login(olivia)
    page = client.get(running.get_absolute_url()).content.decode()
    assert f'action="{reverse("portal:release-cancel", args=[running.pk])}"' in page
    assert 'status-queued">queued' in page, "the job as last seen, live"
    client.post(reverse("portal:release-cancel", args=[running.pk]))
    release_cancel_now(Release.objects.get(pk=running.pk))  # what the cancel task does
    running.refresh_from_db()
    refresh.refresh_from_db()
    assert running.status == ReleaseStatus.CANCELLED and refresh.status == StepStatus.CANCELLED
    assert refresh.error.startswith(f"Cancellation of query job {refresh.remote_ref} requested on TONalytica")
    job = sim.state(SLUG)["jobs"][refresh.remote_ref]
    assert (job["status"], job["error"]) == (4, "Query cancelled by user.")
    deletes = [r["path"] for r in sim.state(SLUG)["requests"] if r["method"] == "DELETE"]
    assert any(path.endswith(f"/api/jobs/{refresh.remote_ref}") for path in deletes)
    assert refresh.output["job_status"] == "cancelled", "the job table shows the cancel, not the last check"


def test_an_expired_job_fails_the_release_with_a_clear_message(client, alice, wallets, sim):
    sim.fail(SLUG, "expire_jobs")
    done = drive(release(wallets, alice, force_refresh=True))
    assert done.status == ReleaseStatus.FAILED
    client.force_login(alice)
    page = html.unescape(client.get(done.get_absolute_url()).content.decode())
    assert "is no longer known to TONalytica: it expired (jobs are kept 12 h) or was lost" in page
    assert "Run the release again." in page
