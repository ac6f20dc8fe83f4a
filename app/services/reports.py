"""Reports: what plans and staff did in a period, and who came back afterwards (set-based SQL)."""

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import peewee as pw
from peewee import SQL, fn

from app.db import db, is_postgres
from app.models import (
    CardProduct,
    ContactLog,
    Customer,
    CustomerCard,
    Decision,
    Event,
    FollowUp,
    Message,
    Occurrence,
    Plan,
    Staff,
    Store,
    Visit,
)
from app.services import schedule

SENT_STATUSES = ("sent", "delivered", "read")
DELIVERED_STATUSES = ("delivered", "read")


def _window_end(column, days_column):
    """column + days_column days, in the database's own date arithmetic."""
    if is_postgres():
        return column + days_column * SQL("INTERVAL '1 day'")
    return fn.datetime(column, fn.printf("+%d days", days_column))


def _returned(contact_at, customer, days_column):
    """EXISTS a visit of the customer after the contact and within the window."""
    after = Visit.first_at > contact_at
    if is_postgres():
        within = Visit.first_at <= _window_end(contact_at, days_column)
    else:
        within = fn.datetime(Visit.first_at) <= _window_end(contact_at, days_column)
    return fn.EXISTS(Visit.select(SQL("1")).where((Visit.customer == customer) & after & within))


def _counts(query) -> dict:
    """{key: {name: n}} from rows of (key, name, n)."""
    out: dict = {}
    for key, name, n in query.tuples():
        out.setdefault(key, {})[name] = int(n or 0)
    return out


def _followup_figures(store: Store, start: datetime, end: datetime, now: datetime, group):
    """Follow-ups created, done and overdue, grouped by `group` (plan or assignee)."""
    cutoff = min(end, now)
    created = fn.SUM(
        pw.Case(None, [((FollowUp.created_at >= start) & (FollowUp.created_at < end), 1)], 0)
    )
    done = fn.SUM(
        pw.Case(
            None,
            [
                (
                    (FollowUp.status == "done")
                    & (FollowUp.completed_at >= start)
                    & (FollowUp.completed_at < end),
                    1,
                )
            ],
            0,
        )
    )
    overdue = fn.SUM(
        pw.Case(
            None,
            [
                (
                    (FollowUp.status == "open")
                    & (FollowUp.due_at < cutoff)
                    & (FollowUp.created_at < end),
                    1,
                )
            ],
            0,
        )
    )
    query = (
        FollowUp.select(group, created, done, overdue)
        .where(FollowUp.store == store.id, group.is_null(False))
        .group_by(group)
    )
    return {
        key: {"created": int(c or 0), "done": int(d or 0), "overdue": int(o or 0)}
        for key, c, d, o in query.tuples()
    }


def _outcomes(store: Store, start: datetime, end: datetime, group):
    """Contact-log outcomes in the period grouped by `group` (plan or logging staff)."""
    query = (
        ContactLog.select(group, ContactLog.outcome, fn.COUNT(ContactLog.id))
        .join(FollowUp, on=(ContactLog.followup == FollowUp.id))
        .where(
            FollowUp.store == store.id,
            ContactLog.at >= start,
            ContactLog.at < end,
            group.is_null(False),
        )
        .group_by(group, ContactLog.outcome)
    )
    return _counts(query)


def _followup_returns(store: Store, start: datetime, end: datetime, group) -> dict:
    """Follow-ups completed in the period whose customer visited within the plan's window."""
    query = (
        FollowUp.select(group, fn.COUNT(FollowUp.id))
        .join(Plan, on=(FollowUp.plan == Plan.id))
        .where(
            FollowUp.store == store.id,
            FollowUp.status == "done",
            FollowUp.completed_at >= start,
            FollowUp.completed_at < end,
            group.is_null(False),
            _returned(FollowUp.completed_at, FollowUp.customer, Plan.window_days),
        )
        .group_by(group)
    )
    return {key: int(n) for key, n in query.tuples()}


