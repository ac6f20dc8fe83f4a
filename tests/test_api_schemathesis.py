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


def test_successful_answers_match_the_document(api_world):
    """A realistic session (not random data) answers 2xx bodies that fit the documented schemas."""
    app, raw, real_ids = api_world
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    auth = {"Authorization": f"Bearer {raw}"}

    def call(path, method, status, **kw):
        case = schema[path][method].Case(**kw)
        resp = case.call_and_validate(headers=auth, checks=CHECKS)
        assert resp.status_code == status, resp.text[:300]
        return resp.json()

    customer = call(
        "/customers",
        "POST",
        201,
        body={
            "name": "Doc Check",
            "phone": "0125550177",
            "tags": ["VIP"],
            "birthday": "1990-01-02",
        },
    )
    call("/customers/{customer_id}", "GET", 200, path_parameters={"customer_id": customer["id"]})
    call("/customers", "GET", 200, query={"tag": "VIP", "limit": 1})
    call(
        "/card-products",
        "POST",
        201,
        body={"sku": "SV", "name": "Value", "kind": "stored_value", "value": 500},
    )
    call(
        "/cards",
        "POST",
        201,
        body={"external_id": "SV-1", "customer": {"id": customer["id"]}, "product": "SV"},
    )
    event = {
        "external_id": "DOC-1",
        "type": "card_used",
        "customer": {"id": customer["id"]},
        "occurred_at": "2026-11-20T10:00:00",
        "amount": 50,
        "items": [{"sku": "MANI", "name": "Manicure", "quantity": 1, "price": 50}],
        "card": {"external_id": "SV-1", "amount": 50},
    }
    call("/events", "POST", 201, body=event)
    call("/events", "POST", 200, body=event)
    call("/plan-templates", "GET", 200)
    call("/audience-fields", "GET", 200)
    plan = call(
        "/plans",
        "POST",
        201,
        body={"template": "second_visit", "name": "Come again", "action": {"kind": "followup"}},
    )
    call("/plans", "GET", 200)
    call("/plans/{plan_id}", "GET", 200, path_parameters={"plan_id": plan["id"]})
    call(
        "/plans/{plan_id}",
        "PATCH",
        200,
        path_parameters={"plan_id": plan["id"]},
        body={"status": "active", "backfill": False},
    )
    call(
        "/plans/{plan_id}/audience-count",
        "POST",
        200,
        path_parameters={"plan_id": plan["id"]},
        body={"all": [{"field": "tags", "op": "has_any", "value": ["VIP"]}]},
    )
    call("/followups", "GET", 200, query={"status": "open"})
    call(
        "/followups/{followup_id}/logs",
        "POST",
        201,
        path_parameters={"followup_id": real_ids["followup_id"]},
        body={"outcome": "booked", "appointment_at": "2026-12-01T15:00:00"},
    )
    call("/messages", "GET", 200)
    call("/reports/summary", "GET", 200, query={"from": "2026-11-01", "to": "2026-11-30"})
    call("/ping", "GET", 200)
