"""Every registered connector keeps the same contract, so the portal needs no per-platform code."""

from __future__ import annotations

import inspect

import pytest
from pydantic import SecretStr

from connectors.base import Connector, Schema
from connectors.registry import CONNECTORS, get_connector_class
from simulators.app import SIMULATORS, simulator_class


@pytest.mark.parametrize("slug", list(CONNECTORS))
def test_the_connector_keeps_the_contract(slug):
    cls = get_connector_class(slug)
    assert issubclass(cls, Connector) and cls.slug == slug and cls.label == CONNECTORS[slug][0]
    for schema in (cls.Credentials, cls.Target, cls.Params):
        assert issubclass(schema, Schema), f"{schema} must derive from connectors.base.Schema"
        assert schema.model_config.get("hide_input_in_errors"), "validation errors must not echo input"
    # Planning and describing a target need no credentials and no network.
    assert (
        inspect.ismethod(cls.plan)
        and inspect.ismethod(cls.describe_target)
        and inspect.ismethod(cls.credential_warnings)
    )
    for method in ("test_connection", "run_step", "check_step"):
        assert getattr(cls, method) is not getattr(Connector, method) or method == "check_step", (
            f"{slug} must implement {method}"
        )


@pytest.mark.parametrize("slug", list(CONNECTORS))
def test_secrets_are_typed_secret(slug):
    cls = get_connector_class(slug)
    secrets = cls.secret_fields()
    assert secrets, f"{slug} declares no secret credential field"
    for name in secrets:
        assert "SecretStr" in str(cls.Credentials.model_fields[name].annotation)
    assert SecretStr  # imported for the annotation check above


@pytest.mark.parametrize("slug", list(CONNECTORS))
def test_every_platform_has_a_simulator_with_a_demo(slug):
    assert slug in SIMULATORS
    demo = simulator_class(slug).demo(f"http://127.0.0.1:8100/{slug}")
    assert demo and demo["credentials"], f"{slug} simulator offers no demo connection"
    cls = get_connector_class(slug)
    cls.Credentials.model_validate(demo["credentials"])
    for mapping in demo.get("mappings", []):
        cls.Target.model_validate(mapping["target"])
