"""The release engine: the one place where the steps of every platform's releases run.

``release_advance(release_id)`` moves a release as far as it can without waiting, then
returns; a Celery task calls it and, when a step waits on the platform, is enqueued
again with a countdown. No worker ever sleeps while a platform works. The design, and
how it holds under faults, is in docs/engine.md.

Safety rules:

- A step is *claimed* with a conditional UPDATE that bumps its fencing token
  (``fence``). Every later write of that worker to the step carries the token, so a
  worker that lost its claim has its late writes discarded (and logged).
- A claimed step carries a lease, extended by a heartbeat thread while the call runs:
  a slow upload keeps its lease; a dead worker's lease runs out.
- A mutating call whose answer was lost (a read timeout, a connection broken after
  sending, a worker that died mid-call) has an *unknown* outcome. The engine asks the
  platform (``Connector.reconcile_step``): if it happened the step continues from
  there, if it did not it is sent again, and if the platform cannot say the step
  *needs attention*: a person chooses "It happened — continue" or "Send again".
- Transient errors (5xx, 429, timeouts before sending) are retried with capped,
  jittered backoff that honours Retry-After; permanent errors fail the step at once.
- No Celery countdown exceeds half the broker's visibility timeout: a longer wait is
  kept in ``next_check_at`` and picked up by the due-work scan (``release_sweep``).
- Every waiting step has a deadline; past it, it fails and says why.

``release_sweep()`` (Celery beat, on its own queue) dispatches releases that have work
due and no task pending: a lost task, a flushed Redis or a long wait in the database."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import redis
import structlog
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone
from pydantic import ValidationError as SchemaError

from connectors import http
from connectors.base import (
    ConnectorError,
    Done,
    Failed,
    FilePayload,
    NotSent,
    NotSupported,
    RateLimited,
    ReconcileOutcome,
    StepContext,
    StepOutcome,
    StepSpec,
    Waiting,
)
from portal import jobs
from portal.crypto import UNREADABLE_CREDENTIALS, InvalidToken
from portal.models import OPEN_STEP, Release, ReleaseEvent, ReleaseStatus, ReleaseStep, StepStatus
from portal.operations.metrics import step_finished

log = logging.getLogger(__name__)


OPEN_RELEASE = [ReleaseStatus.QUEUED, ReleaseStatus.RUNNING]
# A worker that reads another storage than the web wrote the upload to (its STORAGES differ).
MISSING_FILE = (
    "The release's file is not in the file storage this worker reads. Every web and worker host "
    "must use the same storage settings (docs/deploy.md); retry once they do."
)


def _conf(name: str) -> float:
    return settings.PORTAL_ENGINE[name]


def max_countdown() -> float:
    """The longest Celery countdown the engine uses: half the broker's visibility timeout
    (a longer one is redelivered by Redis, celery #2599), and never more than MAX_COUNTDOWN."""
    vt = float(settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600))
    return min(vt / 2, _conf("MAX_COUNTDOWN_SECONDS"))


def backoff(attempt: int, *, base: float, cap: float, retry_after: float | None = None) -> float:
    """Capped exponential backoff with full jitter; Retry-After, when given, is a floor."""
    delay = random.uniform(base / 2, min(cap, base * 2 ** max(0, attempt - 1)))  # noqa: S311 - jitter, not a secret
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap * 10))
    return delay


def poll_delay(checks: int, *, elapsed: float | None = None, expected: float | None = None) -> float:
    """Delay before the next check of a waiting step.

    With ``elapsed`` (seconds since the step started) the delay is 20 % of it, between
    POLL_INITIAL and POLL_MAX: a job that ends is noticed within max(POLL_INITIAL, 20 %
    of its run time). ``expected``, a connector's hint of the job's length, brings the
    check forward to that moment when it comes sooner.
    """
    low, high = _conf("POLL_INITIAL_SECONDS"), _conf("POLL_MAX_SECONDS")
    if elapsed is None:
        return min(high, low * 2 ** max(0, checks - 1))
    delay = min(high, max(low, 0.2 * elapsed))
    if expected is not None and expected > elapsed:
        delay = min(delay, max(0.2, expected - elapsed))
    return delay


