"""schemathesis against our own OpenAPI schema: no 5xx, no response that breaks the schema."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance  # noqa: F401

from portal import tokens
from tests.factories import ConnectionFactory, DatasetFactory, MappingFactory, ReleaseFactory, UploadFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def seeded_api(live_server, alice, team):
    """A live server with a few objects of every kind, and a token of an admin."""
    dataset = DatasetFactory(team=team, name="Sales")
    mapping = MappingFactory(
        dataset=dataset, connection=ConnectionFactory(team=team, base_url="http://127.0.0.1:9/toucan")
    )
    UploadFactory(dataset=dataset)
    ReleaseFactory(mapping=mapping)
    _token, key = tokens.token_create(user=alice, name="schemathesis")
    return live_server.url, key


def test_the_api_honours_its_schema(seeded_api):
    base, key = seeded_api
    # The schema needs a login (docs/security.md): fetch it with the token.
    schema = schemathesis.openapi.from_url(
        f"{base}/api/v1/schema/?format=json", headers={"Authorization": f"Bearer {key}"}
    )
    failures: list[str] = []
    for operation in schema.get_all_operations():
        op = operation.ok()
        strategy = op.as_strategy()

        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case):
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {key}"}
            response = case.call(base_url=f"{base}")
            if response.status_code >= 500:
                failures.append(f"{op.method.upper()} {op.path}: {response.status_code}")  # noqa: B023 - run() is called in this iteration
                return
            try:
                case.validate_response(response, checks=[response_schema_conformance])
            except Exception as exc:  # collected: every operation is tried before failing
                failures.append(f"{op.method.upper()} {op.path}: {str(exc).splitlines()[0][:200]}")  # noqa: B023 - called in this iteration

        from hypothesis import given

        given(case=strategy)(run)()
    assert not failures, "\n".join(sorted(set(failures)))
