"""DataHQ in the portal: the spec editor (saved parameter versions validated by the
connector), releases of the spec with their live pipelines and stats, the revisions
panel, and the token kept out of every page. The engine is driven in the test process
(``dispatch`` recorded, as in tests/portal/test_engine.py) against the simulator."""

from __future__ import annotations

import html
import json
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from portal import jobs
from portal.crypto import encrypt_json
from portal.engine.core import release_advance
from portal.models import ParamsVersion, Release, ReleaseStatus, ReleaseStep, StepStatus
from simulators.datahq import DatahqSimulator, demo_spec, sign
from tests.factories import ConnectionFactory, DatasetFactory, MappingFactory
from tests.helpers import drive_release

pytestmark = pytest.mark.django_db

OWNER, USERID = "demo-team", "u-demo"


def sales_spec(**extra) -> dict:
    """The spec of the mapping's dataset, ``sales`` of the demo owner."""
    spec = demo_spec(**extra)
    spec["meta"]["dataset"] = "sales"
    return spec


@pytest.fixture
def credentials(sim) -> dict:
    return DatahqSimulator.demo(sim.url("datahq"))["credentials"]


@pytest.fixture
def token(credentials) -> str:
    return credentials["token"]


@pytest.fixture
def datahq(team, sim, credentials):
    return ConnectionFactory(
        team=team,
        platform="datahq",
        name="DataHQ sim",
        base_url=sim.url("datahq"),
        credentials_encrypted=encrypt_json(credentials),
    )


@pytest.fixture
def mapping(datahq, team):
    return MappingFactory(
        dataset=DatasetFactory(team=team, name="Sales"),
        connection=datahq,
        name="Sales on DataHQ",
        target={"owner": OWNER, "dataset": "sales"},
    )


@pytest.fixture
def dispatched(monkeypatch):
    calls: list[tuple[int, float]] = []
    monkeypatch.setattr(jobs, "release_advance", lambda release_id, countdown=0: calls.append((release_id, countdown)))
    return calls


def save(client, mapping, spec, note: str = ""):
    """POST the spec editor, the spec as the JSON text a user types."""
    text = spec if isinstance(spec, str) else json.dumps(spec, indent=2)
    return client.post(reverse("portal:params-edit", args=[mapping.pk]), {"params-spec": text, "note": note})


def textarea(body: str, name: str = "params-spec") -> str:
    """The text a browser would submit for a textarea of the page."""
    found = re.search(rf'<textarea name="{name}"[^>]*>(.*?)</textarea>', body, re.DOTALL)
    assert found, f"no textarea {name}"
    return html.unescape(found.group(1)).strip()


def release_from_form(client, mapping) -> Release:
    """Open the release form and submit it as it is, like the Start release button."""
    page = client.get(reverse("portal:release-create", args=[mapping.pk])).content.decode()
    token = re.search(r'name="submission_token" value="([^"]+)"', page).group(1)
    response = client.post(
        reverse("portal:release-create", args=[mapping.pk]),
        {"submission_token": token, "params-spec": textarea(page)},
    )
    assert response.status_code == 302, response.context["params_form"].errors if response.context else response
    return Release.objects.get(pk=int(response["Location"].rstrip("/").rsplit("/", 1)[1]))


def drive(client, release: Release, *, timeout: float = 15.0) -> tuple[Release, list[str]]:
    """Advance until terminal as a worker would; returns the release and every live status fragment seen."""
    fragments: list[str] = []
    release = drive_release(
        release,
        timeout=timeout,
        on_tick=lambda r: fragments.append(client.get(reverse("portal:release-status", args=[r.pk])).content.decode()),
    )
    return release, fragments


# The spec editor