def dispatch(release_id: int, *, countdown: float = 0) -> None:
    """Enqueue ``release_advance`` once the current transaction commits.

    The release records when the task is due (``dispatch_due_at``), so the sweeper
    leaves it alone while it is pending. A countdown longer than ``max_countdown()`` is
    not sent to Celery: the step's ``next_check_at`` holds it and the sweeper picks it up.
    If the broker is down, the release stays committed: the failure is logged and the
    sweeper dispatches it once Redis is back.
    """
    countdown = max(0.0, countdown)
    if countdown > max_countdown():
        Release.objects.filter(pk=release_id).update(dispatch_due_at=None)
        return
    Release.objects.filter(pk=release_id).update(dispatch_due_at=timezone.now() + timedelta(seconds=countdown))
    jobs.release_advance(release_id, countdown=countdown)


def _later(release_id: int, delay: float) -> None:
    """Come back to the release after ``delay``: a Celery countdown when it is short, else
    only the step's ``next_check_at`` in the database, for the sweeper's due-work scan."""
    if delay > max_countdown():
        Release.objects.filter(pk=release_id).update(dispatch_due_at=None)
        return
    dispatch(release_id, countdown=delay)


def event(release: Release, message: str, *, step: ReleaseStep | None = None, level: str = "info") -> None:
    ReleaseEvent.objects.create(release=release, step=step, level=level, message=message[:2000])
    # The same line in the logs, so a release can be followed by its id across hosts.
    extra = {"release_id": release.pk, "platform": release.platform, "step": step.name if step else None}
    log.log(logging.getLevelNamesMapping()[level.upper()], "release event: %s", message[:2000], extra=extra)


def _write(step: ReleaseStep, **fields: Any) -> bool:
    """Update the step only if this worker's claim still holds (its fencing token)."""
    written = ReleaseStep.objects.filter(pk=step.pk, fence=step.fence).update(**fields)
    if not written:
        log.warning(
            "release %s step %s: stale write discarded (fence %s lost): %s",
            step.release_id,
            step.name,
            step.fence,
            sorted(fields),
        )
    return bool(written)


class Heartbeat:
    """Extends a running step's lease while its call runs, from a thread of its own.

    It stops as soon as the claim is lost (the fence moved). The thread has its own
    database connection, closed when it ends.
    """

    def __init__(self, step: ReleaseStep) -> None:
        self.step_id, self.fence = step.pk, step.fence
        self.lease = _conf("LEASE_SECONDS")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{step.pk}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.lease / 4):
                extended = ReleaseStep.objects.filter(
                    pk=self.step_id, fence=self.fence, status=StepStatus.RUNNING
                ).update(lease_until=timezone.now() + timedelta(seconds=self.lease))
                if not extended:
                    log.warning("step %s: heartbeat stopped, the claim (fence %s) is gone", self.step_id, self.fence)
                    return
        except Exception:
            log.exception("step %s: heartbeat failed", self.step_id)
        finally:
            connection.close()


def release_advance(release_id: int) -> None:
    """Run the release's current step, and the next ones, until one waits or all are done."""
    # This task is running: the release has no task pending any more (unless a later one is due).
    Release.objects.filter(pk=release_id, dispatch_due_at__lte=timezone.now() + timedelta(seconds=1)).update(
        dispatch_due_at=None
    )
    for _ in range(100):  # a bound, not a limit any real plan reaches
        release = Release.objects.select_related("mapping__connection", "upload").filter(pk=release_id).first()
        if release is None or release.is_terminal:
            return
        step = release.steps.exclude(status=StepStatus.SUCCEEDED).order_by("position").first()
        if step is None:
            _finish(release, ReleaseStatus.SUCCEEDED)
            return
        if step.status in (StepStatus.FAILED, StepStatus.CANCELLED, StepStatus.SKIPPED):
            _finish(release, ReleaseStatus.CANCELLED if step.status == StepStatus.CANCELLED else ReleaseStatus.FAILED)
            return
        if release.cancel_requested:
            release_cancel_now(release)
            return
        if step.status == StepStatus.ATTENTION:
            _needs_attention(release)
            return
        progressed = _advance_step(release, step)
        if not progressed:
            return


def _claim(step: ReleaseStep, guard: Q, **fields: Any) -> bool:
    """Take the step with a conditional UPDATE that bumps its fence; on success the
    step object carries the new fence (and the caller's view of the fields)."""
    claimed = ReleaseStep.objects.filter(guard, pk=step.pk, fence=step.fence).update(fence=F("fence") + 1, **fields)
    if not claimed:
        return False
    step.refresh_from_db()
    return True


