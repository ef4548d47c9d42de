"""The queue: every Celery task the portal enqueues, sent by name once the transaction commits.

The tasks themselves live in ``portal.tasks`` (thin entry points that import services and the
engine). Sending by name keeps the arrows pointing one way: services and the engine never
import the task module, so ``tasks -> services -> engine`` has no way back. A test checks that
every name here is a registered task.

Sending never fails the caller: when the broker is down the error is logged and the database
keeps the state (the sweeper re-dispatches releases; the pages read the rows). Callers use the
module (``jobs.release_advance(...)``), so tests can record what is enqueued by patching one
attribute.
"""

from __future__ import annotations

import logging

from celery import current_app
from django.db import transaction

log = logging.getLogger(__name__)

RELEASE_ADVANCE = "portal.tasks.release_advance_task"
RELEASE_CANCEL = "portal.tasks.release_cancel_task"
CONNECTION_TEST = "portal.tasks.connection_test_task"
ACTION_RUN = "portal.tasks.action_run_task"
NOTIFY_RELEASE = "portal.tasks.notify_release_task"
NOTIFICATION_DELIVER = "portal.tasks.notification_deliver_task"
SCHEDULED_RELEASE = "portal.tasks.scheduled_release_task"
RELEASE_SWEEP = "portal.tasks.release_sweep_task"

# One quick retry, then give up: a web request must answer within seconds even without Redis.
RETRY_POLICY = {"max_retries": 1, "interval_start": 0.2, "interval_step": 0.2, "interval_max": 0.5}


def send_now(name: str, *args: int, countdown: float = 0.0) -> bool:
    """Send task ``name`` with ``args`` (ids only) now; False, logged, when the broker cannot take it."""
    try:
        current_app.send_task(name, args=args, countdown=max(0.0, countdown), retry=True, retry_policy=RETRY_POLICY)
    except Exception as exc:  # the broker is down: the database keeps the state
        log.warning("could not queue %s%s (%s)", name, args, type(exc).__name__)
        return False
    return True


def send(name: str, *args: int, countdown: float = 0.0) -> None:
    """Send task ``name`` once the current transaction commits (never for a rolled-back row)."""
    transaction.on_commit(lambda: send_now(name, *args, countdown=countdown))


def release_advance(release_id: int, *, countdown: float = 0.0) -> None:
    send(RELEASE_ADVANCE, release_id, countdown=countdown)


def release_cancel(release_id: int) -> None:
    send(RELEASE_CANCEL, release_id)


def connection_test(connection_id: int) -> None:
    send(CONNECTION_TEST, connection_id)


def action_run(run_id: int) -> None:
    send(ACTION_RUN, run_id)


def notify_release(release_id: int) -> None:
    send(NOTIFY_RELEASE, release_id)


def notification_deliver(delivery_id: int, *, countdown: float = 0.0) -> None:
    send(NOTIFICATION_DELIVER, delivery_id, countdown=countdown)
