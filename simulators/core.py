"""What every platform simulator shares: fault injection, delays and a control API.

Each platform is a ``Simulator`` subclass in its own module, mounted by ``simulators.app``
under ``/<slug>``. Its base URL (e.g. ``http://127.0.0.1:8100/toucan``) is what a
connection stores: the connectors cannot tell it from the real platform.

Control endpoints (tests and demos only), under each platform's prefix:

- ``POST /_sim/fail``   ``{"mode": "500"|"429"|"401"|"hang"|"hold"|"<platform mode>", "times": 1,
  "match": "<path substring>", "retry_after": 1, "hang_seconds": 40}``. ``hold`` lets the
  platform act, then holds its answer back ``hang_seconds`` (past a client's timeout).
  ``unknown_status`` (platforms that support it) reports ``message`` as a job's status.
- ``POST /_sim/config`` ``{"delay": 0.5}``: seconds per state of a remote job
- ``POST /_sim/reset``  forget all state and faults
- ``GET  /_sim/state``  what the simulator holds, for assertions; ``mutations`` counts
  the mutating calls the platform accepted (2xx) by logical key: the request's
  ``Idempotency-Key`` header (the portal sends one per non-idempotent step), method and path

Remote jobs move through their states by the clock (``elapsed // delay``), computed
when asked: no background task, so a hung request never stalls a job.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

#: Fault modes handled for every platform before its own routes see the request.
GENERIC_MODES = {"500", "502", "503", "429", "401", "403", "hang"}
#: Methods whose accepted calls are counted in ``mutations``.
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


@dataclasses.dataclass
class Fault:
    mode: str
    times: int = 1
    match: str = ""
    retry_after: float = 1.0
    hang_seconds: float = 40.0
    message: str = ""


class Faults:
    """A queue of faults to play, each a given number of times on matching paths."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, modes: set[str] | str, path: str) -> Fault | None:
        """The first fault of one of ``modes`` matching ``path``, consumed once."""
        wanted = {modes} if isinstance(modes, str) else modes
        with self._lock:
            for fault in self._faults:
                if fault.mode in wanted and fault.match in path and fault.times != 0:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def as_list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dataclasses.asdict(f) for f in self._faults]


class Simulator:
    """Base of a platform simulator. Subclasses set ``slug`` and implement ``routes()``."""

    slug: str = ""
    default_delay: float = 1.0

    def __init__(self, delay: float | None = None) -> None:
        self.delay = self.default_delay if delay is None else delay
        self.faults = Faults()
        self.lock = threading.Lock()
        self.reset()

    # To implement

    def routes(self) -> list[BaseRoute]:
        raise NotImplementedError

    @classmethod
    def demo(cls, base_url: str) -> dict[str, Any] | None:
        """A demo connection for ``manage.py seed_demo``: ``{"name", "credentials",
        "mappings": [{"dataset", "name", "target"}]}``, with credentials this simulator accepts."""
        return None

    def reset(self) -> None:
        """Forget every remote object (subclasses extend it)."""
        self.faults.clear()
        self.mutations: dict[str, int] = {}

    def state(self) -> dict[str, Any]:
        """What the simulator holds, for tests."""
        return {}

    # Helpers for subclasses

    def stage(self, started_at: float, stages: int) -> int:
        """How many ``delay`` periods have passed since ``started_at``, capped at ``stages``."""
        if self.delay <= 0:
            return stages
        return min(stages, int((time.monotonic() - started_at) / self.delay))

    def take_fault(self, mode: str, request: Request) -> Fault | None:
        """A platform-specific fault (e.g. "job_failed") queued for this path, if any."""
        return self.faults.take(mode, request.url.path)

    # The app

    def app(self) -> ASGIApp:
        control = [
            Route("/_sim/fail", self._control_fail, methods=["POST"]),
            Route("/_sim/config", self._control_config, methods=["POST"]),
            Route("/_sim/reset", self._control_reset, methods=["POST"]),
            Route("/_sim/state", self._control_state, methods=["GET"]),
        ]
        inner = Starlette(routes=control + self.routes())
        simulator = self

        async def app(scope, receive, send):  # type: ignore[no-untyped-def]
            # Generic faults are played before the platform's routes see the request.
            if scope["type"] == "http" and "/_sim/" not in scope["path"]:
                fault = simulator.faults.take(GENERIC_MODES, scope["path"])
                if fault is not None:
                    response = await simulator._play(fault)
                    await response(scope, receive, send)
                    return
                await simulator._serve(inner, scope, receive, send)
                return
            await inner(scope, receive, send)

        return app

    async def _serve(self, inner, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        """Let the platform answer; count an accepted mutating call; play a ``hold`` fault
        (the platform acted, its answer comes late)."""
        hold = self.faults.take("hold", scope["path"])
        status: list[int] = []
        held: list[dict[str, Any]] = []

        async def recording_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            if hold is not None:
                held.append(message)
            else:
                await send(message)

        await inner(scope, receive, recording_send)
        if scope["method"] in MUTATING and status and 200 <= status[0] < 300:
            headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
            key = f"{headers.get('idempotency-key', '-')} {scope['method']} {scope['path']}"
            with self.lock:
                self.mutations[key] = self.mutations.get(key, 0) + 1
        if hold is not None:
            await asyncio.sleep(hold.hang_seconds)
            try:
                for message in held:
                    await send(message)
            except Exception:  # the client gave up long ago: that is the point
                return

    async def _play(self, fault: Fault) -> Response:
        if fault.mode == "hang":
            await asyncio.sleep(fault.hang_seconds)
            return JSONResponse({"message": "Gateway Timeout"}, status_code=504)
        if fault.mode == "429":
            return JSONResponse(
                {"message": fault.message or "Too many requests in a short time, please wait a bit and try again."},
                status_code=429,
                headers={"Retry-After": str(int(fault.retry_after))},
            )
        if fault.mode in ("401", "403"):
            return JSONResponse(
                {"statusCode": int(fault.mode), "message": fault.message or "Unauthorized"}, status_code=int(fault.mode)
            )
        return JSONResponse({"message": fault.message or "Internal Server Error"}, status_code=int(fault.mode))

    async def _control_fail(self, request: Request) -> Response:
        body = await request.json()
        fields = {f.name for f in dataclasses.fields(Fault)}
        self.faults.add(Fault(**{k: v for k, v in body.items() if k in fields}))
        return JSONResponse({"ok": True, "faults": self.faults.as_list()})

    async def _control_config(self, request: Request) -> Response:
        body = await request.json()
        if "delay" in body:
            self.delay = float(body["delay"])
        return JSONResponse({"ok": True, "delay": self.delay})

    async def _control_reset(self, request: Request) -> Response:
        with self.lock:
            self.reset()
        return JSONResponse({"ok": True})

    async def _control_state(self, request: Request) -> Response:
        with self.lock:
            return JSONResponse(
                {"delay": self.delay, "faults": self.faults.as_list(), "mutations": self.mutations, **self.state()}
            )