def _advance_step(release: Release, step: ReleaseStep) -> bool:
    """Act on one step. True when it finished and the next step may start now."""
    now = timezone.now()
    if step.status == StepStatus.RUNNING:
        if step.lease_until and step.lease_until > now:
            return False  # another worker is on it, and its heartbeat keeps the lease
        return _recover_interrupted(release, step)
    if step.next_check_at and step.next_check_at > now:
        _later(release.pk, (step.next_check_at - now).total_seconds())
        return False
    lease_until = now + timedelta(seconds=_conf("LEASE_SECONDS"))
    due = Q(next_check_at__isnull=True) | Q(next_check_at__lte=now)
    if step.status == StepStatus.PENDING:
        if not _claim(
            step,
            due & Q(status=StepStatus.PENDING),
            status=StepStatus.RUNNING,
            attempts=F("attempts") + 1,
            lease_until=lease_until,
            started_at=step.started_at or now,
        ):
            return False
        if release.status == ReleaseStatus.QUEUED:
            Release.objects.filter(pk=release.pk, status=ReleaseStatus.QUEUED).update(
                status=ReleaseStatus.RUNNING, started_at=now
            )
        if step.attempts == 1:
            event(release, f"{step.label}: started", step=step)
        # A non-idempotent call carries the step's idempotency key (connectors.http sends it).
        token = http.idempotency_key.set("" if step.idempotent else _idempotency_key(release, step))
        try:
            with Heartbeat(step):
                return _call(release, step, lambda connector, spec, ctx: connector.run_step(spec, ctx))
        finally:
            http.idempotency_key.reset(token)
    if step.status == StepStatus.WAITING:
        # A check is read-only; the lease in next_check_at keeps a duplicate task away.
        if not _claim(step, due & Q(status=StepStatus.WAITING), next_check_at=lease_until, checks=F("checks") + 1):
            return False
        if step.deadline_at and step.deadline_at <= now:
            return _past_deadline(release, step)
        return _call(release, step, lambda connector, spec, ctx: connector.check_step(spec, ctx))
    if step.status == StepStatus.UNKNOWN:
        if not _claim(step, due & Q(status=StepStatus.UNKNOWN), next_check_at=lease_until):
            return False
        return _reconcile(release, step)
    return False


def _recover_interrupted(release: Release, step: ReleaseStep) -> bool:
    """A worker died holding the step (its lease ran out). Re-run it only if that is
    harmless; otherwise ask the platform what happened."""
    expired = Q(status=StepStatus.RUNNING, lease_until__lte=timezone.now())
    if step.idempotent:
        if _claim(step, expired, status=StepStatus.PENDING, lease_until=None, next_check_at=None):
            event(release, f"{step.label}: interrupted, running it again (safe to repeat)", step=step, level="warning")
            return True
        return False
    if _claim(step, expired, status=StepStatus.UNKNOWN, lease_until=None, next_check_at=None):
        event(
            release,
            f"{step.label}: interrupted after the request may have reached the platform; "
            "asking the platform whether it happened",
            step=step,
            level="warning",
        )
        return True
    return False


StepCall = Callable[[Any, StepSpec, StepContext], StepOutcome]


def _spec(step: ReleaseStep) -> StepSpec:
    return StepSpec(step.name, step.label, step.idempotent)


def _call(release: Release, step: ReleaseStep, call: StepCall) -> bool:
    # Log lines and metrics of this call name the release, its platform and the step, whoever runs it.
    context = {"release_id": release.pk, "team_id": release.team_id, "platform": release.platform}
    with structlog.contextvars.bound_contextvars(**context, step=step.name):
        return _call_step(release, step, call)


def _call_step(release: Release, step: ReleaseStep, call: StepCall) -> bool:
    try:
        with release.mapping.connection.connector() as connector:
            outcome = call(connector, _spec(step), _context(release, step))
    except ConnectorError as exc:
        return _on_error(release, step, exc)
    except InvalidToken:
        _fail_step(release, step, UNREADABLE_CREDENTIALS)
        return False
    except SchemaError as exc:
        return _on_schema_error(release, step, exc)
    except FileNotFoundError:
        _fail_step(release, step, MISSING_FILE)
        return False
    except Exception as exc:  # a bug or a bad configuration: fail clearly, never loop
        log.exception("release %s step %s crashed", release.pk, step.name)
        _fail_step(release, step, f"Internal error ({type(exc).__name__}); the team has the details in the logs.")
        return False
    return _on_outcome(release, step, outcome)