def test_the_spec_editor_is_a_json_textarea_with_help(client, alice, mapping):
    client.force_login(alice)
    body = client.get(reverse("portal:params-edit", args=[mapping.pk])).content.decode()
    assert re.search(r'<textarea name="params-spec"[^>]*class="mono"', body) and "Source spec (JSON)" in body
    assert "at least 60 seconds" in body and "every 1d" in body, "the help says what a schedule looks like"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            '{"meta": {"owner": "demo-team",',
            "Not valid JSON: Expecting property name enclosed in double quotes (line 1, column 32)",
        ),
        ("[]", "The spec must be a JSON object"),
        (
            json.dumps(sales_spec()).replace('"version": 1', '"version": NaN'),
            "spec.meta.version is nan, which is not a JSON number",
        ),
        ({"meta": {"ownerid": USERID, "dataset": "sales"}}, "meta.owner is required"),
        ({"meta": {"owner": OWNER, "ownerid": USERID}}, "meta.dataset is required"),
        (sales_spec(schedule="every 30s"), "schedule 'every 30s' is under one minute"),
        (sales_spec(schedule="hourly"), "schedule 'hourly' must look like 'every 30m'"),
        (
            {**sales_spec(), "meta": {**sales_spec()["meta"], "owner": "other-team"}},
            "meta.owner is 'other-team' but the mapping's owner is 'demo-team'",
        ),
        (demo_spec(), "meta.dataset is 'demo-dataset' but the mapping's dataset is 'sales'"),
    ],
    ids=[
        "invalid-json",
        "not-an-object",
        "nan",
        "no-owner",
        "no-dataset",
        "schedule-30s",
        "schedule-hourly",
        "other-owner",
        "other-dataset",
    ],
)
def test_the_spec_editor_refuses_a_bad_spec_on_the_spec_field(client, alice, mapping, spec, expected):
    client.force_login(alice)
    response = save(client, mapping, spec)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert list(errors) == ["spec"], f"a field error, not a form error: {errors}"
    assert any(expected in e for e in errors["spec"]), errors["spec"]
    assert html.escape(expected, quote=True) in response.content.decode()
    assert not ParamsVersion.objects.exists(), "nothing saved"
    mapping.refresh_from_db()
    assert mapping.default_params == {}


def test_every_version_is_kept_and_any_two_are_diffable(client, alice, bob, mapping):
    client.force_login(bob)
    assert save(client, mapping, sales_spec()).status_code == 403, "viewers do not save"
    client.force_login(alice)
    assert save(client, mapping, sales_spec(), note="first spec").status_code == 302
    assert "Nothing changed since version 1" in save(client, mapping, sales_spec()).content.decode()
    assert save(client, mapping, sales_spec(schedule="every 30s")).status_code == 200
    second = sales_spec(outputs=[{"kind": "zip"}, {"kind": "excel"}], schedule="every 1d")
    assert save(client, mapping, second, note="Excel, daily").status_code == 302
    versions = list(ParamsVersion.objects.filter(mapping=mapping).values_list("number", "note"))
    assert versions == [(2, "Excel, daily"), (1, "first spec")]
    mapping.refresh_from_db()
    assert mapping.default_params == {"spec": second}, "the newest version is the default"
    diff = client.get(reverse("portal:params-diff", args=[mapping.pk]), {"a": 1, "b": 2}).content.decode()
    added = [html.unescape(line) for line in re.findall(r'<span class="add">\+(?!\+\+)(.*?)</span>', diff)]
    removed = [html.unescape(line) for line in re.findall(r'<span class="del">-(?!--)(.*?)</span>', diff)]
    assert any(line.strip() == '"schedule": "every 1d"' for line in added), added
    assert any(line.strip() == '"kind": "excel"' for line in added), "the diff goes down to each key of the spec"
    assert not any('"' in line for line in removed), f"no key was removed: {removed}"
    page = client.get(reverse("portal:params-edit", args=[mapping.pk])).content.decode()
    assert "v2" in page and "v1" in page and "Excel, daily" in page


