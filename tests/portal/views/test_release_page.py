"""The readable release page: parameters as a table (raw JSON behind a toggle), a log that
stays fast at 100,000 events (tail, earlier lines on demand, full download)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.models import ReleaseEvent, ReleaseStep
from tests.factories import ReleaseFactory

pytestmark = pytest.mark.django_db

EVENTS = 100_000


@pytest.fixture
def long_release(toucan_mapping):
    release = ReleaseFactory(
        mapping=toucan_mapping,
        status="succeeded",
        params={"mode": "operations", "operations": ["preprocess_data_sources", "release"], "notify": False},
    )
    start = timezone.now() - timedelta(hours=3)
    ReleaseEvent.objects.bulk_create(
        (
            ReleaseEvent(release=release, message=f"line {i:06d}", created_at=start + timedelta(milliseconds=i))
            for i in range(EVENTS)
        ),
        batch_size=10_000,
    )
    return release


def lines(html: str) -> list[str]:
    return re.findall(r'data-event="\d+"><time>[^<]*</time> (line \d+)</li>', html)


def test_the_page_shows_the_tail_of_a_100k_line_log(client, bob, long_release, django_assert_max_num_queries):
    client.force_login(bob)
    with django_assert_max_num_queries(30):
        html = client.get(long_release.get_absolute_url()).content.decode()
    shown = lines(html)
    assert len(shown) == 200
    assert shown[0] == f"line {EVENTS - 200:06d}" and shown[-1] == f"line {EVENTS - 1:06d}"
    assert "Load earlier lines" in html
    more = re.search(r'hx-get="([^"]+\?before=\d+)"', html)
    assert more is not None
    earlier = client.get(more.group(1).replace("&amp;", "&")).content.decode()
    earlier_lines = lines(earlier)
    assert len(earlier_lines) == 500
    assert earlier_lines[-1] == f"line {EVENTS - 201:06d}", "earlier lines continue exactly where the tail starts"
    assert "Load earlier lines" in earlier


def test_the_full_log_downloads_as_a_stream(client, bob, long_release):
    client.force_login(bob)
    response = client.get(reverse("portal:release-log-download", args=[long_release.pk]))
    assert response.streaming and response["Content-Type"].startswith("text/plain")
    body = b"".join(response.streaming_content).decode().splitlines()
    assert len(body) == EVENTS
    assert body[0].endswith("line 000000") and body[-1].endswith(f"line {EVENTS - 1:06d}")


def test_the_parameters_are_a_table_with_the_raw_json_behind_a_toggle(client, bob, toucan_mapping):
    release = ReleaseFactory(
        mapping=toucan_mapping,
        status="succeeded",
        params={"operations": ["preprocess_data_sources", "release"], "notify": False, "stage": None},
    )
    ReleaseStep.objects.create(
        release=release,
        position=0,
        name="operation:release",
        label="Release",
        remote_status="pending",
        message="pending",
    )
    client.force_login(bob)
    html = client.get(release.get_absolute_url()).content.decode()
    assert re.search(r'<th scope="row">operations</th><td>preprocess_data_sources, release</td>', html)
    assert re.search(r'<th scope="row">notify</th><td>no</td>', html)
    assert '<details class="raw-json"><summary>Raw JSON</summary>' in html
    assert "pending <small" not in html, "the platform's status is not repeated as its message"
    assert reverse("portal:release-log-download", args=[release.pk]) in html


def test_an_outsider_cannot_read_the_log(client, charlie, long_release):
    client.force_login(charlie)
    assert client.get(reverse("portal:release-log-download", args=[long_release.pk])).status_code == 404
    assert client.get(reverse("portal:release-log-earlier", args=[long_release.pk])).status_code == 404