def _on_schema_error(release: Release, step: ReleaseStep, exc: SchemaError) -> bool:
    # The mapping's target (or the saved parameters) changed under a running release.
    problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'parameters'}: {e['msg']}" for e in exc.errors())
    _fail_step(
        release,
        step,
        f"The mapping's target or this release's parameters no longer validate ({problems}). "
        "Fix the mapping, then retry.",
    )
    return False


def _reconcile(release: Release, step: ReleaseStep) -> bool:
    """Ask the platform whether the lost call happened, and go on from its answer."""
    try:
        with release.mapping.connection.connector() as connector:
            answer: ReconcileOutcome = connector.reconcile_step(_spec(step), _context(release, step))
    except NotSupported as exc:
        return _attention(release, step, exc.message)
    except ConnectorError as exc:
        if exc.permanent:
            return _attention(release, step, f"The platform could not say whether it happened: {exc.message}")
        failures = step.transient_failures + 1
        if failures >= _conf("MAX_ATTEMPTS"):
            return _attention(
                release, step, f"The platform could not be asked after {failures} attempts: {exc.message}"
            )
        delay = backoff(failures, base=_conf("RETRY_BASE_SECONDS"), cap=_conf("RETRY_MAX_SECONDS"))
        if _write(
            step,
            transient_failures=failures,
            next_check_at=timezone.now() + timedelta(seconds=delay),
            message=f"Asking the platform again in {delay:.0f} s: {exc.message}"[:500],
        ):
            _later(release.pk, delay)
        return False
    except SchemaError as exc:
        return _on_schema_error(release, step, exc)
    except Exception as exc:
        log.exception("release %s step %s: reconcile crashed", release.pk, step.name)
        return _attention(release, step, f"Could not ask the platform ({type(exc).__name__})")
    if isinstance(answer, NotSent):
        if not _write(step, status=StepStatus.PENDING, next_check_at=None, lease_until=None, transient_failures=0):
            return False
        why = f" ({answer.message})" if answer.message else ""
        event(release, f"{step.label}: the platform shows it was not done{why}; sending it", step=step)
        return True
    event(release, f"{step.label}: the platform shows it happened; continuing from there", step=step)
    return _on_outcome(release, step, answer)


def _attention(release: Release, step: ReleaseStep, reason: str) -> bool:
    message = (
        f"Needs attention: the request may have reached the platform and it cannot say whether it did "
        f"({reason}). Check the platform, then choose “It happened — continue” or “Send again”."
    )
    if not _write(step, status=StepStatus.ATTENTION, next_check_at=None, lease_until=None, message=message[:500]):
        return False
    event(release, f"{step.label}: {message}", step=step, level="error")
    _needs_attention(release)
    return False


def _needs_attention(release: Release) -> None:
    changed = Release.objects.filter(pk=release.pk, status__in=OPEN_RELEASE).update(
        status=ReleaseStatus.ATTENTION, dispatch_due_at=None
    )
    if changed:
        jobs.notify_release(release.pk)


def _context(release: Release, step: ReleaseStep) -> StepContext:
    connector_class = release.mapping.connection.connector_class
    target = connector_class.Target.model_validate(release.mapping.target)
    params = connector_class.Params.model_validate(release.params, context={"target": target})
    results = {
        s.name: {**s.output, "remote_ref": s.remote_ref}
        for s in release.steps.filter(status=StepStatus.SUCCEEDED, position__lt=step.position)
    }
    return StepContext(
        target=target,
        params=params,
        release_key=release.key.hex,
        file=_payload(release),
        results=results,
        remote_ref=step.remote_ref,
        output=step.output,
        checks=step.checks,
        idempotency_key=_idempotency_key(release, step),
        started_at=step.started_at.timestamp() if step.started_at else None,
    )


def _idempotency_key(release: Release, step: ReleaseStep) -> str:
    """Stable across retries of the step; new only when a person asks to send it again."""
    return f"{release.key.hex}-{step.position}" + (f"-{step.sends}" if step.sends else "")


