"""Property-based tests of the JSON API against its own OpenAPI document (schemathesis)."""

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from app.services import hooks, tokens
from tests.world import build_world

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def api_world(app, monkeypatch):
    """A two-store world, a token for store A, and a rate limit that never gets in the way."""
    monkeypatch.setattr(hooks, "after_event", lambda event, now: None)
    app.config["REVISIT_API_RATE"] = "1000000/minute"
    world = build_world()
    _, raw = tokens.create_token(world.store_a, "schemathesis")
    real_ids = {
        "customer_id": world.customer_a.id,
        "plan_id": world.plan_a.id,
        "followup_id": world.followup_a.id,
    }
    return app, raw, real_ids


def _operations(app):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


def test_api_answers_within_its_document(api_world):
    app, raw, real_ids = api_world
    operations = _operations(app)
    assert len(operations) >= 18
    for operation in operations:

        @given(case=operation.as_strategy(), real=st.booleans())
        @settings(
            max_examples=12,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case, real):
            if real and case.path_parameters:
                # Half the cases address objects that exist, so they get past the 404.
                case.path_parameters = {k: real_ids[k] for k in case.path_parameters}
            case.call_and_validate(headers={"Authorization": f"Bearer {raw}"}, checks=CHECKS)

        exercise()
