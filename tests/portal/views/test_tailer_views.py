"""Tailer through the portal's pages: the two credential modes, the JWT warnings on the
connection page, and bad input (a suffixed table-to-table id, an unknown environment, a
date in the wrong format, an expired token) refused with a clear message before or
instead of any call to Tailer. Secrets never show in a page."""

from __future__ import annotations

import html

import httpx
import pytest
from django.urls import reverse

from portal.crypto import decrypt_json, encrypt_json
from portal.engine.core import release_advance
from portal.models import Connection, Mapping, Release
from portal.services.connections import connection_test
from simulators.tailer import TailerSimulator
from tests.factories import ConnectionFactory, DatasetFactory, MappingFactory
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db

API_KEY, REFRESH_TOKEN = "tailer-demo-api-key", "tailer-demo-refresh-token"
T2T = {
    "account": "000099",
    "environment": "DEV",
    "configuration_type": "table-to-table",
    "configuration_id": "000099_iowa_liquor_prepare_pda",
}
GOOGLE_TOKEN_URL = "https://securetoken.googleapis.com/v1/token"


def minted_jwt(sim, ttl: float) -> str:
    """A token signed by the simulated Tailer, as `tailer auth get-token` prints one."""
    return httpx.get(f"{sim.url('tailer')}/_sim/jwt", params={"ttl": ttl}, timeout=5).json()["jwt"]


def tailer_requests(sim) -> list[dict]:
    return [r for r in sim.state("tailer")["requests"] if r["path"].startswith("/v1/")]


def add_connection(client, team, sim, **credentials):
    data = {"platform": "tailer", "team": team.pk, "name": "Tailer DEV", "base_url": sim.url("tailer")}
    data.update({f"cred-{k}": v for k, v in credentials.items()})
    return client.post(reverse("portal:connection-add") + "?platform=tailer", data)


@pytest.fixture
def refresh_connection(team, sim):
    credentials = TailerSimulator.demo(sim.url("tailer"))["credentials"]
    return ConnectionFactory(
        team=team,
        platform="tailer",
        name="Tailer sim",
        base_url=sim.url("tailer"),
        credentials_encrypted=encrypt_json(credentials),
    )


def jwt_connection(team, sim, token: str) -> Connection:
    return ConnectionFactory(
        team=team,
        platform="tailer",
        name="Tailer pasted token",
        base_url=sim.url("tailer"),
        credentials_encrypted=encrypt_json({"auth_mode": "jwt", "jwt": token, "token_url": GOOGLE_TOKEN_URL}),
    )


def tailer_mapping(team, connection, **target) -> Mapping:
    dataset = DatasetFactory(team=team, name="Iowa")
    return MappingFactory(dataset=dataset, connection=connection, name="PDA", target={**T2T, **target})


def preview(client, connection, **target):
    """The mapping form's live preview of a target."""
    data = {f"target-{k}": v for k, v in {**T2T, **target}.items()}
    return html.unescape(client.post(reverse("portal:target-preview", args=[connection.pk]), data).content.decode())


# The two credential modes


def test_the_jwt_mode_without_a_jwt_gets_an_error_under_the_jwt_field(client, alice, team, sim):
    client.force_login(alice)
    response = add_connection(client, team, sim, auth_mode="jwt", token_url=GOOGLE_TOKEN_URL)
    assert response.status_code == 200
    cred_form = response.context["cred_form"]
    assert list(cred_form.errors) == ["jwt"], (
        "the error sits on the JWT field, the other mode's fields are not asked for"
    )
    assert "the JWT mode needs the JWT" in cred_form.errors["jwt"][0]
    assert 'class="field has-error"' in response.content.decode()
    assert not Connection.objects.exists()