def _payload(release: Release) -> FilePayload | None:
    upload = release.upload
    if upload is None:
        return None
    storage, name = upload.file.storage, upload.file.name or ""
    return FilePayload(
        name=upload.original_name,
        size=upload.size,
        sha256=upload.sha256,
        content_type=upload.content_type or "application/octet-stream",
        open=lambda: storage.open(name, "rb"),
    )


def _deadline(release: Release, step: ReleaseStep, now: datetime) -> datetime:
    seconds = release.mapping.connection.connector_class.wait_deadline(step.name, release.mapping.wait_deadlines)
    return (step.started_at or now) + timedelta(seconds=seconds)


def _on_outcome(release: Release, step: ReleaseStep, outcome: StepOutcome) -> bool:
    now = timezone.now()
    if outcome.remote_ref and outcome.remote_ref != step.remote_ref:
        # First thing: the platform's reference, so a crash after this line loses nothing.
        if not _write(step, remote_ref=outcome.remote_ref[:300]):
            return False
        step.remote_ref = outcome.remote_ref[:300]
    # A status word the connector does not know (Waiting.warning): said once per new word.
    if (getattr(outcome, "warning", "") or getattr(outcome, "unrecognised", False)) and (
        outcome.remote_status != step.remote_status
    ):
        event(
            release,
            f"{step.label}: the platform reports the status “{outcome.remote_status}”, which the portal does not "
            f"know; {_treated_as(outcome)}",
            step=step,
            level="warning",
        )
    common = {
        "remote_status": outcome.remote_status[:100],
        "output": {**step.output, **outcome.output},
        "transient_failures": 0,
        "lease_until": None,
    }
    if isinstance(outcome, Done):
        if not _write(
            step,
            status=StepStatus.SUCCEEDED,
            finished_at=now,
            next_check_at=None,
            message=outcome.message[:500],
            **common,
        ):
            return False
        event(release, f"{step.label}: succeeded" + (f" ({outcome.message})" if outcome.message else ""), step=step)
        step_finished(step, platform=release.platform)
        return True
    if isinstance(outcome, Failed):
        if not _write(step, **common):
            return False
        _fail_step(release, step, outcome.message or "The platform reported a failure")
        return False
    if isinstance(outcome, Waiting):
        first = step.status != StepStatus.WAITING
        deadline = step.deadline_at or _deadline(release, step, now)
        elapsed = (now - step.started_at).total_seconds() if step.started_at else None
        if outcome.check_after is not None:
            delay = outcome.check_after
        else:
            delay = poll_delay(step.checks + 1, elapsed=elapsed, expected=outcome.expected_seconds)
        # Check once more right at the deadline rather than long after it.
        delay = max(0.0, min(delay, (deadline - now).total_seconds()))
        message = outcome.message[:500]
        if not _write(
            step,
            status=StepStatus.WAITING,
            next_check_at=now + timedelta(seconds=delay),
            deadline_at=deadline,
            message=message,
            **common,
        ):
            return False
        if first:
            event(release, f"{step.label}: accepted by the platform (ref {step.remote_ref})", step=step)
        elif message and message != step.message:
            event(release, f"{step.label}: {message}", step=step)
        _later(release.pk, delay)
        return False
    raise TypeError(f"unexpected step outcome {outcome!r}")


def _treated_as(outcome: StepOutcome) -> str:
    if isinstance(outcome, Done):
        return "treated as finished"
    if isinstance(outcome, Failed):
        return "treated as failed"
    return "still followed until its deadline"


def _past_deadline(release: Release, step: ReleaseStep) -> bool:
    waited = (timezone.now() - step.started_at).total_seconds() if step.started_at else 0.0
    status = f"still “{step.remote_status}”" if step.remote_status else "not finished"
    _fail_step(
        release,
        step,
        f"Gave up waiting: the platform's job (ref {step.remote_ref or '-'}) was {status} after "
        f"{_human(waited)}, past this step's deadline. It may still be running there: check the platform.",
    )
    return False


