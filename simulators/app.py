"""One ASGI server for every platform simulator, each mounted under its slug."""

from __future__ import annotations

from importlib import import_module

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from .core import Simulator

#: slug -> "module.Class". One line per platform, like connectors/registry.py.
SIMULATORS: dict[str, str] = {
    "toucan": "simulators.toucan.ToucanSimulator",
}


def load(delay: float | None = None) -> dict[str, Simulator]:
    sims = {}
    for slug, dotted in SIMULATORS.items():
        module_name, class_name = dotted.rsplit(".", 1)
        sims[slug] = getattr(import_module(module_name), class_name)(delay=delay)
    return sims


def create_app(delay: float | None = None) -> Starlette:
    sims = load(delay)

    async def index(request):  # type: ignore[no-untyped-def]
        return JSONResponse({"simulators": {slug: f"/{slug}" for slug in sims}})

    routes = [Route("/", index)] + [Mount(f"/{slug}", app=sim.app()) for slug, sim in sims.items()]
    return Starlette(routes=routes)
