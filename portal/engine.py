"""The release engine: the one place where the steps of every platform's releases run.

``release_advance(release_id)`` moves a release as far as it can without waiting, then
returns; a Celery task calls it and, when a step waits on the platform, is enqueued
again with a countdown. No worker ever sleeps while a platform works.

Safety rules:

- A step is *claimed* with a conditional UPDATE (status and time guards), so two tasks
  for the same release (a duplicate, or the sweeper's) never run a step twice.
- A claimed step carries a lease. A worker that dies mid-call leaves the lease to run
  out; the sweeper then re-dispatches the release. An interrupted step is re-run only
  if the connector marked it idempotent; otherwise it fails and says so: a mutating
  call is never repeated blindly.
- When ``run_step`` returns a remote reference, it is saved first, before events or
  anything else.
- Transient errors (5xx, 429, timeouts, unreachable) are retried with capped, jittered
  backoff that honours Retry-After; permanent errors fail the step at once.

``release_sweep()`` (Celery beat) re-dispatches every release whose next check is
overdue, so a lost task or a restarted Redis loses no release.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from pydantic import ValidationError as SchemaError

from connectors.base import (
    ConnectorError,
    Done,
    Failed,
    FilePayload,
    NotSupported,
    RateLimited,
    StepContext,
    StepOutcome,
    StepSpec,
    Waiting,
)

from . import metrics
from .crypto import UNREADABLE_CREDENTIALS, InvalidToken
from .models import (
    OPEN_STEP,
    TERMINAL_RELEASE,
    Release,
    ReleaseEvent,
    ReleaseStatus,
    ReleaseStep,
    StepStatus,
)

log = logging.getLogger(__name__)


def _conf(name: str) -> float:
    return settings.PORTAL_ENGINE[name]


def backoff(attempt: int, *, base: float, cap: float, retry_after: float | None = None) -> float:
    """Capped exponential backoff with full jitter; Retry-After, when given, is a floor."""
    delay = random.uniform(base / 2, min(cap, base * 2 ** max(0, attempt - 1)))
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap * 10))
    return delay


def poll_delay(checks: int) -> float:
    """Delay before the next check of a waiting step: starts short, doubles, capped."""
    return min(_conf("POLL_MAX_SECONDS"), _conf("POLL_INITIAL_SECONDS") * 2 ** max(0, checks - 1))


# Scheduling. The task module imports this module, so the task is looked up lazily.


def dispatch(release_id: int, *, countdown: float = 0) -> None:
    """Enqueue ``release_advance`` once the current transaction commits."""
    from .tasks import release_advance_task

    transaction.on_commit(lambda: release_advance_task.apply_async((release_id,), countdown=max(0.0, countdown)))


def event(release: Release, message: str, *, step: ReleaseStep | None = None, level: str = "info") -> None:
    ReleaseEvent.objects.create(release=release, step=step, level=level, message=message[:2000])
    # The same line in the logs, so a release can be followed by its id across hosts.
    extra = {"release_id": release.pk, "platform": release.platform, "step": step.name if step else None}
    log.log(logging.getLevelNamesMapping()[level.upper()], "release event: %s", message[:2000], extra=extra)


# The engine


def release_advance(release_id: int) -> None:
    """Run the release's current step, and the next ones, until one waits or all are done."""
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
        progressed = _advance_step(release, step)
        if not progressed:
            return


def _advance_step(release: Release, step: ReleaseStep) -> bool:
    """Act on one step. True when it finished and the next step may start now."""
    now = timezone.now()
    if step.status == StepStatus.RUNNING:
        if step.lease_until and step.lease_until > now:
            return False  # another worker is on it
        return _recover_interrupted(release, step)
    if step.next_check_at and step.next_check_at > now:
        dispatch(release.pk, countdown=(step.next_check_at - now).total_seconds())
        return False
    lease_until = now + timedelta(seconds=_conf("LEASE_SECONDS"))
    due = Q(next_check_at__isnull=True) | Q(next_check_at__lte=now)
    if step.status == StepStatus.PENDING:
        claimed = ReleaseStep.objects.filter(due, pk=step.pk, status=StepStatus.PENDING).update(
            status=StepStatus.RUNNING,
            attempts=F("attempts") + 1,
            lease_until=lease_until,
            started_at=step.started_at or now,
        )
        if not claimed:
            return False
        if release.status == ReleaseStatus.QUEUED:
            Release.objects.filter(pk=release.pk, status=ReleaseStatus.QUEUED).update(
                status=ReleaseStatus.RUNNING, started_at=now
            )
        step.refresh_from_db()
        if step.attempts == 1:
            event(release, f"{step.label}: started", step=step)
        return _call(release, step, lambda connector, spec, ctx: connector.run_step(spec, ctx))
    if step.status == StepStatus.WAITING:
        # A check is read-only; the lease in next_check_at keeps a duplicate task away.
        claimed = ReleaseStep.objects.filter(due, pk=step.pk, status=StepStatus.WAITING).update(
            next_check_at=lease_until, checks=F("checks") + 1
        )
        if not claimed:
            return False
        step.refresh_from_db()
        return _call(release, step, lambda connector, spec, ctx: connector.check_step(spec, ctx))
    return False


