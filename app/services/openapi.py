"""The OpenAPI 3 document of the JSON API v1, built from the operations the routes register."""

import copy

from app.models.events import EVENT_TYPES

PROBLEM = {"$ref": "#/components/schemas/Problem"}
MAX_ID = 2_147_483_647
_OPERATIONS: dict[tuple[str, str], dict] = {}

NULLABLE_STRING = {"type": "string", "nullable": True}
NULLABLE_INT = {"type": "integer", "nullable": True}
NULLABLE_NUMBER = {"type": "number", "nullable": True}
DATETIME = {"type": "string", "format": "date-time"}
NULLABLE_DATETIME = {"type": "string", "format": "date-time", "nullable": True}
MONEY = {"type": "string", "nullable": True, "description": "Decimal amount as text"}

REF = {
    "type": "object",
    "description": "A customer reference: one of id, external_id or phone.",
    "properties": {
        "id": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
        "external_id": {"type": "string"},
        "phone": {"type": "string"},
    },
}

AUDIENCE = {
    "type": "object",
    "description": (
        'An audience: {"all": [COND…]} or {"any": [COND…]}, optionally with "except": [COND…]; '
        'a COND is {"field", "op", "value"} or another audience.'
    ),
    "properties": {
        "all": {"type": "array", "items": {"type": "object"}},
        "any": {"type": "array", "items": {"type": "object"}},
        "except": {"type": "array", "items": {"type": "object"}},
    },
}

