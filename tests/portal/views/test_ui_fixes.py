"""The small bugs of issue 19: each fixed behaviour, as a user meets it."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse
from rest_framework.test import APIClient

from connectors.toucan import ToucanParams
from portal import tokens
from portal.models import ApiToken, Connection, Mapping, ObjectState, Release
from portal.services.connections import connection_test
from tests.factories import MappingFactory

pytestmark = pytest.mark.django_db


def nav_current(html: str) -> list[str]:
    """The top menu's highlighted entries."""
    nav = re.search(r'<nav class="mainnav"[^>]*>(.*?)</nav>', html, re.S)
    assert nav is not None
    return re.findall(r'<a href="[^"]*" aria-current="page">([^<]+)</a>', nav.group(1))


# Tokens: post/redirect/get


def test_reloading_the_account_page_after_creating_a_token_creates_no_second_one(client, alice):
    client.force_login(alice)
    response = client.post(reverse("portal:account"), {"name": "airflow"})
    assert response.status_code == 302 and response["Location"] == reverse("portal:account")
    shown = client.get(reverse("portal:account")).content.decode()
    assert "Copy this token now" in shown and re.search(r"drp_\w+", shown)
    reloaded = client.get(reverse("portal:account")).content.decode()
    assert "Copy this token now" not in reloaded, "the clear token is shown once"
    assert ApiToken.objects.filter(user=alice).count() == 1


# Confirmations


def test_disabling_asks_for_a_confirmation(client, alice, toucan_mapping):
    client.force_login(alice)
    pages = [
        (toucan_mapping.get_absolute_url(), reverse("portal:mapping-state", args=[toucan_mapping.pk, "disabled"])),
        (
            toucan_mapping.connection.get_absolute_url(),
            reverse("portal:connection-state", args=[toucan_mapping.connection.pk, "disabled"]),
        ),
    ]
    for url, action in pages:
        html = client.get(url).content.decode()
        form = re.search(rf'<form method="post" action="{re.escape(action)}"([^>]*)>', html)
        assert form is not None, url
        assert 'data-confirm="Disable' in form.group(1)


# A disabled connection's mapping


def test_a_disabled_connections_mapping_offers_no_release(client, alice, toucan_mapping):
    client.force_login(alice)
    release_url = reverse("portal:release-create", args=[toucan_mapping.pk])
    assert release_url in client.get(toucan_mapping.get_absolute_url()).content.decode()
    Connection.objects.filter(pk=toucan_mapping.connection_id).update(state=ObjectState.DISABLED)
    for page in (toucan_mapping.get_absolute_url(), toucan_mapping.dataset.get_absolute_url()):
        html = client.get(page).content.decode()
        assert release_url not in html, page
    html = client.get(toucan_mapping.get_absolute_url()).content.decode()
    assert "its connection Toucan sim is disabled" in html


# The target is checked against the platform at save


def mapping_post(connection, name, data_source):
    return {
        "connection": connection.pk,
        "name": name,
        "target-small_app": "demo-app",
        "target-data_source": data_source,
        "target-stage": "staging",
    }


def test_a_data_source_toucan_does_not_declare_is_refused_at_save(client, alice, toucan_mapping):
    client.force_login(alice)
    url = reverse("portal:mapping-add", args=[toucan_mapping.dataset.pk])
    refused = client.post(url, mapping_post(toucan_mapping.connection, "Bad", "not-declared.csv"))
    assert refused.status_code == 200
    assert "not-declared.csv is not declared in the etl_config of demo-app" in refused.content.decode()
    assert not Mapping.objects.filter(name="Bad").exists()
    saved = client.post(url, mapping_post(toucan_mapping.connection, "Good", "referential.csv"))
    assert saved.status_code == 302
    assert Mapping.objects.get(name="Good").target["data_source"] == "referential.csv"


def test_editing_a_mapping_onto_an_undeclared_source_is_refused(client, alice, toucan_mapping):
    client.force_login(alice)
    url = reverse("portal:mapping-edit", args=[toucan_mapping.pk])
    response = client.post(url, mapping_post(toucan_mapping.connection, toucan_mapping.name, "nope.csv"))
    assert response.status_code == 200 and "nope.csv is not declared" in response.content.decode()
    toucan_mapping.refresh_from_db()
    assert toucan_mapping.target["data_source"] == "sales.csv"


def test_an_unreachable_platform_saves_the_mapping_with_a_warning(client, alice, team):
    client.force_login(alice)
    mapping = MappingFactory(dataset__team=team)  # its connection points at a closed port
    url = reverse("portal:mapping-edit", args=[mapping.pk])
    response = client.post(url, mapping_post(mapping.connection, "Renamed", "sales.csv"), follow=True)
    assert response.redirect_chain and "could not confirm the target" in response.content.decode()
    mapping.refresh_from_db()
    assert mapping.name == "Renamed"


