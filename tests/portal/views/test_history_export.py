"""The release ledger: streamed CSV and JSON exports of the filtered history, from the
page and the API, the estimated total, and one release's ledger record."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from portal import tokens
from portal.models import ParamsVersion, Release
from portal.selectors.ledger import LEDGER_COLUMNS, iter_ledger
from portal.services.mappings import params_validate
from portal.services.releases import release_create
from tests.factories import MappingFactory, ReleaseFactory, UploadFactory
from tests.helpers import drive_release

pytestmark = pytest.mark.django_db


@pytest.fixture
def ledger(toucan_mapping, olivia, charlie):
    """One real release run on the simulator, two failed ones, and another team's."""
    ParamsVersion.objects.create(mapping=toucan_mapping, number=1, params={"operations": ["release"]})
    upload = UploadFactory(dataset=toucan_mapping.dataset, uploaded_by=olivia)
    params = params_validate(mapping=toucan_mapping, data={"operations": ["release"]})
    real = drive_release(release_create(mapping=toucan_mapping, upload=upload, params=params, actor=olivia))
    failed = [
        ReleaseFactory(
            mapping=toucan_mapping,
            status="failed",
            error="=HYPERLINK(bad)",
            created_at=timezone.now() - timedelta(hours=h),
        )
        for h in (1, 2)
    ]
    other = ReleaseFactory(mapping=MappingFactory(dataset__team=charlie.memberships.get().team), status="failed")
    return real, failed, other


def rows_of(response) -> list[dict[str, str]]:
    assert response.streaming
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def test_the_csv_export_streams_the_filtered_ledger(client, bob, ledger):
    real, failed, other = ledger
    client.force_login(bob)
    response = client.get(reverse("portal:history-export", args=["csv"]))
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = rows_of(response)
    assert [int(r["id"]) for r in rows] == [real.pk, failed[0].pk, failed[1].pk]  # newest first, no other team
    first = rows[0]
    assert list(first) == LEDGER_COLUMNS
    assert first["created_by"] == "olivia" and first["status"] == "succeeded"
    assert first["file_sha256"] == real.upload.sha256 and first["params_version"] == "1"
    steps = json.loads(first["steps"])
    assert [s["name"] for s in steps] == ["upload", "operation:release"]
    assert all(s["seconds"] is not None and s["seconds"] >= 0 for s in steps)
    assert json.loads(first["remote_ids"]) == [s["remote_ref"] for s in steps if s["remote_ref"]]
    assert json.loads(first["remote_ids"]), "the platform's operation id is recorded"
    assert rows[1]["error"] == "'=HYPERLINK(bad)", "a formula is exported as text"

    only_failed = rows_of(client.get(reverse("portal:history-export", args=["csv"]) + "?status=failed"))
    assert [int(r["id"]) for r in only_failed] == [f.pk for f in failed]


def test_the_json_export_is_one_array_of_ledger_records(client, bob, ledger):
    real, failed, _ = ledger
    client.force_login(bob)
    response = client.get(reverse("portal:history-export", args=["json"]) + f"?q={real.pk}")
    records = json.loads(b"".join(response.streaming_content))
    assert [r["id"] for r in records] == [real.pk]
    assert records[0]["params"] == real.params and records[0]["file_name"] == real.upload.original_name
    assert client.get(reverse("portal:history-export", args=["xml"])).status_code == 404


def test_the_ledger_is_read_in_keyset_chunks_without_gaps_or_repeats(bob, team, django_assert_max_num_queries):
    mapping = MappingFactory(dataset__team=team)
    now = timezone.now()
    made = [ReleaseFactory(mapping=mapping, created_at=now - timedelta(minutes=i % 3)) for i in range(7)]
    expected = [r.pk for r in sorted(made, key=lambda r: (r.created_at, r.pk), reverse=True)]
    qs = Release.objects.filter(team=team)
    with django_assert_max_num_queries(2 * 4 + 2):  # two queries per chunk of 2
        ids = [r["id"] for r in iter_ledger(qs, chunk=2)]
    assert ids == expected


def test_the_history_page_shows_the_total_and_export_links(client, bob, ledger):
    client.force_login(bob)
    html = client.get(reverse("portal:history") + "?status=failed").content.decode()
    assert "2 releases match these filters" in html
    assert reverse("portal:history-export", args=["csv"]) + "?status=failed" in html


def test_the_api_gives_a_releases_ledger_and_the_export(ledger, bob, charlie):
    real, failed, other = ledger
    api = APIClient()
    _token, key = tokens.token_create(user=bob, name="t")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    record = api.get(f"/api/v1/releases/{real.pk}/ledger/").json()
    assert record["file_sha256"] == real.upload.sha256 and record["created_by"] == "olivia"
    assert [s["name"] for s in record["steps"]] == ["upload", "operation:release"]
    assert api.get(f"/api/v1/releases/{other.pk}/ledger/").status_code == 404
    response = api.get("/api/v1/releases/export/csv/?status=failed")
    assert response.status_code == 200
    assert [int(r["id"]) for r in rows_of(response)] == [f.pk for f in failed]
    assert api.get("/api/v1/releases/export/json/?status=nonsense").status_code == 400
