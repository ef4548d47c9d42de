"""Drive a connector through a whole release without Django, as the engine would.

For connector tests only: it sleeps between checks, which the engine never does.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from pathlib import Path

from connectors.base import Connector, Done, Failed, FilePayload, StepContext, StepOutcome, Waiting


def file_payload(path: Path, name: str | None = None) -> FilePayload:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return FilePayload(
        name=name or path.name, size=path.stat().st_size, sha256=digest.hexdigest(), open=lambda: open(path, "rb")
    )


def run_release(
    connector: Connector, target, params, *, file: FilePayload | None = None, timeout: float = 15.0
) -> list[tuple[str, StepOutcome]]:
    """Run every step to its end; stop at the first Failed. Returns (step name, final outcome) pairs."""
    key = uuid.uuid4().hex
    results: dict[str, dict] = {}
    finished: list[tuple[str, StepOutcome]] = []
    for step in connector.plan(target, params):
        ctx = StepContext(target=target, params=params, release_key=key, file=file, results=dict(results))
        outcome = connector.run_step(step, ctx)
        checks = 0
        deadline = time.monotonic() + timeout
        while isinstance(outcome, Waiting):
            assert outcome.remote_ref, f"{step.name} waits without a remote reference"
            if time.monotonic() > deadline:
                raise AssertionError(f"{step.name} still waiting after {timeout} s: {outcome}")
            time.sleep(0.1)
            checks += 1
            ctx = StepContext(
                target=target,
                params=params,
                release_key=key,
                file=file,
                results=dict(results),
                remote_ref=outcome.remote_ref,
                output=dict(outcome.output),
                checks=checks,
            )
            outcome = connector.check_step(step, ctx)
        finished.append((step.name, outcome))
        if isinstance(outcome, Failed):
            break
        assert isinstance(outcome, Done)
        results[step.name] = {**outcome.output, "remote_ref": outcome.remote_ref}
    return finished