def _human(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _on_error(release: Release, step: ReleaseStep, exc: ConnectorError) -> bool:
    running = step.status == StepStatus.RUNNING
    if running and exc.maybe_sent and not step.idempotent:
        # The request may have reached the platform: never send it again blindly.
        if not _write(
            step,
            status=StepStatus.UNKNOWN,
            lease_until=None,
            next_check_at=None,
            message=f"Answer lost ({exc.message}); asking the platform whether it happened"[:500],
        ):
            return False
        event(
            release,
            f"{step.label}: {exc.message} — the request may have reached the platform; asking it whether it happened",
            step=step,
            level="warning",
        )
        return True
    if exc.permanent:
        _fail_step(release, step, exc.message)
        return False
    failures = step.transient_failures + 1
    if failures >= _conf("MAX_ATTEMPTS"):
        _fail_step(release, step, f"Gave up after {failures} attempts: {exc.message}")
        return False
    retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
    delay = backoff(failures, base=_conf("RETRY_BASE_SECONDS"), cap=_conf("RETRY_MAX_SECONDS"), retry_after=retry_after)
    # A run that failed transiently goes back to pending (the platform refused it);
    # a check stays waiting. Either way the engine comes back after the delay.
    status = StepStatus.PENDING if running else StepStatus.WAITING
    if not _write(
        step,
        status=status,
        transient_failures=failures,
        lease_until=None,
        next_check_at=timezone.now() + timedelta(seconds=delay),
        message=f"Retrying in {delay:.0f} s: {exc.message}"[:500],
    ):
        return False
    event(release, f"{step.label}: {exc.message} — retry {failures} in {delay:.1f} s", step=step, level="warning")
    _later(release.pk, delay)
    return False


def _fail_step(release: Release, step: ReleaseStep, message: str) -> None:
    now = timezone.now()
    with transaction.atomic():
        if not _write(
            step, status=StepStatus.FAILED, error=message, finished_at=now, lease_until=None, next_check_at=None
        ):
            return
        release.steps.filter(status=StepStatus.PENDING, position__gt=step.position).update(status=StepStatus.SKIPPED)
        event(release, f"{step.label}: failed — {message}", step=step, level="error")
        Release.objects.filter(pk=release.pk).update(error=f"{step.label}: {message}")
    step_finished(step, platform=release.platform)
    _finish(release, ReleaseStatus.FAILED)


def _finish(release: Release, status: str) -> None:
    finished = Release.objects.filter(pk=release.pk, status__in=[*OPEN_RELEASE, ReleaseStatus.ATTENTION]).update(
        status=status, finished_at=timezone.now(), dispatch_due_at=None
    )
    if finished:
        event(
            release,
            f"Release {ReleaseStatus(status).label.lower()}",
            level="error" if status == ReleaseStatus.FAILED else "info",
        )
        jobs.notify_release(release.pk)


def step_resolve(*, release: Release, step: ReleaseStep, happened: bool, who: str) -> None:
    """Apply a person's decision on a step that needs attention (the service audits it).

    ``happened``: the step counts as done on the platform (followed further if it has a
    remote job to follow); else it is sent again, with a new idempotency key.
    """
    now = timezone.now()
    if happened:
        if step.remote_ref:
            fields: dict[str, Any] = {"status": StepStatus.WAITING, "next_check_at": now}
        else:
            fields = {"status": StepStatus.SUCCEEDED, "finished_at": now, "next_check_at": None}
        fields["message"] = f"Confirmed by {who}: it happened on the platform"[:500]
        text = f"{step.label}: {who} confirmed it happened on the platform; continuing"
    else:
        fields = {"status": StepStatus.PENDING, "next_check_at": None, "sends": F("sends") + 1}
        fields["message"] = f"Sent again at the request of {who}"[:500]
        text = f"{step.label}: {who} asked to send it again"
    if not _claim(step, Q(status=StepStatus.ATTENTION), lease_until=None, transient_failures=0, **fields):
        return
    Release.objects.filter(pk=release.pk, status=ReleaseStatus.ATTENTION).update(status=ReleaseStatus.RUNNING)
    event(release, text, step=step, level="warning")
    dispatch(release.pk)


def release_cancel_now(release: Release) -> None:
    """Stop a release: steps not started are cancelled; a waiting remote job is cancelled on
    the platform where it has an API for that, else it is no longer followed, with the reason."""
    for step in release.steps.filter(status__in=OPEN_STEP).order_by("position"):
        reason, output = "Cancelled before it started", step.output
        if step.status == StepStatus.WAITING and step.remote_ref:
            try:
                with release.mapping.connection.connector() as connector:
                    answer = connector.cancel_step(_spec(step), _context(release, step))
                if isinstance(answer, Failed):
                    output = {**step.output, **answer.output}
                    answer = answer.message
                reason = answer or "Cancelled on the platform"
            except NotSupported as exc:
                reason = f"Cancel requested; no longer followed ({exc.message})"
            except ConnectorError as exc:
                reason = f"Cancel requested; the platform did not confirm ({exc.message}); no longer followed"
        elif step.status in (StepStatus.RUNNING, StepStatus.UNKNOWN, StepStatus.ATTENTION):
            reason = "Cancel requested while the request was in flight; no longer followed"
        # fence + 1: a worker still on the step has its late writes discarded.
        ReleaseStep.objects.filter(pk=step.pk, status__in=OPEN_STEP).update(
            status=StepStatus.CANCELLED,
            error=reason,
            output=output,
            finished_at=timezone.now(),
            next_check_at=None,
            lease_until=None,
            fence=F("fence") + 1,
        )
        event(release, f"{step.label}: {reason}", step=step, level="warning")
    _finish(release, ReleaseStatus.CANCELLED)


def queue_depth() -> int | None:
    """Tasks waiting in the release queue of the broker, or None when Redis does not answer."""
    try:
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2, socket_connect_timeout=2)
        return int(client.llen(settings.CELERY_TASK_DEFAULT_QUEUE))
    except redis.RedisError:
        return None