def _recover_interrupted(release: Release, step: ReleaseStep) -> bool:
    """A worker died holding the step. Re-run it only if that is harmless."""
    if step.idempotent:
        ReleaseStep.objects.filter(pk=step.pk, status=StepStatus.RUNNING).update(
            status=StepStatus.PENDING, lease_until=None, next_check_at=None
        )
        event(release, f"{step.label}: interrupted, running it again (safe to repeat)", step=step, level="warning")
        return True
    _fail_step(
        release,
        step,
        "Interrupted after the request may have reached the platform. It was not sent again, "
        "to avoid doing it twice: check the platform, then retry the release.",
    )
    return False


StepCall = Callable[[Any, StepSpec, StepContext], StepOutcome]


def _call(release: Release, step: ReleaseStep, call: StepCall) -> bool:
    # Log lines and metrics of this call name the release, its platform and the step, whoever runs it.
    context = {"release_id": release.pk, "team_id": release.team_id, "platform": release.platform}
    with structlog.contextvars.bound_contextvars(**context, step=step.name):
        return _call_step(release, step, call)


def _call_step(release: Release, step: ReleaseStep, call: StepCall) -> bool:
    try:
        connector = release.mapping.connection.connector()
        ctx = _context(release, step)
        outcome = call(connector, StepSpec(step.name, step.label, step.idempotent), ctx)
    except ConnectorError as exc:
        return _on_error(release, step, exc)
    except InvalidToken:
        _fail_step(release, step, UNREADABLE_CREDENTIALS)
        return False
    except SchemaError as exc:
        # The mapping's target (or the saved parameters) changed under a running release.
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'parameters'}: {e['msg']}" for e in exc.errors())
        _fail_step(
            release,
            step,
            f"The mapping's target or this release's parameters no longer validate ({problems}). Fix the mapping, then retry.",
        )
        return False
    except Exception as exc:  # a bug or a bad configuration: fail clearly, never loop
        log.exception("release %s step %s crashed", release.pk, step.name)
        _fail_step(release, step, f"Internal error ({type(exc).__name__}); the team has the details in the logs.")
        return False
    return _on_outcome(release, step, outcome)


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
    )


def _payload(release: Release) -> FilePayload | None:
    upload = release.upload
    if upload is None:
        return None
    storage, name = upload.file.storage, upload.file.name
    return FilePayload(
        name=upload.original_name,
        size=upload.size,
        sha256=upload.sha256,
        content_type=upload.content_type or "application/octet-stream",
        open=lambda: storage.open(name, "rb"),
    )


def _on_outcome(release: Release, step: ReleaseStep, outcome: StepOutcome) -> bool:
    now = timezone.now()
    if outcome.remote_ref and outcome.remote_ref != step.remote_ref:
        # First thing: the platform's reference, so a crash after this line loses nothing.
        ReleaseStep.objects.filter(pk=step.pk).update(remote_ref=outcome.remote_ref[:300])
        step.remote_ref = outcome.remote_ref[:300]
    common = {
        "remote_status": outcome.remote_status[:100],
        "output": {**step.output, **outcome.output},
        "transient_failures": 0,
        "lease_until": None,
    }
    if isinstance(outcome, Done):
        ReleaseStep.objects.filter(pk=step.pk).update(
            status=StepStatus.SUCCEEDED, finished_at=now, next_check_at=None, message=outcome.message[:500], **common
        )
        event(release, f"{step.label}: succeeded" + (f" ({outcome.message})" if outcome.message else ""), step=step)
        metrics.step_finished(step, platform=release.platform)
        return True
    if isinstance(outcome, Failed):
        ReleaseStep.objects.filter(pk=step.pk).update(**common)
        _fail_step(release, step, outcome.message or "The platform reported a failure")
        return False
    if isinstance(outcome, Waiting):
        delay = outcome.check_after if outcome.check_after is not None else poll_delay(step.checks + 1)
        first = step.status == StepStatus.RUNNING
        message = outcome.message[:500]
        ReleaseStep.objects.filter(pk=step.pk).update(
            status=StepStatus.WAITING, next_check_at=now + timedelta(seconds=delay), message=message, **common
        )
        if first:
            event(release, f"{step.label}: accepted by the platform (ref {step.remote_ref})", step=step)
        elif message and message != step.message:
            event(release, f"{step.label}: {message}", step=step)
        dispatch(release.pk, countdown=delay)
        return False
    raise TypeError(f"unexpected step outcome {outcome!r}")


