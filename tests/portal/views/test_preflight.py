"""Pre-flight on the release form: the target on the platform, the file against the last
successful release, blockers that stop the release and warnings that do not."""

from __future__ import annotations

import hashlib
import re

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from portal.models import Connection, ObjectState, Release
from portal.services.mappings import params_validate
from portal.services.releases import release_create
from tests.factories import MappingFactory, UploadFactory
from tests.helpers import drive_release

pytestmark = pytest.mark.django_db

BEFORE = b"region,amount\nnorth,10\nsouth,20\neast,5\nwest,7\n"


def upload_of(mapping, content: bytes, name: str = "sales.csv"):
    return UploadFactory(
        dataset=mapping.dataset,
        original_name=name,
        file=ContentFile(content, name="upload"),
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
    )


def checks(client, mapping, upload) -> dict[str, list[str]]:
    url = reverse("portal:release-preflight", args=[mapping.pk]) + (f"?upload={upload.pk}" if upload else "")
    html = client.get(url).content.decode()
    found: dict[str, list[str]] = {"ok": [], "warning": [], "blocker": []}
    for level, text in re.findall(r'data-level="(\w+)">(.*?)</li>', html, re.S):
        found[level].append(re.sub(r"<[^>]+>", "", text))
    return found


def released(mapping, upload, actor):
    params = params_validate(mapping=mapping, data={"operations": ["release"]})
    return drive_release(release_create(mapping=mapping, upload=upload, params=params, actor=actor))


def test_a_first_release_checks_the_target_on_the_platform(client, olivia, toucan_mapping):
    client.force_login(olivia)
    found = checks(client, toucan_mapping, upload_of(toucan_mapping, BEFORE))
    assert found["blocker"] == [] and found["warning"] == []
    assert any("The target exists on Toucan Toco" in c for c in found["ok"])
    assert any("First release of this mapping" in c for c in found["ok"])


def test_the_file_is_compared_with_the_last_successful_release(client, olivia, toucan_mapping):
    first = upload_of(toucan_mapping, BEFORE)
    assert released(toucan_mapping, first, olivia).status == "succeeded"
    client.force_login(olivia)
    changed = upload_of(toucan_mapping, b"region,currency,amount_eur\nnorth,EUR,10\n")
    found = checks(client, toucan_mapping, changed)
    assert found["blocker"] == []
    warnings = " | ".join(found["warning"])
    assert "Columns removed since the last release — amount" in warnings
    assert "Columns added since the last release — currency, amount_eur" in warnings
    assert "Rows — 4 → 1 (-3)" in warnings
    again = " | ".join(checks(client, toucan_mapping, first)["warning"])
    assert "This file was already released" in again
    same = " | ".join(checks(client, toucan_mapping, upload_of(toucan_mapping, b"region,amount\nnorth,11\n"))["ok"])
    assert "Same columns as the last release — region, amount" in same


def test_blockers_are_shown_and_stop_the_release(client, olivia, toucan_mapping):
    mapping = MappingFactory(
        dataset=toucan_mapping.dataset,
        connection=toucan_mapping.connection,
        target={"small_app": "demo-app", "data_source": "not-declared.csv", "stage": "staging"},
    )
    upload = upload_of(mapping, BEFORE)
    client.force_login(olivia)
    blockers = checks(client, mapping, upload)["blocker"]
    assert any("not-declared.csv is not declared" in b for b in blockers)
    form = {
        "upload": upload.pk,
        "submission_token": "t",
        "params-mode": "operations",
        "params-operations": ["release"],
        "params-upload": "on",
    }
    response = client.post(reverse("portal:release-create", args=[mapping.pk]), form)
    assert response.status_code == 200 and "not-declared.csv is not declared" in response.content.decode()
    assert not Release.objects.exists()


def test_a_disabled_connection_is_a_blocker(client, olivia, toucan_mapping):
    Connection.objects.filter(pk=toucan_mapping.connection_id).update(state=ObjectState.DISABLED)
    toucan_mapping.refresh_from_db()
    client.force_login(olivia)
    blockers = checks(client, toucan_mapping, upload_of(toucan_mapping, BEFORE))["blocker"]
    assert any("is disabled" in b for b in blockers)


def test_the_form_loads_the_panel_and_a_viewer_cannot(client, olivia, bob, toucan_mapping):
    client.force_login(olivia)
    upload_of(toucan_mapping, BEFORE)
    html = client.get(reverse("portal:release-create", args=[toucan_mapping.pk])).content.decode()
    assert 'hx-get="' + reverse("portal:release-preflight", args=[toucan_mapping.pk]) in html
    assert 'hx-trigger="load, change from:#id_upload"' in html
    client.force_login(bob)
    assert client.get(reverse("portal:release-preflight", args=[toucan_mapping.pk])).status_code == 403
