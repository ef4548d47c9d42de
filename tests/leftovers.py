"""Processes that a killed test run left behind: found by a mark in their environment, and stopped.

Every process the suite starts (the simulators, the S3 server, the Celery worker, the rehearsal's
web, worker, beat, Redis and nginx tiers) inherits ``MARK=<pid>:<start time>`` of the pytest
process that started it. A run killed hard (a timeout, SIGKILL) leaves them running: a Celery
worker still on the test database and Redis, a rehearsal's beat still sweeping the test database.
They take the next run's work with their own, dead, configuration: a leftover rehearsal sweeper
dispatched the next rehearsal's release to its own worker, whose S3 server was gone, and the release
failed. So a run first stops every marked process whose pytest is gone. A run still going (its
pytest alive, in another checkout) keeps its processes. The rehearsal's tiers also die with the
pytest that started them (``die_with_parent``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from pathlib import Path

MARK = "DATA_PORTAL_TEST_RUN"  # no DJANGO_/PORTAL_ prefix: the rehearsal's tiers keep it (tests/cluster)


def _started(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def own_mark() -> str:
    return f"{os.getpid()}:{_started(os.getpid())}"


def _alive(mark: str) -> bool:
    pid, _, started = mark.partition(":")
    return pid.isdigit() and _started(int(pid)) == started


def _mark_of(pid: int) -> str | None:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone, or not ours to read
        return None
    prefix = MARK.encode() + b"="
    for variable in environ.split(b"\0"):
        if variable.startswith(prefix):
            return variable[len(prefix) :].decode(errors="replace")
    return None


def stop_leftovers(current: str) -> list[int]:
    """SIGKILL every process marked by a pytest that is no longer running; the pids stopped."""
    stopped = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        mark = _mark_of(pid)
        if mark is None or mark == current or _alive(mark):
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            # A session leader (a rehearsal tier): its whole group, nginx's and gunicorn's workers too.
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
            stopped.append(pid)
    return stopped


def die_with_parent() -> None:
    """``preexec_fn`` of a child: the kernel SIGKILLs it when the pytest that started it dies.

    For redis-server and nginx above all, which rewrite their process title over their environment,
    so ``stop_leftovers`` cannot find their mark."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