def _message_figures(store: Store, start: datetime, end: datetime) -> dict:
    """Messages sent, delivered and failed in the period, and return visits after them, by plan."""

    def between(column):
        return (column >= start) & (column < end)

    sent = fn.SUM(
        pw.Case(None, [(Message.status.in_(SENT_STATUSES) & between(Message.sent_at), 1)], 0)
    )
    delivered = fn.SUM(
        pw.Case(
            None, [(Message.status.in_(DELIVERED_STATUSES) & between(Message.delivered_at), 1)], 0
        )
    )
    failed = fn.SUM(
        pw.Case(None, [((Message.status == "failed") & between(Message.created_at), 1)], 0)
    )
    query = (
        Message.select(Message.plan, sent, delivered, failed)
        .where(Message.store == store.id, Message.plan.is_null(False))
        .group_by(Message.plan)
    )
    figures = {
        key: {"sent": int(s or 0), "delivered": int(d or 0), "failed": int(f or 0)}
        for key, s, d, f in query.tuples()
    }
    returns = (
        Message.select(Message.plan, fn.COUNT(Message.id))
        .join(Plan, on=(Message.plan == Plan.id))
        .where(
            Message.store == store.id,
            Message.status.in_(SENT_STATUSES),
            between(Message.sent_at),
            _returned(Message.sent_at, Message.customer, Plan.window_days),
        )
        .group_by(Message.plan)
    )
    for key, n in returns.tuples():
        figures.setdefault(key, {"sent": 0, "delivered": 0, "failed": 0})["return_visits"] = int(n)
    return figures


def summary(store: Store, start: datetime, end: datetime, now: datetime) -> dict:
    """Per plan and per staff: follow-ups created/done/overdue, outcomes, returns, messages."""
    empty_followups = {"created": 0, "done": 0, "overdue": 0}
    empty_messages = {"sent": 0, "delivered": 0, "failed": 0, "return_visits": 0}
    by_plan = _followup_figures(store, start, end, now, FollowUp.plan)
    plan_outcomes = _outcomes(store, start, end, FollowUp.plan)
    plan_returns = _followup_returns(store, start, end, FollowUp.plan)
    messages = _message_figures(store, start, end)
    plans = []
    for plan in Plan.select().where(Plan.store == store.id).order_by(Plan.id):
        plans.append(
            {
                "plan": plan.id,
                "name": plan.name,
                "template": plan.template,
                "status": plan.status,
                "window_days": plan.window_days,
                "followups": by_plan.get(plan.id, dict(empty_followups)),
                "outcomes": plan_outcomes.get(plan.id, {}),
                "return_visits": plan_returns.get(plan.id, 0),
                "messages": {**empty_messages, **messages.get(plan.id, {})},
            }
        )
    by_staff = _followup_figures(store, start, end, now, FollowUp.assignee)
    staff_outcomes = _outcomes(store, start, end, ContactLog.staff)
    staff_returns = _followup_returns(store, start, end, FollowUp.assignee)
    staff_ids = set(by_staff) | set(staff_outcomes) | set(staff_returns)
    people = []
    if staff_ids:
        query = Staff.select(Staff.id, Staff.email, Staff.name).where(Staff.id.in_(staff_ids))
        for person in query.order_by(Staff.name, Staff.id):
            people.append(
                {
                    "staff": person.email,
                    "name": person.name,
                    "followups": by_staff.get(person.id, dict(empty_followups)),
                    "outcomes": staff_outcomes.get(person.id, {}),
                    "return_visits": staff_returns.get(person.id, 0),
                }
            )
    totals = {
        "followups": {k: sum(p["followups"][k] for p in plans) for k in empty_followups},
        "return_visits": sum(p["return_visits"] for p in plans),
        "messages": {k: sum(p["messages"][k] for p in plans) for k in empty_messages},
    }
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "plans": plans,
        "staff": people,
        "totals": totals,
    }


# --- the manager's dashboard ------------------------------------------------------------------

