"""Start the bundled platform simulators in a process of their own, and drive their control API."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SimulatorProcess:
    """The simulators on a free loopback port; ``url(slug)`` is a platform's base URL."""

    def __init__(self, delay: float = 0.2):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.client = httpx.Client(timeout=5)  # one keep-alive connection for control calls
        # The simulators keep uploaded files on disk: in a folder removed when they stop.
        self.tmpdir = tempfile.mkdtemp(prefix="simulators-")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "simulators", "--port", str(self.port), "--delay", str(delay)],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": self.tmpdir},
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(self.base + "/", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                if self.process.poll() is not None:
                    raise RuntimeError("the simulator process exited") from None
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the simulators did not start in 20 s")

    def url(self, slug: str) -> str:
        return f"{self.base}/{slug}"

    def fail(self, slug: str, mode: str, **options: object) -> None:
        self.client.post(f"{self.url(slug)}/_sim/fail", json={"mode": mode, **options}).raise_for_status()

    def config(self, slug: str, **options: object) -> None:
        self.client.post(f"{self.url(slug)}/_sim/config", json=options).raise_for_status()

    def reset(self, slug: str) -> None:
        self.client.post(f"{self.url(slug)}/_sim/reset").raise_for_status()

    def state(self, slug: str) -> dict:
        return self.client.get(f"{self.url(slug)}/_sim/state").json()

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.tmpdir, ignore_errors=True)
