from __future__ import annotations

import pytest

from .simulator import SimulatorProcess


@pytest.fixture(scope="session")
def simulators():
    """The platform simulators, one process for the whole run (0.2 s per remote job state)."""
    process = SimulatorProcess(delay=0.2)
    yield process
    process.stop()


@pytest.fixture
def sim(simulators):
    """The simulators with every platform's state and faults reset before the test."""
    from simulators.app import SIMULATORS

    for slug in SIMULATORS:
        simulators.reset(slug)
        simulators.config(slug, delay=0.2)
    return simulators
