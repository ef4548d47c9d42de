"""The generic extension points (actions, toggles with remote state, saved parameter
versions, target preview, browse, downloads), exercised through Tailer and its simulator."""

from __future__ import annotations

import html

import pytest
from django.urls import reverse

from portal.crypto import encrypt_json
from portal.models import ActionRun, Mapping, ParamsVersion
from portal.services.actions import action_perform
from simulators.tailer import TailerSimulator
from tests.factories import ConnectionFactory, DatasetFactory, MappingFactory

pytestmark = pytest.mark.django_db

T2T = {
    "account": "000099",
    "environment": "DEV",
    "configuration_type": "table-to-table",
    "configuration_id": "000099_iowa_liquor_prepare_pda",
}
WORKFLOW = {
    "account": "000099",
    "environment": "DEV",
    "configuration_type": "workflow",
    "configuration_id": "000099-iowa-liquor-load-pda",
}


@pytest.fixture
def tailer(team, sim):
    base = sim.url("tailer")
    credentials = TailerSimulator.demo(base)["credentials"]
    return ConnectionFactory(
        team=team, platform="tailer", name="Tailer sim", base_url=base, credentials_encrypted=encrypt_json(credentials)
    )


@pytest.fixture
def t2t(tailer, team):
    return MappingFactory(dataset=DatasetFactory(team=team, name="Iowa"), connection=tailer, name="PDA", target=T2T)


@pytest.fixture
def workflow(tailer, t2t):
    return MappingFactory(dataset=t2t.dataset, connection=tailer, name="Load workflow", target=WORKFLOW)


def test_a_read_action_runs_now_and_renders_a_table(client, bob, t2t):
    client.force_login(bob)
    response = client.get(reverse("portal:mapping-action", args=[t2t.pk, "last_runs"]), {"a-last_runs-limit": "2"})
    body = response.content.decode()
    assert response.status_code == 200
    assert "Last runs" in body and body.count("<tr>") == 3, "a header and two runs"
    assert "20201230-112837-0a795c70-2557-4a60-ba16-788aa2bea179" in body


def test_a_read_action_shows_bad_filters_as_errors(client, bob, t2t):
    client.force_login(bob)
    body = client.get(
        reverse("portal:mapping-action", args=[t2t.pk, "last_runs"]), {"a-last_runs-execution_date": "30/12/2020"}
    ).content.decode()
    assert 'class="error"' in body and "YYYY-MM-DD" in body


def test_a_mutating_action_goes_through_a_worker_and_is_recorded(
    client, bob, olivia, workflow, django_capture_on_commit_callbacks
):
    url = reverse("portal:mapping-action", args=[workflow.pk, "reset_workflow"])
    client.force_login(bob)
    assert client.post(url).status_code == 403
    client.force_login(olivia)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(url, headers={"HX-Request": "true"})
    run = ActionRun.objects.get()
    assert response.status_code == 200 and run.status == ActionRun.Status.QUEUED and len(callbacks) == 1
    action_perform(run=run)  # what the worker task does
    status = client.get(reverse("portal:action-run", args=[run.pk]), headers={"HX-Request": "true"})
    assert status.status_code == 286
    run.refresh_from_db()
    assert run.status == ActionRun.Status.SUCCEEDED and run.message
    assert run.requested_by == olivia


def test_reset_is_offered_for_workflows_only(client, olivia, t2t, workflow):
    client.force_login(olivia)
    assert client.post(reverse("portal:mapping-action", args=[t2t.pk, "reset_workflow"])).status_code == 404
    page = client.get(t2t.get_absolute_url()).content.decode()
    assert "Reset workflow" not in page and "Last runs" in page
    page = client.get(workflow.get_absolute_url()).content.decode()
    assert "JA(0), JB(0), JC(1)" in page, "the confirmation explains when a reset is needed"