CONTACTED = ("followup", "message")
MIN_LIFT_GROUP = 20  # fewer decisions than this on either side: "not enough data yet"
RISK_DAYS = (30, 60, 90)


def _between(column, start: datetime, end: datetime):
    return (column >= start) & (column < end)


def sum_if(condition):
    """SUM(CASE WHEN condition THEN 1 ELSE 0 END), 0 when there are no rows."""
    return fn.COALESCE(fn.SUM(pw.Case(None, [(condition, 1)], 0)), 0)


def _visit_window(contact_at, customer, days_column):
    """Visits of the customer after the contact and within the plan's window."""
    after = Visit.first_at > contact_at
    if is_postgres():
        within = Visit.first_at <= _window_end(contact_at, days_column)
    else:
        within = fn.datetime(Visit.first_at) <= _window_end(contact_at, days_column)
    return (Visit.customer == customer) & after & within


def _booked_window(contact_at, customer, days_column):
    """Bookings made by the customer after the contact and within the plan's window."""
    after = Event.occurred_at > contact_at
    if is_postgres():
        within = Event.occurred_at <= _window_end(contact_at, days_column)
    else:
        within = fn.datetime(Event.occurred_at) <= _window_end(contact_at, days_column)
    return (Event.customer == customer) & (Event.type == "appointment_booked") & after & within


def _return_columns(contact_at, customer, days_column):
    """(returned 0/1, revenue) expressions for one contact, as correlated subqueries."""
    visited = fn.EXISTS(
        Visit.select(SQL("1")).where(_visit_window(contact_at, customer, days_column))
    )
    booked = fn.EXISTS(
        Event.select(SQL("1")).where(_booked_window(contact_at, customer, days_column))
    )
    returned = pw.Case(None, [(visited | booked, 1)], 0)
    revenue = Visit.select(fn.COALESCE(fn.SUM(Visit.amount), 0)).where(
        _visit_window(contact_at, customer, days_column)
    )
    return returned, revenue


def _grouped(inner, keys: list[str]) -> list[tuple]:
    """SELECT keys, COUNT(*), SUM(returned), SUM(revenue) FROM inner GROUP BY keys."""
    t = inner.alias("t")
    cols = [getattr(t.c, k) for k in keys]
    query = (
        pw.Select([t], cols + [fn.COUNT(SQL("*")), fn.SUM(t.c.returned), fn.SUM(t.c.revenue)])
        .group_by(*cols)
        .bind(db)
    )
    return list(query.tuples())


def _money(value) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal("0.01"))


def _contact_queries(store: Store, start: datetime, end: datetime):
    """Per contact in the period (follow-up completed with a log, message sent): return, revenue."""
    logged = fn.EXISTS(ContactLog.select(SQL("1")).where(ContactLog.followup == FollowUp.id))
    returned, revenue = _return_columns(FollowUp.completed_at, FollowUp.customer, Plan.window_days)
    followups = (
        FollowUp.select(
            FollowUp.plan.alias("plan"),
            FollowUp.assignee.alias("staff"),
            FollowUp.customer.alias("customer"),
            FollowUp.completed_at.alias("at"),
            returned.alias("returned"),
            revenue.alias("revenue"),
        )
        .join(Plan, on=(FollowUp.plan == Plan.id))
        .where(
            FollowUp.store == store.id,
            FollowUp.status == "done",
            _between(FollowUp.completed_at, start, end),
            logged,
        )
    )
    m_returned, m_revenue = _return_columns(Message.sent_at, Message.customer, Plan.window_days)
    messages = (
        Message.select(
            Message.plan.alias("plan"),
            SQL("NULL").alias("staff"),
            Message.customer.alias("customer"),
            Message.sent_at.alias("at"),
            m_returned.alias("returned"),
            m_revenue.alias("revenue"),
        )
        .join(Plan, on=(Message.plan == Plan.id))
        .where(
            Message.store == store.id,
            Message.status.in_(SENT_STATUSES),
            _between(Message.sent_at, start, end),
        )
    )
    return followups, messages


