"""API v1: the summary report."""

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import g, jsonify, request

from app import clock
from app.routes.api import operation
from app.services import openapi as spec
from app.services import reports
from app.services.validation import Errors, parse_datetime

_DATE_ONLY = re.compile(r"^\s*\d{4}-\d{2}-\d{2}\s*$")
DEFAULT_DAYS = 30


def _bound(errors: Errors, name: str, end_of_day: bool) -> datetime | None:
    """A period bound: a datetime, or a date (its start; the day after for `to`)."""
    raw = request.args.get(name)
    if raw is None or raw.strip() == "":
        return None
    value = errors.check(name, parse_datetime, raw, g.store.timezone)
    if value is not None and end_of_day and _DATE_ONLY.match(raw):
        value = (value.astimezone(ZoneInfo(g.store.timezone)) + timedelta(days=1)).astimezone(
            ZoneInfo("UTC")
        )
    return value


@operation(
    "/reports/summary",
    "GET",
    summary="Per plan and per staff: follow-ups, outcomes, return visits and messages",
    response=spec.ref("Summary"),
    query=(
        ("from", {"type": "string", "format": "date-time"}, "start (default: 30 days ago)"),
        ("to", {"type": "string", "format": "date-time"}, "end; a date includes that day"),
    ),
    tag="reports",
)
def report_summary():
    """The summary report of the token's store for a period."""
    now = clock.now()
    errors = Errors()
    end = _bound(errors, "to", end_of_day=True)
    start = _bound(errors, "from", end_of_day=False)
    errors.raise_if_any()
    end = end or now
    start = start or end - timedelta(days=DEFAULT_DAYS)
    if start >= end:
        errors.add("from", "must be before to")
        errors.raise_if_any()
    return jsonify(reports.summary(g.store, start, end, now))
