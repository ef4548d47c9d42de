"""compose.yaml, the Dockerfile and the rehearsal start the same entry points, so neither can drift."""

from __future__ import annotations

import re

import yaml

from ..simulator import ROOT
from .cluster import COMMANDS, NGINX_TEMPLATE


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_and_the_rehearsal_name_the_same_commands():
    services = compose()["services"]
    in_compose = {name: services[name]["command"] for name in COMMANDS}
    assert in_compose == {name: f"/app/{script}" for name, script in COMMANDS.items()}
    for script in COMMANDS.values():
        assert (ROOT / script).stat().st_mode & 0o111, f"{script} is executable"
    # Every entry point in deploy/ is started by both.
    assert {f"deploy/{p.name}" for p in (ROOT / "deploy").glob("*.sh")} == set(COMMANDS.values())


def test_the_proxy_renders_the_template_the_rehearsal_renders():
    proxy = compose()["services"]["proxy"]
    assert f"./{NGINX_TEMPLATE}:/etc/nginx/templates/default.conf.template:ro" in proxy["volumes"]
    template = (ROOT / NGINX_TEMPLATE).read_text()
    limit = re.search(r"client_max_body_size (\d+)m;", template)
    assert limit and int(limit.group(1)) <= 10


def test_the_image_installs_production_requirements_only_and_runs_as_a_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "requirements/production.txt" in dockerfile and "requirements.txt" not in dockerfile.replace(
        "requirements/production.txt", ""
    )
    assert re.search(r"^USER portal$", dockerfile, re.M)
    assert dockerfile.count("FROM ") == 2, "multi-stage: wheels are built apart from the runtime"
    assert 'CMD ["/app/deploy/web.sh"]' in dockerfile
    production = (ROOT / "requirements" / "production.txt").read_text().lower()
    for tool in ("pytest", "playwright", "schemathesis", "respx", "moto", "ruff", "mypy", "starlette", "uvicorn"):
        assert tool not in production, f"{tool} is not a runtime requirement"
    top = (ROOT / "requirements.txt").read_text().splitlines()
    assert top[0] == "-r requirements/production.txt"