def _on_error(release: Release, step: ReleaseStep, exc: ConnectorError) -> bool:
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
    status = StepStatus.PENDING if step.status == StepStatus.RUNNING else StepStatus.WAITING
    ReleaseStep.objects.filter(pk=step.pk).update(
        status=status,
        transient_failures=failures,
        lease_until=None,
        next_check_at=timezone.now() + timedelta(seconds=delay),
        message=f"Retrying in {delay:.0f} s: {exc.message}"[:500],
    )
    event(release, f"{step.label}: {exc.message} — retry {failures} in {delay:.1f} s", step=step, level="warning")
    dispatch(release.pk, countdown=delay)
    return False


def _fail_step(release: Release, step: ReleaseStep, message: str) -> None:
    now = timezone.now()
    with transaction.atomic():
        ReleaseStep.objects.filter(pk=step.pk).update(
            status=StepStatus.FAILED, error=message, finished_at=now, lease_until=None, next_check_at=None
        )
        release.steps.filter(status=StepStatus.PENDING, position__gt=step.position).update(status=StepStatus.SKIPPED)
        event(release, f"{step.label}: failed — {message}", step=step, level="error")
        Release.objects.filter(pk=release.pk).update(error=f"{step.label}: {message}")
    metrics.step_finished(step, platform=release.platform)
    _finish(release, ReleaseStatus.FAILED)


def _finish(release: Release, status: str) -> None:
    finished = Release.objects.filter(pk=release.pk, status__in=[ReleaseStatus.QUEUED, ReleaseStatus.RUNNING]).update(
        status=status, finished_at=timezone.now()
    )
    if finished:
        event(
            release,
            f"Release {ReleaseStatus(status).label.lower()}",
            level="error" if status == ReleaseStatus.FAILED else "info",
        )
        from .tasks import notify_release_task

        transaction.on_commit(lambda: notify_release_task.delay(release.pk))


# Cancel


def release_cancel_now(release: Release) -> None:
    """Stop a release: steps not started are cancelled; a waiting remote job is cancelled on
    the platform where it has an API for that, else it is no longer followed, with the reason."""
    for step in release.steps.filter(status__in=OPEN_STEP).order_by("position"):
        reason, output = "Cancelled before it started", step.output
        if step.status == StepStatus.WAITING and step.remote_ref:
            try:
                connector = release.mapping.connection.connector()
                answer = connector.cancel_step(
                    StepSpec(step.name, step.label, step.idempotent), _context(release, step)
                )
                if isinstance(answer, Failed):
                    output = {**step.output, **answer.output}
                    answer = answer.message
                reason = answer or "Cancelled on the platform"
            except NotSupported as exc:
                reason = f"Cancel requested; no longer followed ({exc.message})"
            except ConnectorError as exc:
                reason = f"Cancel requested; the platform did not confirm ({exc.message}); no longer followed"
        elif step.status == StepStatus.RUNNING:
            reason = "Cancel requested while the request was in flight; no longer followed"
        ReleaseStep.objects.filter(pk=step.pk, status__in=OPEN_STEP).update(
            status=StepStatus.CANCELLED,
            error=reason,
            output=output,
            finished_at=timezone.now(),
            next_check_at=None,
            lease_until=None,
        )
        event(release, f"{step.label}: {reason}", step=step, level="warning")
    _finish(release, ReleaseStatus.CANCELLED)


# Sweeper


def release_sweep() -> int:
    """Re-dispatch every open release whose step is overdue or whose worker lease ran out."""
    now = timezone.now()
    grace = now - timedelta(seconds=_conf("SWEEP_GRACE_SECONDS"))
    open_releases = [ReleaseStatus.QUEUED, ReleaseStatus.RUNNING]
    overdue = (
        Q(status__in=[StepStatus.PENDING, StepStatus.WAITING], next_check_at__lt=grace)
        | Q(status=StepStatus.PENDING, next_check_at__isnull=True, release__created_at__lt=grace)
        | Q(status=StepStatus.RUNNING, lease_until__lt=now)
    )
    ids = set(
        ReleaseStep.objects.filter(overdue, release__status__in=open_releases).values_list("release_id", flat=True)[
            :1000
        ]
    )
    # A cancel request on a release whose step is mid-wait is handled at the next advance.
    ids |= set(
        Release.objects.filter(status__in=open_releases, cancel_requested=True).values_list("pk", flat=True)[:1000]
    )
    for release_id in ids:
        dispatch(release_id)
    if ids:
        log.info("sweeper re-dispatched %d release(s)", len(ids))
    return len(ids)


__all__ = [
    "TERMINAL_RELEASE",
    "backoff",
    "dispatch",
    "poll_delay",
    "release_advance",
    "release_cancel_now",
    "release_sweep",
]