SCHEMAS = {
    "Problem": {
        "type": "object",
        "required": ["title", "status"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    },
    "Ref": REF,
    "Audience": AUDIENCE,
    "Customer": {
        "type": "object",
        "required": ["id", "name"],
        "properties": {
            "id": {"type": "integer"},
            "external_id": NULLABLE_STRING,
            "name": {"type": "string"},
            "phone": NULLABLE_STRING,
            "email": NULLABLE_STRING,
            "line_id": NULLABLE_STRING,
            "gender": NULLABLE_STRING,
            "birthday": {"type": "string", "format": "date", "nullable": True},
            "source": NULLABLE_STRING,
            "level": NULLABLE_STRING,
            "tags": {"type": "array", "items": {"type": "string"}},
            "attributes": {"type": "object"},
            "consent": {"type": "object"},
            "assigned_staff": NULLABLE_STRING,
            "joined_at": NULLABLE_DATETIME,
            "first_visit_at": NULLABLE_DATETIME,
            "last_visit_at": NULLABLE_DATETIME,
            "visit_count": {"type": "integer"},
            "total_spend": {"type": "string", "description": "Decimal amount as text"},
            "points": {"type": "integer"},
            "store": {"type": "string", "description": "the store's key"},
        },
    },
    "CustomerInput": {
        "type": "object",
        "required": ["name", "phone"],
        "properties": {
            "external_id": {"type": "string"},
            "name": {"type": "string"},
            "phone": {"type": "string"},
            "gender": {"type": "string", "enum": ["female", "male", "other"]},
            "birthday": {"type": "string", "format": "date"},
            "source": {"type": "string"},
            "level": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "attributes": {"type": "object", "additionalProperties": {"type": "string"}},
            "assigned_staff": {"type": "string", "format": "email"},
            "consent": {
                "type": "object",
                "properties": {
                    c: {"type": "boolean"} for c in ("whatsapp", "line", "sms", "email")
                },
            },
            "email": {"type": "string"},
            "line_id": {"type": "string"},
            "joined_at": {"type": "string", "format": "date-time"},
        },
    },
    "CardProduct": {
        "type": "object",
        "required": ["id", "sku", "name", "kind"],
        "properties": {
            "id": {"type": "integer"},
            "sku": {"type": "string"},
            "name": {"type": "string"},
            "kind": {"type": "string"},
            "price": MONEY,
            "uses": NULLABLE_INT,
            "value": MONEY,
            "valid_days": NULLABLE_INT,
        },
    },
    "CardProductInput": {
        "type": "object",
        "required": ["sku", "name", "kind"],
        "properties": {
            "sku": {"type": "string"},
            "name": {"type": "string"},
            "kind": {"type": "string", "enum": ["stored_value", "count", "period"]},
            "price": {"type": "number"},
            "uses": {"type": "integer"},
            "value": {"type": "number"},
            "valid_days": {"type": "integer"},
        },
    },
    "Card": {
        "type": "object",
        "required": ["id"],
        "properties": {
            "id": {"type": "integer"},
            "external_id": NULLABLE_STRING,
            "customer": {"type": "integer"},
            "product": {"type": "string", "description": "the card product's sku"},
            "product_name": {"type": "string"},
            "kind": {"type": "string", "enum": ["stored_value", "count", "period"]},
            "balance": MONEY,
            "remaining_uses": NULLABLE_INT,
            "expires_on": {"type": "string", "format": "date", "nullable": True},
            "status": {"type": "string"},
            "issued_at": NULLABLE_DATETIME,
            "last_used_at": NULLABLE_DATETIME,
        },
    },
    "CardInput": {
        "type": "object",
        "required": ["customer", "product"],
        "properties": {
            "external_id": {"type": "string"},
            "customer": {"$ref": "#/components/schemas/Ref"},
            "product": {"type": "string", "description": "the card product's sku"},
            "balance": {"type": "number"},
            "remaining_uses": {"type": "integer"},
            "expires_on": {"type": "string", "format": "date"},
            "issued_at": {"type": "string", "format": "date-time"},
        },
    },
    "Event": {
        "type": "object",
        "required": ["id", "external_id", "type"],
        "properties": {
            "id": {"type": "integer"},
            "external_id": {"type": "string"},
            "type": {"type": "string"},
            "customer": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "external_id": NULLABLE_STRING,
                    "phone": NULLABLE_STRING,
                },
            },
            "occurred_at": DATETIME,
            "amount": MONEY,
            "items": {"type": "array", "nullable": True, "items": {"type": "object"}},
            "card": {"type": "object", "nullable": True},
            "appointment_at": NULLABLE_DATETIME,
            "staff": NULLABLE_STRING,
            "source": {"type": "string"},
            "created_at": NULLABLE_DATETIME,
        },
    },
    "EventInput": {
        "type": "object",
        "required": ["external_id", "type", "customer", "occurred_at"],
        "properties": {
            "external_id": {
                "type": "string",
                "description": (
                    "The event's id in the sending system. A `refund` that names its order as "
                    "`refund:<order external_id>` or `<order external_id>:refund` (optionally "
                    "with `:<n>` for further refunds of the same order) takes back that order's "
                    "points: all of them without an `amount` (a cancelled order), else the "
                    "refunded share."
                ),
            },
            "type": {
                "type": "string",
                "enum": [
                    "purchase",
                    "service_completed",
                    "card_used",
                    "appointment_booked",
                    "appointment_cancelled",
                    "visit",
                    "top_up",
                    "refund",
                ],
            },
            "customer": {"$ref": "#/components/schemas/Ref"},
            "occurred_at": {"type": "string", "format": "date-time"},
            "amount": {"type": "number"},
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["sku"],
                    "properties": {
                        "sku": {"type": "string"},
                        "name": {"type": "string"},
                        "quantity": {"type": "integer"},
                        "price": {"type": "number"},
                    },
                },
            },
            "card": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "external_id": {"type": "string"},
                    "uses": {"type": "integer"},
                    "amount": {"type": "number"},
                },
            },
            "staff": {"type": "string", "format": "email"},
            "appointment_at": {"type": "string", "format": "date-time"},
        },
    },
    "Template": {
        "type": "object",
        "required": ["key", "name", "type"],
        "properties": {
            "key": {"type": "string"},
            "name": {"type": "string"},
            "type": {"type": "string"},
            "action": {"type": "object", "nullable": True},
            "params": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "type"],
                    "properties": {"name": {"type": "string"}, "type": {"type": "string"}},
                },
            },
        },
    },
    "Plan": {
        "type": "object",
        "required": ["id", "name", "type", "status"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "template": NULLABLE_STRING,
            "type": {"type": "string"},
            "status": {"type": "string"},
            "params": {"type": "object", "nullable": True},
            "audience": {"type": "object", "nullable": True},
            "action": {"type": "object", "nullable": True},
            "backfill": {"type": "boolean"},
        },
    },
    "Trigger": {
        "type": "object",
        "description": "A behaviour plan's trigger: it fires `delay_days` after each matching "
        "event, at `at` store time, and with `every_days` again every so many days while the "
        "client stays in the audience, until a newer such event restarts the count.",
        "properties": {
            "event": {
                "description": "One event type or a list of them.",
                "oneOf": [
                    {"type": "string", "enum": list(EVENT_TYPES)},
                    {"type": "array", "items": {"type": "string", "enum": list(EVENT_TYPES)}},
                ],
            },
            "products": {"type": "array", "items": {"type": "string"}},
            "delay_days": {"type": "integer", "minimum": 0, "maximum": 3650},
            "every_days": {"type": "integer", "minimum": 1, "maximum": 3650},
            "at": {"type": "string", "description": "HH:MM, store time (default 09:00)"},
        },
    },
    "PlanInput": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "template": {"type": "string"},
            "name": {"type": "string"},
            "params": {"type": "object"},
            "type": {"type": "string", "enum": ["one_off", "behaviour", "recurring"]},
            "schedule": {"type": "object"},
            "trigger": {"$ref": "#/components/schemas/Trigger"},
            "audience": {"$ref": "#/components/schemas/Audience"},
            "action": {
                "type": "object",
                "properties": {
                    "kind": {"type": "string", "enum": ["followup", "message"]},
                    "script": {"type": "string"},
                    "channel": {"type": "string"},
                    "assignee_rule": {"type": "string"},
                    "due_in_hours": {"type": "integer"},
                },
            },
            "steps": {"type": "array", "items": {"type": "object"}},
            "status": {"type": "string", "enum": ["draft", "active", "paused"]},
            "backfill": {"type": "boolean"},
            "holdout_percent": {"type": "number"},
        },
    },
    "PlanPatch": {
        "type": "object",
        "description": "Any fields of a plan, and/or its status.",
        "properties": {
            "name": {"type": "string"},
            "params": {"type": "object"},
            "schedule": {"type": "object"},
            "trigger": {"$ref": "#/components/schemas/Trigger"},
            "audience": {"$ref": "#/components/schemas/Audience"},
            "action": {"type": "object"},
            "steps": {"type": "array", "items": {"type": "object"}},
            "status": {"type": "string", "enum": ["draft", "active", "paused", "archived"]},
            "backfill": {"type": "boolean"},
            "holdout_percent": {"type": "number"},
        },
    },
    "Count": {
        "type": "object",
        "required": ["count"],
        "properties": {"count": {"type": "integer"}},
    },
    "AudienceField": {
        "type": "object",
        "required": ["field", "ops"],
        "properties": {
            "field": {"type": "string"},
            "ops": {"type": "array", "items": {"type": "string"}},
        },
    },
    "FollowUp": {
        "type": "object",
        "required": ["id", "customer", "status", "due_at", "reasons"],
        "properties": {
            "id": {"type": "integer"},
            "plan": NULLABLE_INT,
            "customer": {"type": "integer"},
            "assignee": NULLABLE_STRING,
            "due_at": DATETIME,
            "status": {"type": "string", "enum": ["open", "done", "withdrawn", "expired"]},
            "script": {"type": "string"},
            "outcome": NULLABLE_STRING,
            "reasons": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["plan", "occurrence", "text"],
                    "properties": {
                        "plan": NULLABLE_INT,
                        "occurrence": NULLABLE_INT,
                        "text": {"type": "string"},
                    },
                },
            },
        },
    },
    "FollowUpLogInput": {
        "type": "object",
        "required": ["outcome"],
        "properties": {
            "outcome": {
                "type": "string",
                "enum": [
                    "reached",
                    "booked",
                    "no_answer",
                    "declined",
                    "wrong_number",
                    "opted_out",
                ],
            },
            "channel": {"type": "string"},
            "note": {"type": "string"},
            "next_at": {"type": "string", "format": "date-time"},
            "appointment_at": {"type": "string", "format": "date-time"},
        },
    },
    "ContactLog": {
        "type": "object",
        "required": ["id", "followup", "outcome"],
        "properties": {
            "id": {"type": "integer"},
            "followup": {"$ref": "#/components/schemas/FollowUp"},
            "outcome": {"type": "string"},
            "channel": {"type": "string"},
            "note": {"type": "string"},
            "next_at": NULLABLE_DATETIME,
            "at": DATETIME,
        },
    },
    "Message": {
        "type": "object",
        "required": ["id", "customer", "channel", "status", "body", "created_at"],
        "properties": {
            "id": {"type": "integer"},
            "plan": NULLABLE_INT,
            "occurrence": NULLABLE_INT,
            "customer": {"type": "integer"},
            "channel": {"type": "string"},
            "status": {"type": "string"},
            "body": {"type": "string"},
            "created_at": DATETIME,
            "sent_at": NULLABLE_DATETIME,
        },
    },
    "Summary": {
        "type": "object",
        "required": ["from", "to", "plans", "staff"],
        "properties": {
            "from": DATETIME,
            "to": DATETIME,
            "plans": {"type": "array", "items": {"type": "object"}},
            "staff": {"type": "array", "items": {"type": "object"}},
            "totals": {"type": "object"},
        },
    },
}


