"""Bulk actions from the job history: a preview that changes nothing, then the confirmed
action, through the one-release services, audited once per team."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from portal.models import AuditEvent, Release, ReleaseStatus
from portal.services.mappings import params_validate
from portal.services.releases import release_create
from tests.factories import MappingFactory, ReleaseFactory, UploadFactory
from tests.helpers import drive_release

pytestmark = pytest.mark.django_db

URL = "/releases/bulk/"


@pytest.fixture
def mixed(toucan_mapping, team, charlie):
    running = [ReleaseFactory(mapping=toucan_mapping, status=s) for s in ("running", "queued")]
    done = ReleaseFactory(mapping=toucan_mapping, status="succeeded")
    theirs = ReleaseFactory(mapping=MappingFactory(dataset__team=charlie.memberships.get().team), status="running")
    return running, done, theirs


def failed_release(toucan_mapping, olivia) -> Release:
    """A real failure: Toucan refuses a data source its etl_config does not declare."""
    mapping = MappingFactory(
        dataset=toucan_mapping.dataset,
        connection=toucan_mapping.connection,
        target={"small_app": "demo-app", "data_source": "undeclared.csv", "stage": "staging"},
    )
    upload = UploadFactory(dataset=mapping.dataset, uploaded_by=olivia)
    params = params_validate(mapping=mapping, data={"operations": ["release"]})
    release = drive_release(release_create(mapping=mapping, upload=upload, params=params, actor=olivia))
    assert release.status == ReleaseStatus.FAILED
    return release


def test_the_preview_shows_what_a_cancel_touches_and_changes_nothing(client, olivia, mixed):
    running, done, theirs = mixed
    client.force_login(olivia)
    ids = [r.pk for r in running] + [done.pk, theirs.pk]
    response = client.post(URL, {"action": "cancel", "scope": "selected", "ids": ids})
    html = response.content.decode()
    assert response.status_code == 200
    assert "Cancel 2 releases?" in html and "3 chosen" in html and "1 left alone" in html
    assert f"#{theirs.pk}<" not in html, "another team's release is not even chosen"
    assert not Release.objects.filter(cancel_requested=True).exists()
    assert not AuditEvent.objects.filter(action="release-bulk-cancel").exists()


def test_a_confirmed_cancel_requests_each_and_is_audited(client, olivia, mixed, django_capture_on_commit_callbacks):
    running, done, theirs = mixed
    client.force_login(olivia)
    ids = [r.pk for r in running] + [done.pk, theirs.pk]
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(URL, {"action": "cancel", "scope": "selected", "ids": ids, "confirm": "yes"})
    assert response.status_code == 302
    assert set(Release.objects.filter(cancel_requested=True).values_list("pk", flat=True)) == {r.pk for r in running}
    assert len(callbacks) == 2, "one cancel task per release"
    event = AuditEvent.objects.get(action="release-bulk-cancel")
    assert event.actor == olivia and sorted(event.changes["releases"]) == sorted(r.pk for r in running)
    assert AuditEvent.objects.filter(action="release-cancel").count() == 2


def test_a_viewer_may_preview_but_touches_nothing(client, bob, mixed):
    running, _, _ = mixed
    client.force_login(bob)
    ids = [r.pk for r in running]
    html = client.post(URL, {"action": "cancel", "scope": "selected", "ids": ids}).content.decode()
    assert "Cancel 0 releases?" in html and "your role does not allow it" in html
    client.post(URL, {"action": "cancel", "scope": "selected", "ids": ids, "confirm": "yes"})
    assert not Release.objects.filter(cancel_requested=True).exists()


def test_retry_every_failed_release_the_filter_matches(client, olivia, toucan_mapping, mixed):
    failed = failed_release(toucan_mapping, olivia)
    client.force_login(olivia)
    data = {"action": "retry", "scope": "filter", "filter": f"dataset={toucan_mapping.dataset_id}"}
    preview = client.post(URL, data).content.decode()
    assert "Retry the failed steps of 1 release?" in preview and f"#{failed.pk}<" in preview
    response = client.post(URL, {**data, "confirm": "yes"}, follow=True)
    retry = Release.objects.get(retry_of=failed)
    assert retry.trigger == "retry"
    assert "Retried 1 release." in response.content.decode()
    assert AuditEvent.objects.get(action="release-bulk-retry").changes["releases"] == [failed.pk]


def test_export_of_the_ticked_releases_streams_their_ledger(client, bob, mixed):
    running, done, theirs = mixed
    client.force_login(bob)
    data = {"action": "export", "scope": "selected", "ids": [done.pk, theirs.pk], "fmt": "csv", "confirm": "yes"}
    response = client.post(URL, data)
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [int(r["id"]) for r in rows] == [done.pk]


def test_nothing_chosen_or_an_unknown_action_says_so(client, olivia, mixed):
    client.force_login(olivia)
    nothing = client.post(URL, {"action": "cancel", "scope": "selected"}, follow=True).content.decode()
    assert "Tick some releases" in nothing
    unknown = client.post(URL, {"action": "delete", "scope": "filter"}, follow=True).content.decode()
    assert "Unknown bulk action" in unknown


def test_the_history_page_offers_row_selection(client, olivia, mixed):
    client.force_login(olivia)
    html = client.get(reverse("portal:history")).content.decode()
    assert 'name="ids" value="' in html and "data-select-all" in html and 'action="/releases/bulk/"' in html