def test_a_toggle_changes_the_platform_first_and_shows_both_states(client, alice, t2t, sim):
    client.force_login(alice)
    client.post(reverse("portal:mapping-state", args=[t2t.pk, "disabled"]))
    t2t.refresh_from_db()
    assert (t2t.state, t2t.remote_state) == ("disabled", "disabled")
    config = sim.state("tailer")["configurations"]
    flags = [c for k, c in config.items() if k.endswith("000099_iowa_liquor_prepare_pda_DEV")][0]
    assert (flags["activated"], flags["archived"]) == (False, False)
    assert 'data-remote-state="disabled"' in client.get(t2t.get_absolute_url()).content.decode()


def test_a_platform_refusal_leaves_the_state_and_says_why(client, alice, t2t, sim):
    sim.fail("tailer", "refuse_status_change", message="Configuration locked by another user")
    client.force_login(alice)
    response = client.post(reverse("portal:mapping-state", args=[t2t.pk, "archived"]), follow=True)
    t2t.refresh_from_db()
    assert t2t.state == "enabled" and t2t.remote_state == ""
    assert "Tailer refused" in response.content.decode() and "Nothing was changed" in response.content.decode()


def test_a_release_of_a_workflow_is_refused_before_any_call(client, olivia, workflow, sim):
    client.force_login(olivia)
    response = client.post(reverse("portal:release-create", args=[workflow.pk]), {"submission_token": "x"})
    assert "not launched through the Tailer API" in response.content.decode()
    assert not [r for r in sim.state("tailer")["requests"] if "launch" in str(r)], "nothing was sent to Tailer"


def test_saved_parameters_are_versioned_and_diffable(client, alice, bob, t2t):
    url = reverse("portal:params-edit", args=[t2t.pk])
    client.force_login(bob)
    assert client.post(url, {"params-execution_date": "2026-01-01"}).status_code == 403
    client.force_login(alice)
    assert client.post(url, {"params-execution_date": "2026-01-01", "note": "first"}).status_code == 302
    again = client.post(url, {"params-execution_date": "2026-01-01"})
    assert "Nothing changed since version 1" in again.content.decode()
    bad = client.post(url, {"params-execution_date": "01/02/2026"})
    assert bad.status_code == 200 and "YYYY-MM-DD" in bad.content.decode()
    client.post(url, {"params-execution_date": "2026-02-01", "note": "second"})
    assert list(ParamsVersion.objects.values_list("number", flat=True)) == [2, 1]
    t2t.refresh_from_db()
    assert t2t.default_params == {"execution_date": "2026-02-01"}
    diff = html.unescape(client.get(reverse("portal:params-diff", args=[t2t.pk]), {"a": 1, "b": 2}).content.decode())
    assert '-  "execution_date": "2026-01-01"' in diff and '+  "execution_date": "2026-02-01"' in diff
    release_form = client.get(reverse("portal:release-create", args=[t2t.pk])).content.decode()
    assert 'value="2026-02-01"' in release_form, "the release form starts from the saved version"


def test_the_target_preview_shows_what_will_be_sent(client, alice, tailer):
    client.force_login(alice)
    url = reverse("portal:target-preview", args=[tailer.pk])
    data = {f"target-{k}": v for k, v in T2T.items()}
    assert "000099_iowa_liquor_prepare_pda_DEV" in client.post(url, data).content.decode()
    bad = client.post(url, {**data, "target-configuration_id": "000099_iowa_liquor_prepare_pda_DEV"}).content.decode()
    assert 'class="error"' in bad and "suffix" in bad.lower()


def test_browse_and_download_refuse_what_the_connector_does_not_offer(client, alice, tailer, t2t):
    client.force_login(alice)
    assert client.get(reverse("portal:browse", args=[tailer.pk, "account"])).status_code == 404
    from tests.factories import ReleaseFactory

    release = ReleaseFactory(mapping=t2t)
    step = release.steps.create(position=0, name="launch", label="Launch")
    assert client.get(reverse("portal:step-download", args=[step.pk, "csv"])).status_code == 404


def test_outsiders_cannot_reach_actions(client, charlie, t2t):
    client.force_login(charlie)
    assert client.get(reverse("portal:mapping-action", args=[t2t.pk, "last_runs"])).status_code == 404
    assert client.get(reverse("portal:params-edit", args=[t2t.pk])).status_code == 404
    assert Mapping.objects.get(pk=t2t.pk).state == "enabled"
