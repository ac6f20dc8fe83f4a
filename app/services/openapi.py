"""The OpenAPI 3 document of the JSON API v1."""

PROBLEM = {"$ref": "#/components/schemas/Problem"}


def document() -> dict:
    """Build the OpenAPI document."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "Revisit API", "version": "1.0.0"},
        "servers": [{"url": "/api/v1"}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Problem": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "field": {"type": "string"},
                                    "message": {"type": "string"},
                                },
                            },
                        },
                    },
                }
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/ping": {
                "get": {
                    "summary": "Check a token",
                    "responses": {
                        "200": {
                            "description": "The token's store",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "store": {"type": "string"},
                                            "name": {"type": "string"},
                                        },
                                    }
                                }
                            },
                        },
                        "401": {
                            "description": "No or bad token",
                            "content": {"application/problem+json": {"schema": PROBLEM}},
                        },
                    },
                }
            }
        },
    }
