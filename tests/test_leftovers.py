"""A killed run's processes are found by their mark and stopped; a live run's are left alone."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from .leftovers import MARK, _started, own_mark, stop_leftovers


def _sleeper(mark: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "60"], env={**os.environ, MARK: mark})


def _gone(process: subprocess.Popen[bytes], timeout: float = 5.0) -> bool:
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def test_a_dead_runs_processes_are_stopped_and_live_runs_are_kept():
    dead_run = _sleeper("999999999:1")  # no such pytest any more
    this_run = _sleeper(own_mark())
    parent = os.getppid()
    other_live_run = _sleeper(f"{parent}:{_started(parent)}")  # a run still going elsewhere
    time.sleep(0.2)  # the children have exec'd: their environment is the sleeper's
    try:
        stopped = stop_leftovers(own_mark())
        assert dead_run.pid in stopped
        assert _gone(dead_run)
        assert this_run.pid not in stopped and other_live_run.pid not in stopped
        assert this_run.poll() is None and other_live_run.poll() is None
    finally:
        for process in (dead_run, this_run, other_live_run):
            process.kill()
            process.wait()


def test_a_child_started_with_die_with_parent_dies_with_its_parent():
    # A parent that starts a sleeper with die_with_parent, prints its pid and exits at once.
    script = (
        "import subprocess, sys\n"
        "from tests.leftovers import die_with_parent\n"
        "child = subprocess.Popen(['sleep', '60'], preexec_fn=die_with_parent)\n"
        "print(child.pid, flush=True)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=30)
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _started(pid) is not None and not _zombie(pid):
        time.sleep(0.05)
    assert _started(pid) is None or _zombie(pid), f"the sleeper {pid} outlived its parent"


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
