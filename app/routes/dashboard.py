"""The manager's dashboard: a period's figures for the current store, each drilling down."""

from datetime import date, datetime, timedelta

from flask import Blueprint, abort, g, request
from flask_babel import gettext as _

from app import clock
from app.htmx import render
from app.models import CardProduct, Customer, CustomerCard, Decision, Occurrence, Plan
from app.services import reports, schedule
from app.services.permissions import manager_required

bp = Blueprint("dashboard", __name__)

DRILLS = ("returns", "contacted", "held_out", "withdrawn_booked", "missed", "cards")


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def period(store, now: datetime) -> dict:
    """The chosen local-date period ([start, end] inclusive) and its UTC bounds."""
    today = schedule.local_date(now, store.timezone)
    first = _day(request.args.get("start")) or today.replace(day=1)
    last = _day(request.args.get("end")) or today
    if last < first:
        first, last = last, first
    start_at = schedule.day_bounds(first, store.timezone)[0]
    end_at = schedule.day_bounds(last, store.timezone)[1]
    presets = {
        _("Last 7 days"): (today - timedelta(days=6), today),
        _("This month"): (today.replace(day=1), today),
        _("Last 30 days"): (today - timedelta(days=29), today),
        _("Last month"): (
            (today.replace(day=1) - timedelta(days=1)).replace(day=1),
            today.replace(day=1) - timedelta(days=1),
        ),
    }
    return {
        "first": first,
        "last": last,
        "start": start_at,
        "end": end_at,
        "args": {"start": first.isoformat(), "end": last.isoformat()},
        "presets": {
            k: {"start": a.isoformat(), "end": b.isoformat()} for k, (a, b) in presets.items()
        },
    }


@bp.route("/dashboard")
@manager_required
def index():
    """Completion, outcomes, returns, lift and money at risk for the chosen period."""
    if g.store is None:
        return render("dashboard/index.html", "dashboard/_stats.html", d=None, p=None)
    now = clock.now()
    p = period(g.store, now)
    d = reports.dashboard(g.store, p["start"], p["end"], now)
    return render("dashboard/index.html", "dashboard/_stats.html", d=d, p=p, store=g.store)


def _drill_rows(kind: str, store, p: dict, now: datetime):
    """The customers (or occurrences) behind one dashboard number."""
    plan_id = request.args.get("plan", type=int)
    staff_id = request.args.get("staff", type=int)
    if kind == "returns":
        return reports.returned_contacts(store, p["start"], p["end"], plan_id, staff_id)
    if kind in ("contacted", "held_out"):
        return reports.lift_customers(store, p["start"], p["end"], plan_id, kind)
    if kind == "withdrawn_booked":
        query = (
            Decision.select(Decision.customer, Customer.name, Decision.updated_at, Plan.name)
            .join(Plan, on=(Decision.plan == Plan.id))
            .join(Customer, on=(Decision.customer == Customer.id))
            .where(
                Plan.store == store.id,
                Decision.outcome == "withdrawn",
                Decision.reason.contains("appointment_booked"),
                Decision.updated_at >= p["start"],
                Decision.updated_at < p["end"],
            )
        )
        if plan_id:
            query = query.where(Decision.plan == plan_id)
        return [
            {"customer": c, "name": n, "at": at, "detail": plan}
            for c, n, at, plan in query.order_by(Decision.updated_at.desc()).limit(500).tuples()
        ]
    if kind == "missed":
        query = (
            Occurrence.select(Occurrence.scheduled_for, Plan.name, Occurrence.key)
            .join(Plan, on=(Occurrence.plan == Plan.id))
            .where(
                Plan.store == store.id,
                Occurrence.status == "missed",
                Occurrence.scheduled_for >= p["start"],
                Occurrence.scheduled_for < p["end"],
            )
        )
        if plan_id:
            query = query.where(Occurrence.plan == plan_id)
        return [
            {"customer": None, "name": plan, "at": at, "detail": key}
            for at, plan, key in query.order_by(Occurrence.scheduled_for.desc()).limit(500).tuples()
        ]
    days = request.args.get("days", 30, type=int)
    today = schedule.local_date(now, store.timezone)
    query = (
        CustomerCard.select(
            CustomerCard.customer,
            Customer.name,
            CustomerCard.expires_on,
            CardProduct.name,
            reports.card_value(),
        )
        .join(CardProduct, on=(CustomerCard.product == CardProduct.id))
        .switch(CustomerCard)
        .join(Customer, on=(CustomerCard.customer == Customer.id))
        .where(
            CustomerCard.store == store.id,
            CustomerCard.status == "active",
            CustomerCard.expires_on >= today,
            CustomerCard.expires_on <= today + timedelta(days=days),
        )
    )
    return [
        {"customer": c, "name": n, "at": exp, "detail": prod, "amount": reports._money(v)}
        for c, n, exp, prod, v in query.order_by(CustomerCard.expires_on).limit(500).tuples()
    ]


@bp.route("/dashboard/drill/<kind>")
@manager_required
def drill(kind: str):
    """The list behind one dashboard number."""
    if kind not in DRILLS or g.store is None:
        abort(404)
    plan_id = request.args.get("plan", type=int)
    if plan_id and not Plan.select().where(Plan.id == plan_id, Plan.store == g.store.id).exists():
        abort(404)
    now = clock.now()
    p = period(g.store, now)
    rows = _drill_rows(kind, g.store, p, now)
    titles = {
        "returns": _("Clients who came back after a contact"),
        "contacted": _("Contacted clients (lift)"),
        "held_out": _("Held-out clients (lift)"),
        "withdrawn_booked": _("Withdrawn because the client booked"),
        "missed": _("Missed occurrences"),
        "cards": _("Cards expiring soon"),
    }
    return render(
        "dashboard/drill.html",
        "dashboard/_drill.html",
        rows=rows,
        kind=kind,
        title=titles[kind],
        p=p,
        store=g.store,
    )