def release_sweep() -> int:
    """Dispatch every open release that has work due and no task pending for it.

    Work is due when a step's ``next_check_at`` has come (a long wait kept in the
    database, a retry), a pending step was never picked up, or a running step's lease
    ran out (its worker died). A release counts as having a task pending while its
    ``dispatch_due_at`` is set and less than the grace period late; past that, the task
    is taken as lost when the broker's queue is empty (Redis restarted, FLUSHALL) or
    when it is LOST_SECONDS late. A backlog therefore never makes the sweeper add tasks.
    """
    now = timezone.now()
    grace = now - timedelta(seconds=_conf("SWEEP_GRACE_SECONDS"))
    due = Q(status__in=[StepStatus.PENDING, StepStatus.WAITING, StepStatus.UNKNOWN]) & (
        Q(next_check_at__isnull=True) | Q(next_check_at__lte=now)
    ) | Q(status=StepStatus.RUNNING, lease_until__lt=now)
    no_task = Q(release__dispatch_due_at__isnull=True)
    depth = queue_depth()
    if depth == 0:
        no_task |= Q(release__dispatch_due_at__lt=grace)
    else:
        no_task |= Q(release__dispatch_due_at__lt=now - timedelta(seconds=_conf("LOST_SECONDS")))
    limit = int(_conf("SWEEP_BATCH"))
    # Only a release's current step counts: the first one not succeeded.
    earlier_open = ReleaseStep.objects.filter(release=OuterRef("release"), position__lt=OuterRef("position")).exclude(
        status=StepStatus.SUCCEEDED
    )
    ids = set(
        ReleaseStep.objects.filter(due, no_task, ~Exists(earlier_open), release__status__in=OPEN_RELEASE)
        .order_by()
        .values_list("release_id", flat=True)
        .distinct()[:limit]
    )
    # An open release none of whose steps is open: only its last advance (lost) was missing.
    open_step = ReleaseStep.objects.filter(release=OuterRef("pk"), status__in=OPEN_STEP)
    ids |= set(
        Release.objects.filter(status__in=OPEN_RELEASE)
        .filter(Q(dispatch_due_at__isnull=True) | Q(dispatch_due_at__lt=grace))
        .exclude(Exists(open_step))
        .values_list("pk", flat=True)[:limit]
    )
    # A cancel request on a release whose step is mid-wait is handled at the next advance.
    cancel_no_task = Q(dispatch_due_at__isnull=True) | Q(dispatch_due_at__lt=grace)
    ids |= set(
        Release.objects.filter(
            cancel_no_task, status__in=[*OPEN_RELEASE, ReleaseStatus.ATTENTION], cancel_requested=True
        ).values_list("pk", flat=True)[:limit]
    )
    for release_id in ids:
        dispatch(release_id)
    if ids:
        log.info("sweeper dispatched %d release(s) (queue depth %s)", len(ids), depth)
    return len(ids)