def test_the_refresh_token_mode_names_each_missing_secret_under_its_field(client, alice, team, sim):
    client.force_login(alice)
    token_url = f"{sim.url('tailer')}/token"
    response = add_connection(client, team, sim, auth_mode="refresh_token", api_key=API_KEY, token_url=token_url)
    errors = response.context["cred_form"].errors
    assert list(errors) == ["refresh_token"] and "needs the refresh token" in errors["refresh_token"][0]
    assert API_KEY not in response.content.decode(), "a secret typed in a refused form is not rendered back"
    both = add_connection(client, team, sim, auth_mode="refresh_token", token_url=token_url).context["cred_form"].errors
    assert set(both) == {"api_key", "refresh_token"} and "needs the API key" in both["api_key"][0]
    assert not Connection.objects.exists()


def test_an_unreadable_jwt_is_refused_without_being_shown(client, alice, team, sim):
    client.force_login(alice)
    response = add_connection(
        client, team, sim, auth_mode="jwt", jwt="not-a-jwt-but-a-secret-anyway", token_url=GOOGLE_TOKEN_URL
    )
    assert "not a JWT" in response.context["cred_form"].errors["jwt"][0]
    assert "not-a-jwt-but-a-secret-anyway" not in response.content.decode()
    assert not Connection.objects.exists()


def test_a_refresh_token_connection_stores_only_its_modes_secrets_and_never_shows_them(client, alice, team, sim):
    stale = minted_jwt(sim, 3600)
    client.force_login(alice)
    response = add_connection(
        client,
        team,
        sim,
        auth_mode="refresh_token",
        api_key=API_KEY,
        refresh_token=REFRESH_TOKEN,
        token_url=f"{sim.url('tailer')}/token",
        jwt=stale,
    )
    connection = Connection.objects.get()
    assert response.status_code == 302
    stored = decrypt_json(connection.credentials_encrypted)
    assert stored["auth_mode"] == "refresh_token" and stored["jwt"] is None
    assert (stored["api_key"], stored["refresh_token"]) == (API_KEY, REFRESH_TOKEN)
    connection_test(connection=connection)  # what the worker does
    assert connection.last_test_ok and "demo@tailer.example" in connection.last_test_message
    pages = (
        connection.get_absolute_url(),
        reverse("portal:connection-edit", args=[connection.pk]),
        reverse("portal:connection-list"),
    )
    for url in pages:
        body = client.get(url).content.decode()
        assert API_KEY not in body and REFRESH_TOKEN not in body and stale not in body, url
        assert "eyJ" not in body, "no fetched JWT either"


def test_switching_a_connection_to_the_jwt_mode_drops_the_refresh_token(client, alice, sim, refresh_connection):
    token = minted_jwt(sim, 3600)
    client.force_login(alice)
    url = reverse("portal:connection-edit", args=[refresh_connection.pk])
    data = {
        "name": "Tailer sim",
        "base_url": sim.url("tailer"),
        "cred-auth_mode": "jwt",
        "cred-token_url": GOOGLE_TOKEN_URL,
    }
    refused = client.post(url, data)
    assert "the JWT mode needs the JWT" in refused.context["cred_form"].errors["jwt"][0]
    assert client.post(url, {**data, "cred-jwt": token}).status_code == 302
    refresh_connection.refresh_from_db()
    stored = decrypt_json(refresh_connection.credentials_encrypted)
    assert stored["auth_mode"] == "jwt" and stored["jwt"] == token
    assert stored["api_key"] is None and stored["refresh_token"] is None, "the other mode's secrets are not kept"


# The pasted JWT: warnings, and an expired one refused before anything is sent


@pytest.mark.parametrize(
    ("ttl", "warning"),
    [
        (2 * 3600, "The pasted JWT expires in 1 h 59 min"),
        (20 * 60, "The pasted JWT expires in 19 min"),
        (-60, "The pasted JWT expired on"),
    ],
)
def test_a_pasted_jwt_lapsing_within_a_day_is_warned_about(client, bob, team, sim, ttl, warning):
    token = minted_jwt(sim, ttl)
    connection = jwt_connection(team, sim, token)
    client.force_login(bob)
    body = html.unescape(client.get(connection.get_absolute_url()).content.decode())
    assert body.count('class="msg msg-warning"') == 1 and warning in body
    assert token not in body and token.split(".")[1] not in body, "not even the token's payload shows"