def test_a_saved_spec_saves_and_releases_again_unchanged(client, alice, mapping, dispatched):
    # The page renders the saved spec back; submitting that text as it is must work.
    client.force_login(alice)
    save(client, mapping, sales_spec(outputs=[{"kind": "report"}]), note="v1")
    shown = textarea(client.get(reverse("portal:params-edit", args=[mapping.pk])).content.decode())
    assert json.loads(shown) == sales_spec(outputs=[{"kind": "report"}]), "shown as JSON"
    assert '\n  "meta": {' in shown, "indented, one key a line"
    again = client.post(reverse("portal:params-edit", args=[mapping.pk]), {"params-spec": shown, "note": "same"})
    assert "Nothing changed since version 1" in again.content.decode(), "read back as the very same spec"
    release = release_from_form(client, mapping)
    assert release.params == {"spec": sales_spec(outputs=[{"kind": "report"}])}


# Releases


def test_a_release_shows_the_pipelines_live_then_the_stats(client, alice, mapping, dispatched, sim):
    sim.config("datahq", delay=0.4)
    client.force_login(alice)
    save(client, mapping, sales_spec(outputs=[{"kind": "excel"}]))
    release, fragments = drive(client, release_from_form(client, mapping))
    assert release.status == ReleaseStatus.SUCCEEDED
    step = release.steps.get()
    assert (step.name, step.remote_ref, step.remote_status) == ("upload", "u-demo/sales/1", "SUCCEEDED")
    # Live: the step waited on the revision, its pipelines showed up while running.
    assert "Pipelines of revision 1" in fragments[0] and "QUEUED" in fragments[0]
    assert any("status-inprogress" in f and "Creating CSV" in f for f in fragments[:-1])
    assert not any("Stats" in f for f in fragments[:-1]), "stats only at the end"
    page = client.get(release.get_absolute_url()).content.decode()
    for title in ("Creating CSV", "Creating JSON", "Creating Excel", "Creating ZIP"):
        assert title in page
    assert page.count('class="badge status-succeeded">SUCCEEDED') == 4
    stats = step.output["stats"]
    assert "<h4>Stats</h4>" in page and stats["hash"] in page and f"{stats['count_of_rows']:,}" in page


def test_a_failed_revision_lists_each_pipeline_error(client, alice, mapping, dispatched, sim):
    client.force_login(alice)
    save(client, mapping, sales_spec())
    sim.fail("datahq", "pipeline_failed", message="Pipeline failed: row 3 has 2 values")
    release, _ = drive(client, release_from_form(client, mapping))
    assert release.status == ReleaseStatus.FAILED
    assert release.error.startswith(
        "Upload the spec of demo-team/sales and run its pipelines: Revision 1 failed. "
        "Creating CSV: Pipeline failed: row 3 has 2 values"
    )
    page = html.unescape(client.get(release.get_absolute_url()).content.decode())
    assert page.count('class="badge status-failed">FAILED') == 3
    assert 'Dependency unsuccessful. Cannot run until dependency "u-demo/sales/1:csv"' in page
    assert "<h4>Stats</h4>" not in page


def test_a_refusal_fails_the_step_with_the_platform_errors(client, alice, mapping, dispatched, sim):
    client.force_login(alice)
    save(client, mapping, sales_spec(outputs=[{"kind": "parquet"}]))
    release, _ = drive(client, release_from_form(client, mapping))
    step = release.steps.get()
    assert (release.status, step.status) == (ReleaseStatus.FAILED, StepStatus.FAILED)
    assert step.error == "The spec store refused the spec: Validation failed for contents"
    assert step.remote_ref == "", "no revision was made"
    assert (
        "The spec store refused the spec: Validation failed for contents"
        in client.get(release.get_absolute_url()).content.decode()
    )


