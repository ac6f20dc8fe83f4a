"""Exports: customers, follow-ups, contact logs and messages as CSV for any filter, streamed."""

import json
from datetime import date

from flask import Blueprint, Response, abort, g, request, stream_with_context
from flask_babel import gettext as _

from app import clock
from app.htmx import render
from app.models import Plan, Staff, StaffStore
from app.services import exporting
from app.services.permissions import manager_required

bp = Blueprint("exports", __name__)


def _day(name: str, errors: dict) -> date | None:
    value = request.args.get(name, "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors[name] = _("Enter a date as YYYY-MM-DD.")
        return None


def _int(name: str, errors: dict) -> int | None:
    value = request.args.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit():
        errors[name] = _("Choose from the list.")
        return None
    return int(value)


def _filters(kind: str) -> tuple[dict, dict]:
    """The filters of the query string and the problems with them."""
    errors: dict = {}
    filters: dict = {
        "start": _day("start", errors),
        "end": _day("end", errors),
        "status": request.args.get("status", "").strip() or None,
        "channel": request.args.get("channel", "").strip() or None,
        "outcome": request.args.get("outcome", "").strip() or None,
        "plan": _int("plan", errors),
        "assignee": _int("assignee", errors),
    }
    if kind == "customers":
        filters["tag"] = request.args.get("tag", "").strip() or None
        filters["source"] = request.args.get("source", "").strip() or None
        filters["visited_since"] = _day("visited_since", errors)
        filters["not_visited_since"] = _day("not_visited_since", errors)
        raw = request.args.get("audience", "").strip()
        if raw:
            try:
                filters["audience"] = json.loads(raw)
            except ValueError:
                errors["audience"] = _("The audience is not valid JSON.")
    return filters, errors


def _form(errors: dict, status: int = 200, kind: str = "customers"):
    staff = (
        Staff.select()
        .join(StaffStore, on=StaffStore.staff == Staff.id)
        .where(StaffStore.store == g.store.id)
        .order_by(Staff.name)
    )
    return render(
        "exports/index.html",
        "exports/_form.html",
        status=status,
        errors=errors,
        kind=kind,
        args=request.args,
        plans=Plan.select().where(Plan.store == g.store.id).order_by(Plan.name),
        staff=staff,
    )


@bp.route("/exports")
@manager_required
def index():
    """Choose what to export and the filters."""
    if g.store is None:
        abort(404)
    return _form({})


@bp.route("/exports/<kind>.csv")
@manager_required
def download(kind: str):
    """The export as a streamed CSV (UTF-8 with BOM, formula-safe); 422 for a bad filter."""
    if g.store is None or kind not in exporting.KINDS:
        abort(404)
    filters, errors = _filters(kind)
    now = clock.now()
    if not errors:
        try:
            lines = exporting.csv_lines(kind, g.store, filters, now)
            first = next(lines)
        except exporting.ExportError as exc:
            errors[exc.field] = str(exc)
    if errors:
        return _form(errors, 422, kind)

    def stream():
        yield first
        yield from lines

    name = f"{g.store.key}-{kind}-{now:%Y%m%d}.csv"
    return Response(
        stream_with_context(stream()),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
