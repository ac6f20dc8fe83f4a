"""API v1: events (idempotent by external_id)."""

from flask import g

from app import clock
from app.routes.api import created, json_body, operation
from app.services import events
from app.services import openapi as spec


@operation(
    "/events",
    "POST",
    summary="Record an event once per external_id (a replay answers 200 with the first result)",
    body=spec.ref("EventInput"),
    response=spec.ref("Event"),
    statuses=(200, 201),
    tag="events",
)
def create_event():
    """Record an event; the same external_id again changes nothing and answers the first."""
    event, is_new = events.record_event(g.store, json_body(), clock.now(), source="api")
    return created(events.event_dict(event), is_new)