def test_the_api_refuses_an_undeclared_data_source(alice, toucan_mapping):
    api = APIClient()
    _token, key = tokens.token_create(user=alice, name="test")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    body = {
        "dataset": toucan_mapping.dataset.pk,
        "connection": toucan_mapping.connection.pk,
        "name": "Via API",
        "target": {"small_app": "demo-app", "data_source": "not-declared.csv", "stage": "staging"},
    }
    response = api.post("/api/v1/mappings/", body, format="json")
    assert response.status_code == 400
    assert "not declared" in response.json()["errors"]["target"][0]
    assert not Mapping.objects.filter(name="Via API").exists()


# Suggested mapping names


def test_the_suggested_name_of_a_second_mapping_is_free(client, alice, toucan_mapping):
    client.force_login(alice)
    dataset, connection = toucan_mapping.dataset, toucan_mapping.connection
    url = reverse("portal:mapping-add", args=[dataset.pk]) + f"?connection={connection.pk}"
    first = re.search(r'name="name"[^>]*value="([^"]+)"', client.get(url).content.decode())
    assert first is not None and first.group(1) == "Sales on Toucan sim"
    MappingFactory(dataset=dataset, connection=connection, name="Sales on Toucan sim")
    second = re.search(r'name="name"[^>]*value="([^"]+)"', client.get(url).content.decode())
    assert second is not None and second.group(1) == "Sales on Toucan sim (2)"
    saved = client.post(url, mapping_post(connection, second.group(1), "sales.csv"))
    assert saved.status_code == 302


# A failing connection test is not under a green banner


def test_a_saved_connection_whose_test_fails_is_not_shown_as_a_success(client, alice, team, sim):
    client.force_login(alice)
    data = {
        "platform": "toucan",
        "team": team.pk,
        "name": "Wrong password",
        "base_url": sim.url("toucan"),
        "cred-login": "contributor@demo.example",
        "cred-password": "wrong",
    }
    response = client.post(reverse("portal:connection-add") + "?platform=toucan", data)
    connection = Connection.objects.get(name="Wrong password")
    connection_test(connection=connection)  # what the worker does
    html = client.get(response["Location"]).content.decode()
    assert "msg-success" not in html
    assert 'class="msg msg-info"' in html and "Its test is running" in html
    assert re.search(r'class="msg msg-error" role="alert" data-test-result="failed"', html)


# partial_kind only for partial runs


def test_whole_operation_releases_record_no_partial_kind(client, olivia, toucan_mapping, csv_upload):
    assert ToucanParams(mode="operations").partial_kind is None
    assert ToucanParams(mode="operations", partial_kind="populate").partial_kind is None
    assert ToucanParams(mode="partial", input_domains=["sales"]).partial_kind == "preprocess"
    assert ToucanParams(mode="partial", partial_kind="populate", input_domains=["sales"]).partial_kind == "populate"
    client.force_login(olivia)
    form = {
        "upload": csv_upload.pk,
        "submission_token": "t-1",
        "params-mode": "operations",
        "params-partial_kind": "preprocess",  # what the form's select still posts
        "params-operations": ["release"],
        "params-upload": "on",
    }
    response = client.post(reverse("portal:release-create", args=[toucan_mapping.pk]), form)
    assert response.status_code == 302
    assert Release.objects.get().params["partial_kind"] is None


# Navigation and favicon


def test_the_release_form_lights_datasets_not_job_history(client, olivia, toucan_mapping, csv_upload):
    client.force_login(olivia)
    release_form = client.get(reverse("portal:release-create", args=[toucan_mapping.pk])).content.decode()
    assert nav_current(release_form) == ["Datasets"]
    assert nav_current(client.get(reverse("portal:history")).content.decode()) == ["Job history"]
    assert nav_current(client.get(toucan_mapping.connection.get_absolute_url()).content.decode()) == ["Connections"]
    assert nav_current(client.get(reverse("portal:dashboard")).content.decode()) == ["Dashboard"]
    assert nav_current(client.get(reverse("portal:account")).content.decode()) == []


def test_every_page_has_a_favicon(client, bob):
    client.force_login(bob)
    html = client.get(reverse("portal:dashboard")).content.decode()
    href = re.search(r'<link rel="icon" href="([^"]+)"', html)
    assert href is not None and href.group(1).endswith("favicon.svg")
    assert finders.find("portal/favicon.svg")
