"""API v1: plan templates, plans, audience counts and the audience field catalogue."""

from flask import abort, g, jsonify

from app import clock
from app.models import Plan
from app.routes.api import json_body, operation, optional_json_body, paginate, query_choice
from app.services import audience, plans, templates
from app.services import openapi as spec

PLAN_STATUSES = ("draft", "active", "paused", "archived")


def _plan_or_404(plan_id: int) -> Plan:
    plan = Plan.get_or_none((Plan.id == plan_id) & (Plan.store == g.store.id))
    if plan is None:
        abort(404)
    return plan


@operation(
    "/plan-templates",
    "GET",
    summary="Every plan template with its parameters and defaults",
    response={
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": spec.ref("Template")}},
    },
    tag="plans",
)
def list_plan_templates():
    """The plan templates: key, name, type, default action and parameters."""
    return jsonify(items=templates.template_list())


@operation(
    "/plans",
    "POST",
    summary="Create a plan (from a template or from scratch)",
    body=spec.ref("PlanInput"),
    response=spec.ref("Plan"),
    statuses=(201,),
    tag="plans",
)
def create_plan():
    """Create a plan in the token's store."""
    plan = plans.create_plan(g.store, json_body(), clock.now(), created_by=None)
    return jsonify(plans.plan_dict(plan)), 201


@operation(
    "/plans",
    "GET",
    summary="The store's plans",
    response=spec.page_of("Plan"),
    query=(
        ("status", {"type": "string", "enum": list(PLAN_STATUSES)}, "only plans in this status"),
        *spec.PAGE_PARAMS,
    ),
    tag="plans",
)
def list_plans():
    """A page of the store's plans."""
    query = Plan.select().where(Plan.store == g.store.id)
    status = query_choice("status", PLAN_STATUSES)
    if status:
        query = query.where(Plan.status == status)
    return jsonify(paginate(query, Plan.id, lambda rows: [plans.plan_dict(p) for p in rows]))


@operation(
    "/plans/<int:plan_id>",
    "GET",
    summary="One plan",
    response=spec.ref("Plan"),
    tag="plans",
)
def get_plan(plan_id: int):
    """A plan of the token's store (404 for any other)."""
    return jsonify(plans.plan_dict(_plan_or_404(plan_id)))


@operation(
    "/plans/<int:plan_id>",
    "PATCH",
    summary="Change a plan's fields and/or its status",
    body=spec.ref("PlanPatch"),
    response=spec.ref("Plan"),
    tag="plans",
)
def update_plan(plan_id: int):
    """Update a plan; a status change goes through the plan's state machine."""
    plan = plans.update_plan(_plan_or_404(plan_id), json_body(), clock.now())
    return jsonify(plans.plan_dict(Plan.get_by_id(plan.id)))


@operation(
    "/plans/<int:plan_id>/audience-count",
    "POST",
    summary="How many customers are in an audience now (empty body: the plan's own)",
    body=spec.ref("Audience"),
    body_optional=True,
    response=spec.ref("Count"),
    tag="plans",
)
def audience_count(plan_id: int):
    """Count the customers of an audience at this instant."""
    plan = _plan_or_404(plan_id)
    body = optional_json_body()
    return jsonify(count=plans.audience_count(plan, body, clock.now()))


@operation(
    "/audience-fields",
    "GET",
    summary="Every audience field with its operators",
    response={
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": spec.ref("AudienceField")}},
    },
    tag="plans",
)
def list_audience_fields():
    """The audience field catalogue."""
    return jsonify(items=audience.fields_catalogue())