def ref(name: str) -> dict:
    """A $ref to one of the component schemas."""
    if name not in SCHEMAS:
        raise KeyError(name)
    return {"$ref": f"#/components/schemas/{name}"}


def page_of(name: str) -> dict:
    """A page of items with an optional `next` link."""
    return {
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {"type": "array", "items": ref(name)},
            "next": {"type": "string", "description": "path of the next page, with its cursor"},
        },
    }


PAGE_PARAMS = (
    ("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "page size"),
    ("cursor", {"type": "string"}, "opaque cursor from a previous page's `next`"),
)


def register(
    path: str,
    method: str,
    *,
    summary: str,
    path_params: dict[str, str] | None = None,
    public: bool = False,
    body: dict | None = None,
    body_optional: bool = False,
    response: dict | None = None,
    statuses: tuple[int, ...] = (200,),
    query: tuple = (),
    tag: str = "api",
    not_found: bool = False,
) -> None:
    """Record one operation (path in OpenAPI form, e.g. /customers/{id})."""
    _OPERATIONS[(path, method.lower())] = {
        "summary": summary,
        "path_params": dict(path_params or {}),
        "public": public,
        "body": body,
        "body_optional": body_optional,
        "response": response,
        "statuses": statuses,
        "query": tuple(query),
        "tag": tag,
        "not_found": not_found or bool(path_params),
    }


def operations() -> list[tuple[str, str]]:
    """(path, method) of every registered operation."""
    return sorted(_OPERATIONS)


def _problem(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": PROBLEM}},
    }


def _operation(path: str, method: str, op: dict) -> dict:
    responses = {}
    for status in op["statuses"]:
        label = {200: "OK", 201: "Created"}.get(status, "OK")
        responses[str(status)] = {"description": label}
        if op["response"] is not None:
            responses[str(status)]["content"] = {
                "application/json": {"schema": copy.deepcopy(op["response"])}
            }
    if op["body"] is not None or op["query"] or op["path_params"]:
        responses["400"] = _problem("Malformed JSON, wrong content type or bad parameter")
        responses["422"] = _problem("Validation failed: `errors` names each bad field")
    if not op["public"]:
        responses["401"] = _problem("Missing, wrong or revoked token")
        responses["429"] = {
            **_problem("Rate limit of the token exceeded"),
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        }
    if op["not_found"]:
        responses["404"] = _problem("No such object in the token's store")
    result = {
        "operationId": f"{method}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '').replace('-', '_').replace('.', '_')}",
        "summary": op["summary"],
        "tags": [op["tag"]],
        "responses": responses,
    }
    params = []
    for name, conv in op["path_params"].items():
        schema = (
            {"type": "integer", "minimum": 1, "maximum": MAX_ID}
            if conv == "int"
            else {"type": "string"}
        )
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    for name, schema, description in op["query"]:
        params.append(
            {
                "name": name,
                "in": "query",
                "required": False,
                "schema": schema,
                "description": description,
            }
        )
    if params:
        result["parameters"] = params
    if op["body"] is not None:
        result["requestBody"] = {
            "required": not op["body_optional"],
            "content": {"application/json": {"schema": copy.deepcopy(op["body"])}},
        }
    if op["public"]:
        result["security"] = []
    return result


def document() -> dict:
    """Build the OpenAPI document from the registered operations."""
    paths: dict[str, dict] = {}
    for (path, method), op in sorted(_OPERATIONS.items()):
        paths.setdefault(path, {})[method] = _operation(path, method, op)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Revisit API",
            "version": "1.0.0",
            "description": (
                "Bearer token per store. Errors are application/problem+json. "
                "A datetime without an offset is taken in the store's timezone."
            ),
        },
        "servers": [{"url": "/api/v1"}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": copy.deepcopy(SCHEMAS),
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }
