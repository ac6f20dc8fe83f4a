"""The OpenAPI document stays in step with the routes under /api/v1."""

import re

from app.services import openapi as spec

HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def api_operations(app) -> set[tuple[str, str]]:
    """(path, method) of every route registered under /api/v1, in OpenAPI path form."""
    found = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule[len("/api/v1") :])
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            found.add((path, method.lower()))
    return found


def document_operations(document: dict) -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def test_every_api_route_is_in_the_document_and_nothing_else(client):
    document = client.get("/api/v1/openapi.json").get_json()
    routes, documented = api_operations(client.application), document_operations(document)
    assert routes - documented == set(), "routes missing from openapi.json"
    assert documented - routes == set(), "openapi.json describes routes that do not exist"
    assert ("/customers", "post") in routes and (
        "/plans/{plan_id}/audience-count",
        "post",
    ) in routes


def test_every_operation_documents_its_errors_and_schemas(client):
    document = client.get("/api/v1/openapi.json").get_json()
    for path, item in document["paths"].items():
        for method, op in item.items():
            responses = op["responses"]
            success = [code for code in responses if code.startswith("2")]
            assert success and all("content" in responses[c] for c in success), (path, method)
            if path != "/openapi.json":
                assert "401" in responses and "429" in responses, (path, method)
                assert "Retry-After" in responses["429"]["headers"]
            if "{" in path:
                assert "404" in responses, (path, method)
            if method in ("post", "patch"):
                assert "requestBody" in op and "422" in responses and "400" in responses


def test_documented_path_parameters_match_the_route(client):
    document = client.get("/api/v1/openapi.json").get_json()
    for path, item in document["paths"].items():
        names = set(re.findall(r"{(\w+)}", path))
        for op in item.values():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == names, (path, declared)


def test_refs_point_at_declared_schemas(client):
    text = client.get("/api/v1/openapi.json").get_data(as_text=True)
    for name in set(re.findall(r'"#/components/schemas/(\w+)"', text)):
        assert name in spec.SCHEMAS, name


def test_documented_event_types_are_the_ones_the_api_accepts(client):
    """A POS that reads the document can post refunds (which take back an order's points)."""
    from app.models.events import EVENT_TYPES

    document = client.get("/api/v1/openapi.json").get_json()
    event = document["components"]["schemas"]["EventInput"]["properties"]
    assert set(event["type"]["enum"]) == set(EVENT_TYPES)
    assert "refund:<order external_id>" in event["external_id"]["description"]
