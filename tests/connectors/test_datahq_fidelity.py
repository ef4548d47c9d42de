"""The DataHQ spec store under other state names, and its errors in its own words (issue 17)."""

from __future__ import annotations

import uuid

import pytest

from connectors.base import Failed, NotFound, NotSupported, StepContext, Waiting
from connectors.datahq import DatahqTarget
from connectors.statuses import MAX_UNKNOWN_STATUSES, UNKNOWN_COUNT

from .test_datahq import OWNER, connector_for, make_spec, params_for, sim_token


@pytest.fixture
def connector(sim):
    with connector_for(sim, sim_token(sim)) as connector:
        yield connector


TARGET = DatahqTarget(owner=OWNER, dataset="sales")


def test_an_unknown_flow_state_is_shown_with_a_warning_then_fails_with_the_platforms_word(connector, sim):
    sim.config("datahq", state_words={"QUEUED": "WAITING_FOR_RUNNER", "INPROGRESS": "WAITING_FOR_RUNNER"}, delay=30)
    params = params_for(make_spec(), TARGET)
    step = connector.plan(TARGET, params)[0]
    ctx = StepContext(target=TARGET, params=params, release_key=uuid.uuid4().hex)
    outcome = connector.run_step(step, ctx)
    output = dict(outcome.output)
    for checks in range(1, MAX_UNKNOWN_STATUSES + 1):
        assert isinstance(outcome, Waiting), outcome
        ref = outcome.remote_ref
        check = StepContext(target=TARGET, params=params, release_key="k", remote_ref=ref, output=output, checks=checks)
        outcome = connector.check_step(step, check)
        output = {**output, **outcome.output}
        if checks == 1:
            assert isinstance(outcome, Waiting) and "'WAITING_FOR_RUNNER'" in outcome.warning
            assert outcome.remote_status == "WAITING_FOR_RUNNER"
    assert isinstance(outcome, Failed) and "'WAITING_FOR_RUNNER'" in outcome.message
    assert outcome.output[UNKNOWN_COUNT] == MAX_UNKNOWN_STATUSES


def test_errors_are_the_platforms_sentence_never_a_repr(connector):
    # An unknown revision is werkzeug's HTML 404 page: its title, not the markup.
    with pytest.raises(NotFound) as info:
        connector.check_step(
            connector.plan(TARGET, params_for(make_spec(), TARGET))[0],
            StepContext(
                target=TARGET, params=params_for(make_spec(), TARGET), release_key="k", remote_ref="u-demo/sales/99"
            ),
        )
    message = info.value.message
    assert "revision 99" in message and "{" not in message and "<" not in message and "'status':" not in message


def test_browse_says_the_spec_store_offers_no_listing(connector):
    with pytest.raises(NotSupported, match="nothing to browse"):
        connector.browse("dataset")