def test_a_pasted_jwt_valid_for_days_and_fetched_tokens_get_no_warning(client, bob, team, sim, refresh_connection):
    far = jwt_connection(team, sim, minted_jwt(sim, 3 * 24 * 3600))
    client.force_login(bob)
    for connection in (far, refresh_connection):
        assert 'class="msg msg-warning"' not in client.get(connection.get_absolute_url()).content.decode()


def test_an_expired_pasted_jwt_fails_the_test_and_the_release_before_any_call(client, alice, olivia, team, sim):
    token = minted_jwt(sim, -60)
    connection = jwt_connection(team, sim, token)
    mapping = tailer_mapping(team, connection)

    connection_test(connection=connection)
    assert connection.last_test_ok is False
    assert "expired on" in connection.last_test_message and "paste a fresh one" in connection.last_test_message

    client.force_login(olivia)
    response = client.post(reverse("portal:release-create", args=[mapping.pk]), {"submission_token": "t-1"})
    release = Release.objects.get()
    assert response.status_code == 302
    release_advance(release.pk)  # what the worker does
    release.refresh_from_db()
    assert release.status == "failed" and "The pasted Tailer JWT expired on" in release.error
    page = client.get(release.get_absolute_url()).content.decode()
    assert "The pasted Tailer JWT expired on" in page and token not in page
    assert tailer_requests(sim) == [] and sim.state("tailer")["auth_failures"] == 0, "nothing was sent to Tailer"


# Targets: the suffix and the environment


def map_form(connection, **target):
    data = {"connection": connection.pk, "name": "PDA"}
    data.update({f"target-{k}": v for k, v in {**T2T, **target}.items()})
    return data


def test_a_suffixed_table_to_table_id_is_refused_under_its_field(client, alice, team, refresh_connection):
    dataset = DatasetFactory(team=team, name="Iowa")
    client.force_login(alice)
    url = reverse("portal:mapping-add", args=[dataset.pk])
    response = client.post(url, map_form(refresh_connection, configuration_id="000099_iowa_liquor_prepare_pda_DEV"))
    errors = response.context["target_form"].errors
    assert list(errors) == ["configuration_id"]
    assert (
        "without its '_DEV' suffix ('000099_iowa_liquor_prepare_pda'): the connector adds it"
        in errors["configuration_id"][0]
    )
    assert not Mapping.objects.exists()
    # The same id is fine for other types (no suffix is added to them), and for another environment:
    # the form accepts it and asks the platform, which has no such table-to-storage operation.
    other_type = map_form(refresh_connection, configuration_type="table-to-storage", configuration_id="x_DEV")
    errors = client.post(url, other_type).context["target_form"].errors
    assert "configuration_id" not in errors
    assert errors["__all__"][0].startswith("Tailer does not know 000099 / DEV / table-to-storage / x_DEV:")
    assert "000099 / PROD / table-to-table / 000099_iowa_liquor_prepare_pda_PROD" in preview(
        client, refresh_connection, environment="PROD"
    )
    assert "Configuration id: enter the table-to-table configuration id without its '_DEV' suffix" in preview(
        client, refresh_connection, configuration_id="000099_iowa_liquor_prepare_pda_DEV"
    )


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ("dev", "Tailer environments are upper case: write 'DEV', not 'dev'"),
        ("PRE PROD", "'PRE PROD' is not a Tailer environment name"),
        ("", "This field is required"),
    ],
)
def test_a_malformed_environment_is_refused_before_any_call(
    client, alice, team, sim, refresh_connection, environment, message
):
    dataset = DatasetFactory(team=team, name="Iowa")
    client.force_login(alice)
    response = client.post(
        reverse("portal:mapping-add", args=[dataset.pk]), map_form(refresh_connection, environment=environment)
    )
    errors = response.context["target_form"].errors
    assert list(errors) == ["environment"] and message in errors["environment"][0]
    assert f"Environment: {message}" in preview(client, refresh_connection, environment=environment)
    assert not Mapping.objects.exists() and tailer_requests(sim) == []


