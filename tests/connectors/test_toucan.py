from __future__ import annotations

import hashlib
import os

import pytest
from pydantic import SecretStr, ValidationError

from connectors.base import AuthenticationError, Done, Failed, PermanentError, RateLimited, ServerError, Timeout
from connectors.toucan import CHUNK_SIZE, ToucanConnector, ToucanCredentials, ToucanParams, ToucanTarget

from .driver import file_payload, run_release

LOGIN, PASSWORD = "contributor@demo.example", "toucan-demo-password"


@pytest.fixture
def connector(sim):
    creds = ToucanCredentials(login=LOGIN, password=SecretStr(PASSWORD))
    return ToucanConnector(creds, base_url=sim.url("toucan"), timeout=2.0)


@pytest.fixture
def target():
    return ToucanTarget(small_app="demo-app", data_source="sales.csv", stage="staging")


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "sales-2026.csv"
    path.write_text("region,amount\nnorth,10\nsouth,20\n")
    return path


def test_it_tests_the_connection(connector):
    assert "contributor@demo.example" in connector.test_connection()


def test_it_reports_refused_credentials_as_permanent(sim):
    creds = ToucanCredentials(login=LOGIN, password=SecretStr("wrong"))
    bad = ToucanConnector(creds, base_url=sim.url("toucan"), timeout=2.0)
    with pytest.raises(AuthenticationError) as info:
        bad.test_connection()
    assert info.value.permanent
    assert "Invalid username or password" in info.value.message
    assert "wrong" not in str(info.value)


def test_it_plans_the_ticked_operations_in_platform_order(connector, target):
    params = ToucanParams(operations=["release", "preprocess_data_sources"])
    assert [s.name for s in connector.plan(target, params)] == [
        "upload",
        "operation:preprocess_data_sources",
        "operation:release",
    ]


def test_it_uploads_and_runs_every_operation(connector, target, csv_file, sim):
    outcomes = run_release(connector, target, ToucanParams(), file=file_payload(csv_file))
    assert [name for name, _ in outcomes][0] == "upload"
    assert all(isinstance(o, Done) for _, o in outcomes), outcomes
    state = sim.state("toucan")
    assert state["sources"]["demo-app/staging/sales.csv"]["size"] == csv_file.stat().st_size
    sent = [r for r in state["requests"] if "operations" in r]
    assert [r["operations"] for r in sent] == [[op] for op in ToucanParams().operations]
    assert all("notify=false" in r["query"] and "stage=staging" in r["query"] for r in sent)


def test_it_sends_a_large_file_in_dropzone_chunks(connector, target, tmp_path, sim):
    path = tmp_path / "big.csv"
    size = CHUNK_SIZE * 2 + 12345
    content = os.urandom(size)  # every chunk differs: a chunk sent from the wrong window shows in the hash
    path.write_bytes(content)
    outcomes = run_release(connector, target, ToucanParams(operations=[]), file=file_payload(path))
    assert outcomes[0][1].output["chunks"] == 3
    state = sim.state("toucan")
    assert [r["chunk"] for r in state["requests"] if "chunk" in r] == [0, 1, 2]
    assert state["sources"]["demo-app/staging/sales.csv"]["size"] == size
    assert state["sources"]["demo-app/staging/sales.csv"]["sha256"] == hashlib.sha256(content).hexdigest()


def test_it_runs_a_partial_populate_and_release(connector, target, csv_file, sim):
    params = ToucanParams(mode="partial", partial_kind="populate_release", input_domains=["referential"], upload=False)
    outcomes = run_release(connector, target, params)
    assert [n for n, _ in outcomes] == ["partial:populate_release"]
    assert isinstance(outcomes[0][1], Done)
    request = sim.state("toucan")["requests"][-1]
    assert request["path"].endswith("/demo-app/populate")
    assert "release" in request["query"].split("&")[-1]  # a bare flag: the server sees it with an empty value
    assert request["operations"][-1] == "release"


def test_a_partial_run_needs_input_domains():
    with pytest.raises(ValidationError, match="input domain"):
        ToucanParams(mode="partial", input_domains=["  "])


def test_it_reports_an_operation_that_ends_failed(connector, target, sim):
    sim.fail("toucan", "operation_failed", message="Preprocess failed: bad column")
    outcomes = run_release(connector, target, ToucanParams(operations=["preprocess_data_sources"], upload=False))
    assert isinstance(outcomes[-1][1], Failed)
    assert outcomes[-1][1].message == "Preprocess failed: bad column"


def test_it_rejects_an_unknown_data_source_permanently(connector, csv_file):
    target = ToucanTarget(small_app="demo-app", data_source="nope.csv")
    with pytest.raises(PermanentError, match="not defined in the etl_config"):
        run_release(connector, target, ToucanParams(operations=[]), file=file_payload(csv_file))


@pytest.mark.parametrize(
    ("mode", "error", "options"),
    [("500", ServerError, {}), ("429", RateLimited, {"retry_after": 7}), ("hang", Timeout, {"hang_seconds": 4})],
)
def test_it_maps_transient_failures(connector, sim, mode, error, options):
    sim.fail("toucan", mode, match="/login", **options)
    with pytest.raises(error) as info:
        connector.test_connection()
    assert not info.value.permanent
    if mode == "429":
        assert info.value.retry_after == 7


def test_a_target_data_source_is_a_file_name_not_a_path():
    with pytest.raises(ValidationError, match="not a path"):
        ToucanTarget(small_app="demo-app", data_source="../etc/passwd")
