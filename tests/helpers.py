from __future__ import annotations

import time

from portal.engine.core import release_advance


def wait_for(predicate, *, timeout: float = 20.0, interval: float = 0.2, message: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


def drive_release(release, *, timeout: float = 15.0, on_tick=None):  # type: ignore[no-untyped-def]
    """Advance a release as a worker would until it ends, making every scheduled check
    due at once (for tests that run the engine in-process). ``on_tick(release)`` runs
    after each advance, e.g. to read the live page."""
    from django.utils import timezone

    from portal.models import ReleaseStep, StepStatus

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        release_advance(release.pk)
        release.refresh_from_db()
        if on_tick is not None:
            on_tick(release)
        if release.is_terminal:
            return release
        time.sleep(0.1)
        ReleaseStep.objects.filter(release=release, status__in=[StepStatus.WAITING, StepStatus.PENDING]).update(
            next_check_at=timezone.now()
        )
    raise AssertionError(f"release still {release.status} after {timeout} s")