def test_an_environment_tailer_does_not_have_gets_tailers_answer(client, bob, team, sim, refresh_connection):
    """A well-formed environment can only be checked by Tailer: its 404 is shown as is."""
    mapping = tailer_mapping(team, refresh_connection, environment="STAGING")
    client.force_login(bob)
    body = html.unescape(client.get(reverse("portal:mapping-action", args=[mapping.pk, "last_runs"])).content.decode())
    assert 'class="error"' in body
    expected = (
        "Configuration '000099_iowa_liquor_prepare_pda_STAGING' not found in account 000099 (STAGING, table-to-table)"
    )
    assert expected in body


# The release form


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("15/01/2026", "'15/01/2026' is not a date in the YYYY-MM-DD format"),
        ("2026-02-30", "'2026-02-30' is not a real calendar date"),
    ],
)
def test_a_bad_execution_date_is_refused_before_any_launch(
    client, olivia, team, sim, refresh_connection, value, message
):
    mapping = tailer_mapping(team, refresh_connection)
    client.force_login(olivia)
    url = reverse("portal:release-create", args=[mapping.pk])
    response = client.post(url, {"submission_token": "t-1", "params-execution_date": value})
    assert response.status_code == 200
    errors = response.context["params_form"].errors
    assert list(errors) == ["execution_date"] and message in errors["execution_date"][0]
    assert not Release.objects.exists() and tailer_requests(sim) == []


def test_a_release_sends_the_suffixed_id_and_stores_the_run_id_at_once(client, olivia, team, sim, refresh_connection):
    mapping = tailer_mapping(team, refresh_connection)
    client.force_login(olivia)
    url = reverse("portal:release-create", args=[mapping.pk])
    assert "000099_iowa_liquor_prepare_pda_DEV" in client.get(url).content.decode(), (
        "the form shows the id that will be sent"
    )
    client.post(url, {"submission_token": "t-1", "params-execution_date": "2026-01-15"})
    release = Release.objects.get()
    release_advance(release.pk)  # the launch, as the worker runs it
    step = release.steps.get()
    assert step.status == "waiting" and step.remote_ref, "the run id is stored as soon as Tailer answers"
    (launch,) = [r for r in tailer_requests(sim) if r["action"] == "launch_job"]
    assert (
        launch["configuration_id"] == "000099_iowa_liquor_prepare_pda_DEV" and launch["execution_date"] == "2026-01-15"
    )
    page = client.get(
        reverse("portal:release-status", args=[release.pk]), headers={"HX-Request": "true"}
    ).content.decode()
    assert step.remote_ref in page and "Launched run" in page


def test_an_unknown_status_is_shown_as_it_came_on_the_release_page(client, olivia, team, sim, refresh_connection):
    sim.fail("tailer", "unknown_status", message="No match")
    sim.config("tailer", delay=0.05)
    mapping = tailer_mapping(team, refresh_connection)
    client.force_login(olivia)
    client.post(reverse("portal:release-create", args=[mapping.pk]), {"submission_token": "t-1"})
    release = Release.objects.get()
    release_advance(release.pk)
    step = release.steps.get()

    def checked() -> bool:
        release.steps.filter(pk=step.pk).update(next_check_at=None)
        release_advance(release.pk)
        step.refresh_from_db()
        return step.remote_status == "No match"

    wait_for(checked, timeout=10, message="the odd status")
    assert step.status == "waiting", "an unknown status is waited on, not taken for an end"
    page = html.unescape(client.get(release.get_absolute_url()).content.decode())
    assert "Tailer reports status 'No match'" in page
