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
    "tonalytica": "simulators.tonalytica.TonalyticaSimulator",
    "tailer": "simulators.tailer.TailerSimulator",
    "usmart": "simulators.usmart.UsmartSimulator",
    "datahq": "simulators.datahq.DatahqSimulator",
}


def simulator_class(slug: str) -> type[Simulator]:
    module_name, class_name = SIMULATORS[slug].rsplit(".", 1)
    return getattr(import_module(module_name), class_name)


def load(delay: float | None = None) -> dict[str, Simulator]:
    return {slug: simulator_class(slug)(delay=delay) for slug in SIMULATORS}


def create_app(delay: float | None = None) -> Starlette:
    sims = load(delay)

    async def index(request):  # type: ignore[no-untyped-def]
        return JSONResponse({"simulators": {slug: f"/{slug}" for slug in sims}})

    routes = [Route("/", index)] + [Mount(f"/{slug}", app=sim.app()) for slug, sim in sims.items()]
    return Starlette(routes=routes)