def returned_contacts(
    store: Store, start: datetime, end: datetime, plan_id: int | None, staff_id: int | None
) -> list[dict]:
    """The contacts behind the return-visit figure (optionally one plan's or one person's)."""
    followups, messages = _contact_queries(store, start, end)
    parts = [followups] if staff_id else [followups, messages]
    rows = []
    for inner in parts:
        t = inner.alias("t")
        query = (
            pw.Select([t], [t.c.customer, t.c.at, t.c.revenue, Plan.name, Customer.name])
            .join(Plan, on=(Plan.id == t.c.plan))
            .join(Customer, on=(Customer.id == t.c.customer))
            .where(t.c.returned == 1)
            .bind(db)
        )
        if plan_id:
            query = query.where(t.c.plan == plan_id)
        if staff_id:
            query = query.where(t.c.staff == staff_id)
        for customer, at, revenue, plan, name in query.limit(500).tuples():
            rows.append(
                {
                    "customer": customer,
                    "name": name,
                    "at": _aware(at),
                    "detail": plan,
                    "amount": _money(revenue),
                }
            )
    return sorted(rows, key=lambda r: r["at"], reverse=True)


def _aware(value):
    """A datetime read from a raw query, made aware UTC (SQLite answers text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def _attributed_returns(store: Store, start: datetime, end: datetime) -> dict:
    """Contacts in the period (follow-ups completed with a log, messages sent) and their returns."""
    followups, messages = _contact_queries(store, start, end)
    out = {"plans": {}, "staff": {}, "total": {"contacts": 0, "returns": 0, "revenue": _money(0)}}

    def add(bucket: dict, key, n, r, rev) -> None:
        row = bucket.setdefault(key, {"contacts": 0, "returns": 0, "revenue": _money(0)})
        row["contacts"] += int(n or 0)
        row["returns"] += int(r or 0)
        row["revenue"] += _money(rev)

    for plan, staff, n, r, rev in _grouped(followups, ["plan", "staff"]):
        add(out["plans"], plan, n, r, rev)
        if staff is not None:
            add(out["staff"], staff, n, r, rev)
        add(out, "total", n, r, rev)
    for plan, n, r, rev in _grouped(messages, ["plan"]):
        add(out["plans"], plan, n, r, rev)
        add(out, "total", n, r, rev)
    return out


def lift_interval(rc: int, nc: int, rh: int, nh: int) -> dict | None:
    """Difference of two return rates per 100 clients with a 95% (Wald) interval; None if small."""
    if nc < MIN_LIFT_GROUP or nh < MIN_LIFT_GROUP:
        return None
    pc, ph = rc / nc, rh / nh
    se = math.sqrt(pc * (1 - pc) / nc + ph * (1 - ph) / nh)
    diff = pc - ph
    return {
        "per_100": round(diff * 100),
        "low": round((diff - 1.96 * se) * 100),
        "high": round((diff + 1.96 * se) * 100),
        "contacted_rate": round(pc * 100, 1),
        "held_out_rate": round(ph * 100, 1),
    }


def _lift_decisions(store: Store, start: datetime, end: datetime):
    """Decisions of holdout plans in the period: contacted or held out, and whether they returned."""
    returned, _revenue = _return_columns(Decision.created_at, Decision.customer, Plan.window_days)
    side = pw.Case(None, [(Decision.outcome == "held_out", "held_out")], "contacted")
    return (
        Decision.select(
            Decision.plan.alias("plan"),
            side.alias("side"),
            Decision.customer.alias("customer"),
            Decision.created_at.alias("at"),
            returned.alias("returned"),
            SQL("0").alias("revenue"),
        )
        .join(Plan, on=(Decision.plan == Plan.id))
        .where(
            Plan.store == store.id,
            Plan.holdout_percent > 0,
            Decision.outcome.in_(CONTACTED + ("held_out",)),
            _between(Decision.created_at, start, end),
        )
    )


def lift_customers(
    store: Store, start: datetime, end: datetime, plan_id: int | None, side: str
) -> list[dict]:
    """The contacted or held-out customers behind a lift figure, and whether each came back."""
    t = _lift_decisions(store, start, end).alias("t")
    query = (
        pw.Select([t], [t.c.customer, t.c.at, t.c.returned, Plan.name, Customer.name])
        .join(Plan, on=(Plan.id == t.c.plan))
        .join(Customer, on=(Customer.id == t.c.customer))
        .where(t.c.side == side)
        .bind(db)
    )
    if plan_id:
        query = query.where(t.c.plan == plan_id)
    return [
        {"customer": c, "name": n, "at": _aware(at), "detail": plan, "returned": bool(r)}
        for c, at, r, plan, n in query.limit(500).tuples()
    ]


def _lift(store: Store, start: datetime, end: datetime) -> dict:
    """Per plan with a holdout: contacted vs held-out customers and how many came back."""
    inner = _lift_decisions(store, start, end)
    out: dict = {}
    for plan, which, n, r, _rev in _grouped(inner, ["plan", "side"]):
        out.setdefault(plan, {"contacted": [0, 0], "held_out": [0, 0]})[which] = [
            int(r or 0),
            int(n or 0),
        ]
    for figures in out.values():
        rc, nc = figures["contacted"]
        rh, nh = figures["held_out"]
        figures["interval"] = lift_interval(rc, nc, rh, nh)
    return out


def _completion(store: Store, start: datetime, end: datetime, now: datetime, group) -> dict:
    """Follow-ups due in the period (not withdrawn), how many were done, and open overdue now."""
    cutoff = min(end, now)
    due = _between(FollowUp.due_at, start, cutoff) & (FollowUp.status != "withdrawn")
    query = (
        FollowUp.select(
            group,
            sum_if(due),
            sum_if(due & (FollowUp.status == "done")),
            sum_if((FollowUp.status == "open") & (FollowUp.due_at < now)),
            sum_if((FollowUp.status == "withdrawn") & _between(FollowUp.updated_at, start, end)),
        )
        .where(FollowUp.store == store.id)
        .group_by(group)
    )
    out = {}
    for key, d, done, overdue, withdrawn in query.tuples():
        d, done = int(d or 0), int(done or 0)
        out[key] = {
            "due": d,
            "done": done,
            "rate": round(100 * done / d) if d else None,
            "overdue": int(overdue or 0),
            "withdrawn": int(withdrawn or 0),
        }
    return out


def _outcome_mix(store: Store, start: datetime, end: datetime) -> dict[str, int]:
    """Contact-log outcomes logged in the period."""
    query = (
        ContactLog.select(ContactLog.outcome, fn.COUNT(ContactLog.id))
        .join(Customer, on=(ContactLog.customer == Customer.id))
        .where(Customer.store == store.id, _between(ContactLog.at, start, end))
        .group_by(ContactLog.outcome)
    )
    return {outcome: int(n) for outcome, n in query.tuples()}


def _decision_counts(store: Store, start: datetime, end: datetime) -> dict:
    """Per plan: withdrawn because the client booked, and missed occurrences, in the period."""
    booked = (
        Decision.select(Decision.plan, fn.COUNT(Decision.id))
        .join(Plan, on=(Decision.plan == Plan.id))
        .where(
            Plan.store == store.id,
            Decision.outcome == "withdrawn",
            Decision.reason.contains("appointment_booked"),
            _between(Decision.updated_at, start, end),
        )
        .group_by(Decision.plan)
    )
    missed = (
        Occurrence.select(Occurrence.plan, fn.COUNT(Occurrence.id))
        .join(Plan, on=(Occurrence.plan == Plan.id))
        .where(
            Plan.store == store.id,
            Occurrence.status == "missed",
            _between(Occurrence.scheduled_for, start, end),
        )
        .group_by(Occurrence.plan)
    )
    return {
        "withdrawn_booked": {p: int(n) for p, n in booked.tuples()},
        "missed": {p: int(n) for p, n in missed.tuples()},
    }


def card_value():
    """What an active card is still worth: the balance, or unused uses at the product's price."""
    per_use = CardProduct.price / pw.Case(None, [(CardProduct.uses > 0, CardProduct.uses)], None)
    return pw.Case(
        CardProduct.kind,
        [
            ("stored_value", fn.COALESCE(CustomerCard.balance, 0)),
            ("count", fn.COALESCE(CustomerCard.remaining_uses * per_use, 0)),
        ],
        0,
    )


