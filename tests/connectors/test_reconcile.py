"""Each platform answers the engine's question after a lost answer: did the call happen?

The simulator's ``hold`` fault lets the platform act, then holds its answer past the
client's timeout; ``hang`` times out before the platform sees the request. Either way
the connector's call raises an error marked ``maybe_sent``, and ``reconcile_step`` tells
the two apart from what the platform shows.
"""

from __future__ import annotations

import time

import pytest

from connectors.base import Done, NotSent, NotSupported, StepContext, StepSpec, Timeout, Waiting
from connectors.tailer import TailerConnector

from ..tonalytica_support import target_for_query
from .test_datahq import OWNER, connector_for, make_spec, params_for, sim_token
from .test_tailer import refresh_credentials

pytestmark = pytest.mark.faults


def mutations(sim, slug: str, path: str) -> int:
    return sum(n for key, n in sim.state(slug)["mutations"].items() if path in key)


def test_a_held_back_answer_is_unknown_and_the_platform_shows_it_happened_datahq(sim):
    from connectors.datahq import DatahqTarget

    connector = connector_for(sim, sim_token(sim), timeout=1.0)
    target = DatahqTarget(owner=OWNER, dataset="sales")
    params = params_for(make_spec(), target)
    step = StepSpec("upload", "Upload")
    ctx = StepContext(target=target, params=params, release_key="k", started_at=time.time())
    sim.fail("datahq", "hold", match="/source/upload", hang_seconds=2)
    with pytest.raises(Timeout) as info:
        connector.run_step(step, ctx)
    assert info.value.maybe_sent
    outcome = connector.reconcile_step(step, ctx)
    # The revision the held-back upload made, followed from where it is (done by now).
    assert isinstance(outcome, Waiting | Done) and outcome.remote_ref.endswith("/sales/1")
    assert mutations(sim, "datahq", "/source/upload") == 1


def test_a_request_that_never_arrived_is_not_sent_datahq(sim):
    from connectors.datahq import DatahqTarget

    connector = connector_for(sim, sim_token(sim), timeout=1.0)
    target = DatahqTarget(owner=OWNER, dataset="sales")
    step = StepSpec("upload", "Upload")
    # An older revision with this very spec does not count: it predates the step.
    connector.run_step(step, StepContext(target=target, params=params_for(make_spec(), target), release_key="a"))
    time.sleep(0.1)
    ctx = StepContext(
        target=target, params=params_for(make_spec(), target), release_key="b", started_at=time.time() + 10
    )
    assert isinstance(connector.reconcile_step(step, ctx), NotSent)
    other = StepContext(
        target=target,
        params=params_for(make_spec(title="another"), target),
        release_key="c",
        started_at=time.time(),
    )
    assert isinstance(connector.reconcile_step(step, other), NotSent)


def test_tailer_finds_the_run_launch_job_made(sim):
    from connectors.tailer import TailerParams, TailerTarget

    sim.config("tailer", delay=0.5)
    connector = TailerConnector(refresh_credentials(sim), base_url=sim.url("tailer"), timeout=1.0)
    target = TailerTarget(
        account="000099",
        environment="DEV",
        configuration_type="table-to-table",
        configuration_id="000099_iowa_liquor_prepare_pda",
    )
    step = StepSpec("launch", "Launch")
    ctx = StepContext(target=target, params=TailerParams(), release_key="k", started_at=time.time())
    assert isinstance(connector.reconcile_step(step, ctx), NotSent), "nothing launched yet"
    sim.fail("tailer", "hold", match="/v1/dag/launch", hang_seconds=2)
    with pytest.raises(Timeout) as info:
        connector.run_step(step, ctx)
    assert info.value.maybe_sent
    outcome = connector.reconcile_step(step, ctx)
    assert outcome.remote_ref in sim.state("tailer")["runs"], "the run found is the one launch_job made"
    seeded = {"20201209-7b7b7a66-1cc0-4f09-a893-ce4a35adf09b", "20201209-4d76a90a-b092-4c69-a87f-b0cd79305428"}
    assert outcome.remote_ref not in seeded
    assert mutations(sim, "tailer", "/v1/dag/launch") == 1


def test_toucan_cannot_say_without_an_operation_id(sim):
    from connectors.toucan import ToucanConnector, ToucanCredentials, ToucanParams, ToucanTarget

    connector = ToucanConnector(
        ToucanCredentials(login="contributor@demo.example", password="toucan-demo-password"),
        base_url=sim.url("toucan"),
        timeout=1.0,
    )
    target = ToucanTarget(small_app="demo-app", data_source="sales.csv")
    step = StepSpec("operation:release", "Release")
    ctx = StepContext(target=target, params=ToucanParams(operations=["release"], upload=False), release_key="k")
    with pytest.raises(NotSupported):
        connector.reconcile_step(step, ctx)


def test_tonalytica_reads_the_querys_latest_result(sim):
    from connectors.tonalytica.connector import TonalyticaConnector
    from connectors.tonalytica.schemas import TonalyticaCredentials, TonalyticaParams, TonalyticaTarget

    from .test_tonalytica import KEY, SLUG

    connector = TonalyticaConnector(TonalyticaCredentials(api_key=KEY), base_url=sim.url(SLUG), timeout=3.0)
    # Query 1 has no parameters: Redash keeps its latest result (parameterized runs never set it).
    target = TonalyticaTarget.model_validate(target_for_query(connector, 1))
    params = TonalyticaParams.model_validate({"max_age": 0}, context={"target": target})
    step = StepSpec("refresh", "Run")
    before = time.time() - 1
    ctx = StepContext(target=target, params=params, release_key="k", started_at=before)
    outcome = connector.run_step(step, ctx)
    while isinstance(outcome, Waiting):
        time.sleep(0.2)
        outcome = connector.check_step(step, StepContext(**{**ctx.__dict__, "remote_ref": outcome.remote_ref}))
    found = connector.reconcile_step(step, ctx)
    assert isinstance(found, Done) and found.output["query_result_id"] == outcome.output["query_result_id"]
    later = StepContext(**{**ctx.__dict__, "started_at": time.time() + 30})
    assert isinstance(connector.reconcile_step(step, later), NotSent)