def test_a_token_for_another_owner_fails_clearly_without_a_call(client, alice, mapping, dispatched, sim, credentials):
    other = sign("u-other")
    connection = mapping.connection
    connection.credentials_encrypted = encrypt_json({**credentials, "token": other})
    connection.save()
    client.force_login(alice)
    warning = client.get(connection.get_absolute_url()).content.decode()
    assert "The token belongs to user id &#x27;u-other&#x27;, not to the owner id &#x27;u-demo&#x27;" in warning
    save(client, mapping, sales_spec())
    release, _ = drive(client, release_from_form(client, mapping))
    assert release.status == ReleaseStatus.FAILED
    error = release.steps.get().error
    assert error.startswith("The token belongs to user id 'u-other', not to the owner id 'u-demo'") and error.endswith(
        "Nothing was sent."
    )
    assert sim.state("datahq")["requests"] == [], "the token never left"
    assert other not in client.get(release.get_absolute_url()).content.decode()


def test_a_revision_the_platform_lost_becomes_a_readable_error(client, alice, mapping, dispatched, sim):
    sim.config("datahq", delay=5)
    client.force_login(alice)
    save(client, mapping, sales_spec())
    release = release_from_form(client, mapping)
    release_advance(release.pk)
    step = release.steps.get()
    assert (step.status, step.remote_ref) == (StepStatus.WAITING, "u-demo/sales/1"), "the flow id is stored at once"
    sim.reset("datahq")  # the spec store forgets the dataset: its status page is an HTML 404
    ReleaseStep.objects.filter(pk=step.pk).update(next_check_at=timezone.now())
    release_advance(release.pk)
    step.refresh_from_db()
    assert step.status == StepStatus.FAILED
    assert step.error == "revision 1 of demo-team/sales is unknown to the spec store"


# The revisions panel


def test_the_mapping_page_shows_the_latest_and_successful_revisions(client, bob, mapping, datahq, team, dispatched):
    demo = MappingFactory(
        dataset=mapping.dataset,
        connection=datahq,
        name="Demo on DataHQ",
        target={"owner": OWNER, "dataset": "demo-dataset"},
    )
    client.force_login(bob)
    page = client.get(demo.get_absolute_url()).content.decode()
    url = reverse("portal:mapping-action", args=[demo.pk, "revisions"])
    assert "Revisions on the spec store" in page and f'hx-get="{url}"' in page and "every 10s" in page
    body = client.get(url).content.decode()
    assert "Revisions of demo-team/demo-dataset" in body
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.DOTALL)[1:]
    assert len(rows) == 2
    assert "Latest</td>" in rows[0] and "u-demo/demo-dataset/1" in rows[0] and "status-succeeded" in rows[0]
    assert "Latest successful" in rows[1] and "3 pipelines: 3 succeeded" in rows[1]
    empty = client.get(reverse("portal:mapping-action", args=[mapping.pk, "revisions"])).content.decode()
    assert "no revision of demo-team/sales yet" in empty and 'class="error"' not in empty


def test_the_revisions_panel_shows_a_platform_error_readably(client, bob, mapping, sim):
    sim.fail("datahq", "500", match="/source/u-demo/sales/latest")
    client.force_login(bob)
    body = client.get(reverse("portal:mapping-action", args=[mapping.pk, "revisions"])).content.decode()
    assert 'class="error"' in body and "<!DOCTYPE" not in html.unescape(body)


# The token


def test_the_token_never_appears_in_any_page(client, alice, mapping, datahq, dispatched, token):
    client.force_login(alice)
    save(client, mapping, sales_spec())
    release, _ = drive(client, release_from_form(client, mapping))
    assert release.status == ReleaseStatus.SUCCEEDED
    urls = [
        datahq.get_absolute_url(),
        reverse("portal:connection-edit", args=[datahq.pk]),
        mapping.get_absolute_url(),
        reverse("portal:params-edit", args=[mapping.pk]),
        reverse("portal:release-create", args=[mapping.pk]),
        release.get_absolute_url(),
        reverse("portal:release-status", args=[release.pk]),
        reverse("portal:mapping-action", args=[mapping.pk, "revisions"]),
        reverse("portal:history"),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code in (200, 286), url
        body = response.content.decode()
        assert token not in body, url
        assert token.split(".")[1] not in body, f"{url} shows part of the token"