def money_at_risk(store: Store, now: datetime) -> list[dict]:
    """Active card value expiring within 30, 60 and 90 days (store-local dates), with counts."""
    today = schedule.local_date(now, store.timezone)
    columns = []
    for days in RISK_DAYS:
        soon = CustomerCard.expires_on <= today + timedelta(days=days)
        columns.append(fn.COALESCE(fn.SUM(pw.Case(None, [(soon, card_value())], 0)), 0))
        columns.append(sum_if(soon))
    row = (
        CustomerCard.select(*columns)
        .join(CardProduct, on=(CustomerCard.product == CardProduct.id))
        .where(
            CustomerCard.store == store.id,
            CustomerCard.status == "active",
            CustomerCard.expires_on >= today,
            CustomerCard.expires_on <= today + timedelta(days=max(RISK_DAYS)),
        )
        .tuples()
        .first()
    ) or (0,) * len(columns)
    return [
        {"days": days, "value": _money(row[2 * i]), "cards": int(row[2 * i + 1] or 0)}
        for i, days in enumerate(RISK_DAYS)
    ]


def dashboard(store: Store, start: datetime, end: datetime, now: datetime) -> dict:
    """Every dashboard figure for a store and period, each from one grouped query."""
    by_staff = _completion(store, start, end, now, FollowUp.assignee)
    by_plan = _completion(store, start, end, now, FollowUp.plan)
    returns = _attributed_returns(store, start, end)
    lift = _lift(store, start, end)
    counts = _decision_counts(store, start, end)
    empty = {"due": 0, "done": 0, "rate": None, "overdue": 0, "withdrawn": 0}
    no_returns = {"contacts": 0, "returns": 0, "revenue": _money(0)}
    plans = []
    for plan in (
        Plan.select(Plan.id, Plan.name, Plan.status, Plan.holdout_percent)
        .where(Plan.store == store.id)
        .order_by(Plan.name, Plan.id)
    ):
        plans.append(
            {
                "id": plan.id,
                "name": plan.name,
                "status": plan.status,
                "holdout_percent": plan.holdout_percent,
                "followups": by_plan.get(plan.id, dict(empty)),
                "returns": returns["plans"].get(plan.id, dict(no_returns)),
                "lift": lift.get(plan.id),
                "withdrawn_booked": counts["withdrawn_booked"].get(plan.id, 0),
                "missed": counts["missed"].get(plan.id, 0),
            }
        )
    staff_ids = [k for k in by_staff if k is not None]
    people = []
    if staff_ids:
        for person in (
            Staff.select(Staff.id, Staff.name, Staff.email)
            .where(Staff.id.in_(staff_ids))
            .order_by(Staff.name, Staff.id)
        ):
            people.append(
                {
                    "id": person.id,
                    "name": person.name,
                    "email": person.email,
                    "followups": by_staff[person.id],
                    "returns": returns["staff"].get(person.id, dict(no_returns)),
                }
            )
    queue = by_staff.get(None)
    totals = {
        k: sum(v[k] for v in by_staff.values()) for k in ("due", "done", "overdue", "withdrawn")
    }
    totals["rate"] = round(100 * totals["done"] / totals["due"]) if totals["due"] else None
    return {
        "start": start,
        "end": end,
        "staff": people,
        "queue": queue,
        "plans": plans,
        "totals": totals,
        "outcomes": _outcome_mix(store, start, end),
        "returns": returns["total"],
        "withdrawn_booked": sum(counts["withdrawn_booked"].values()),
        "missed": sum(counts["missed"].values()),
        "at_risk": money_at_risk(store, now),
    }
