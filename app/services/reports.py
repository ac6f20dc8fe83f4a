"""Reports: what plans and staff did in a period, and who came back afterwards (set-based SQL)."""

import math
import time
from datetime import UTC, date, datetime, timedelta
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
from app.models.events import VISIT_TYPES
from app.models.followups import FOLLOWUP_STATUSES, OUTCOMES
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


# --- return attribution, recorded when the visit or booking arrives -----------------------------
#
# A contact (a follow-up completed, a message sent, a plan decision) "returned" when the customer
# visited or booked after it and within its plan's window. Probing every contact's visits at read
# time costs one lookup per contact, so the answer is kept on the contact instead: `returned_at`
# (the first visit in the window, else the first booking) and `return_revenue` (the amounts of the
# visits in the window). Every visit or booking recomputes them for its customer's recent
# contacts (attribute_event, from the after-event hook, also for imported history);
# attribute_returns recomputes a whole store for data written behind the services' back.

RETURN_EVENT_TYPES = VISIT_TYPES + ("appointment_booked",)


def _contact_kinds() -> list[tuple]:
    """(model, contact time column, rows that are contacts, with revenue) per kind of contact."""
    return [
        (FollowUp, FollowUp.completed_at, FollowUp.status == "done", True),
        (Message, Message.sent_at, Message.status.in_(SENT_STATUSES), True),
        (Decision, Decision.created_at, Decision.outcome.in_(LIFT_OUTCOMES), False),
    ]


def _recompute(model, contact_at, is_contact, with_revenue: bool, where):
    """The UPDATE setting returned_at (and return_revenue) of the matching contacts from the
    visits and bookings."""
    first_visit = Visit.select(fn.MIN(Visit.first_at)).where(
        _visit_window(contact_at, model.customer, Plan.window_days)
    )
    first_booking = Event.select(fn.MIN(Event.occurred_at)).where(
        _booked_window(contact_at, model.customer, Plan.window_days)
    )
    changes = {
        model.returned_at: pw.Case(
            None, [(is_contact, fn.COALESCE(first_visit, first_booking))], None
        )
    }
    if with_revenue:
        revenue = Visit.select(fn.COALESCE(fn.SUM(Visit.amount), 0)).where(
            _visit_window(contact_at, model.customer, Plan.window_days)
        )
        changes[model.return_revenue] = pw.Case(None, [(is_contact, revenue)], 0)
    return model.update(changes).from_(Plan).where((Plan.id == model.plan) & where)


# attribute_event runs for every event, so its statements are built once per backend: peewee
# takes longer to compose them than the database takes to run them. Placeholders stand in for
# the customer and the time bounds and are swapped for the real values at each call.
_CUSTOMER = -424_242
_SINCE, _UNTIL = datetime(1901, 1, 1, tzinfo=UTC), datetime(1902, 1, 1, tzinfo=UTC)
_per_customer_sql: dict[str, list[tuple[str, list]]] = {}


def _per_customer_statements() -> list[tuple[str, list]]:
    """(sql, params) of the per-customer recomputation, one per kind of contact."""
    backend = type(db.obj).__name__
    if backend not in _per_customer_sql:
        statements = []
        for model, contact_at, is_contact, with_revenue in _contact_kinds():
            where = (model.customer == _CUSTOMER) & _between(contact_at, _SINCE, _UNTIL)
            statements.append(_recompute(model, contact_at, is_contact, with_revenue, where).sql())
        _per_customer_sql[backend] = statements
    return _per_customer_sql[backend]


def attribute_event(event: Event) -> int:
    """Recompute the returns of the event's customer's contacts that its visit or booking may
    fall in (one indexed UPDATE per kind of contact); returns how many contacts were looked at."""
    if event.type not in RETURN_EVENT_TYPES:
        return 0
    longest = (
        Plan.select(fn.MAX(Plan.window_days)).where(Plan.store == event.store_id).scalar() or 0
    )
    # A visit is dated by its first event of the (store-local) day: within a day of this one.
    since = event.occurred_at - timedelta(days=int(longest) + 1)
    until = event.occurred_at + timedelta(days=1)
    field = FollowUp.completed_at
    values = {
        _CUSTOMER: event.customer_id,
        field.db_value(_SINCE): field.db_value(since),
        field.db_value(_UNTIL): field.db_value(until),
    }
    touched = 0
    for sql, params in _per_customer_statements():
        touched += db.execute_sql(sql, [values.get(p, p) for p in params]).rowcount
    return touched


def attribute_returns(store: Store, since: datetime | None = None) -> dict[str, int]:
    """Recompute the returns of a store's contacts (all, or those made since `since`): the
    backfill for existing data and the repair after visits were written without events."""
    out = {}
    for model, contact_at, is_contact, with_revenue in _contact_kinds():
        where = is_contact | model.returned_at.is_null(False)
        where &= (Plan.store == store.id) & contact_at.is_null(False)
        if since is not None:
            where &= contact_at >= since
        query = _recompute(model, contact_at, is_contact, with_revenue, where)
        out[model._meta.table_name] = query.execute()
    return out


def recount_recent_returns(store: Store, now: datetime) -> dict[str, int]:
    """Recompute the returns of contacts whose window may still be open: the nightly repair
    for what the per-event recount cannot see (a contact recorded after the visit it covers,
    e.g. a back-dated engine run, or a follow-up undone and completed again)."""
    longest = Plan.select(fn.MAX(Plan.window_days)).where(Plan.store == store.id).scalar() or 0
    return attribute_returns(store, since=now - timedelta(days=int(longest) + 2))


# --- the manager's dashboard ------------------------------------------------------------------

CONTACTED = ("followup", "message")
LIFT_OUTCOMES = CONTACTED + ("held_out",)
MIN_LIFT_GROUP = 20  # fewer decisions than this on either side: "not enough data yet"
RISK_DAYS = (30, 60, 90)
NOT_WITHDRAWN = tuple(s for s in FOLLOWUP_STATUSES if s != "withdrawn")
last_timings: dict[str, float] = {}  # seconds per part of the last dashboard(), for the benchmark


def _between(column, start: datetime, end: datetime):
    return (column >= start) & (column < end)


def sum_if(condition, value=1):
    """SUM(CASE WHEN condition THEN value ELSE 0 END), 0 when there are no rows."""
    return fn.COALESCE(fn.SUM(pw.Case(None, [(condition, value)], 0)), 0)


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


def _money(value) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal("0.01"))


def _came_back(model):
    """The contact's return was recorded (by attribute_event or attribute_returns)."""
    return model.returned_at.is_null(False)


_index_names: dict[tuple, str | None] = {}


def _sqlite_index(model, columns: tuple[str, ...], alias: str = "t1"):
    """FROM `model` read through its index on `columns` on SQLite, whose planner misjudges a
    store column with one value (it prefers skip-scans of other indexes); None on PostgreSQL
    or when no such index exists."""
    if is_postgres():
        return None
    table = model._meta.table_name
    key = (id(db.obj), table, columns)
    if key not in _index_names:
        found = [i.name for i in db.get_indexes(table) if tuple(i.columns) == columns]
        _index_names[key] = found[0] if found else None
    if _index_names[key] is None:
        return None
    return f'"{table}" AS "{alias}" INDEXED BY "{_index_names[key]}"'


def _followup_contacts(store: Store, start: datetime, end: datetime):
    """Follow-ups completed in the period (every done follow-up has its contact log)."""
    return FollowUp.select().where(
        FollowUp.store == store.id,
        FollowUp.status == "done",
        _between(FollowUp.completed_at, start, end),
        FollowUp.plan.is_null(False),
    )


def _message_contacts(store: Store, start: datetime, end: datetime):
    """Messages sent in the period by a plan."""
    return Message.select().where(
        Message.store == store.id,
        Message.status.in_(SENT_STATUSES),
        _between(Message.sent_at, start, end),
        Message.plan.is_null(False),
    )


def returned_contacts(
    store: Store, start: datetime, end: datetime, plan_id: int | None, staff_id: int | None
) -> list[dict]:
    """The contacts behind the return-visit figure (optionally one plan's or one person's)."""
    parts = [(FollowUp, FollowUp.completed_at, _followup_contacts(store, start, end))]
    if not staff_id:
        parts.append((Message, Message.sent_at, _message_contacts(store, start, end)))
    rows = []
    for model, contact_at, query in parts:
        query = (
            query.select(model.customer, contact_at, model.return_revenue, Plan.name, Customer.name)
            .join(Plan, on=(model.plan == Plan.id))
            .switch(model)
            .join(Customer, on=(model.customer == Customer.id))
            .where(_came_back(model))
        )
        if plan_id:
            query = query.where(model.plan == plan_id)
        if staff_id:
            query = query.where(FollowUp.assignee == staff_id)
        for customer, at, revenue, plan, name in (
            query.order_by(contact_at.desc()).limit(500).tuples()
        ):
            rows.append(
                {
                    "customer": customer,
                    "name": name,
                    "at": at,
                    "detail": plan,
                    "amount": _money(revenue),
                }
            )
    return sorted(rows, key=lambda r: r["at"], reverse=True)


def _attributed_returns(store: Store, start: datetime, end: datetime) -> dict:
    """Contacts in the period (follow-ups completed, messages sent) and their recorded returns,
    per plan and per employee, each read in index order."""
    staff, plans = _staff_and_plans(store)
    figures = [fn.COUNT(SQL("*")), fn.COUNT(FollowUp.returned_at), fn.SUM(FollowUp.return_revenue)]
    contacts = (
        (FollowUp.store == store.id)
        & (FollowUp.status == "done")
        & _between(FollowUp.completed_at, start, end)
        & FollowUp.plan.is_null(False)
    )
    by_plan = _counted_by(FollowUp.plan, plans, CONTACTS_BY_PLAN, contacts, *figures, null=False)
    by_staff = _counted_by(
        FollowUp.assignee, staff, CONTACTS_BY_STAFF, contacts, *figures, null=False
    )
    messages = (
        _message_contacts(store, start, end)
        .select(
            Message.plan,
            fn.COUNT(SQL("*")),
            fn.COUNT(Message.returned_at),
            fn.SUM(Message.return_revenue),
        )
        .group_by(Message.plan)
    )
    out = {"plans": {}, "staff": {}, "total": _returns_row()}

    def add(row: dict, n, r, revenue) -> None:
        row["contacts"] += int(n or 0)
        row["returns"] += int(r or 0)
        row["revenue"] += _money(revenue)

    for plan, (n, r, revenue) in by_plan.items():
        add(out["plans"].setdefault(plan, _returns_row()), n, r, revenue)
        add(out["total"], n, r, revenue)
    for person, (n, r, revenue) in by_staff.items():
        add(out["staff"].setdefault(person, _returns_row()), n, r, revenue)
    for plan, n, r, revenue in messages.tuples():
        add(out["plans"].setdefault(plan, _returns_row()), n, r, revenue)
        add(out["total"], n, r, revenue)
    return out


def _returns_row() -> dict:
    """An empty contacts / returns / revenue row."""
    return {"contacts": 0, "returns": 0, "revenue": _money(0)}


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


def _holdout_plans(store: Store, plan_id: int | None = None) -> list[int]:
    """Ids of the store's plans with a holdout (or just `plan_id`, if it has one)."""
    query = Plan.select(Plan.id).where(Plan.store == store.id, Plan.holdout_percent > 0)
    if plan_id:
        query = query.where(Plan.id == plan_id)
    return [p for (p,) in query.tuples()]


def _lift_decisions(plans: list[int], start: datetime, end: datetime):
    """Decisions of holdout plans in the period: contacted or held out."""
    return Decision.select().where(
        Decision.plan.in_(plans),
        Decision.outcome.in_(LIFT_OUTCOMES),
        _between(Decision.created_at, start, end),
    )


def lift_customers(
    store: Store, start: datetime, end: datetime, plan_id: int | None, side: str
) -> list[dict]:
    """The contacted or held-out customers behind a lift figure, and whether each came back."""
    plans = _holdout_plans(store, plan_id)
    if not plans:
        return []
    outcomes = ("held_out",) if side == "held_out" else CONTACTED
    query = (
        _lift_decisions(plans, start, end)
        .select(
            Decision.customer, Decision.created_at, Decision.returned_at, Plan.name, Customer.name
        )
        .join(Plan, on=(Decision.plan == Plan.id))
        .switch(Decision)
        .join(Customer, on=(Decision.customer == Customer.id))
        .where(Decision.outcome.in_(outcomes))
        .order_by(Decision.created_at.desc())
    )
    return [
        {"customer": c, "name": n, "at": at, "detail": plan, "returned": returned is not None}
        for c, at, returned, plan, n in query.limit(500).tuples()
    ]


def _lift(store: Store, start: datetime, end: datetime) -> dict:
    """Per plan with a holdout: contacted vs held-out customers and how many came back (one
    index range per plan and outcome)."""
    plans = _holdout_plans(store)
    if not plans:
        return {}
    query = (
        _lift_decisions(plans, start, end)
        .select(Decision.plan, Decision.outcome, fn.COUNT(SQL("*")), fn.COUNT(Decision.returned_at))
        .group_by(Decision.plan, Decision.outcome)
    )
    out: dict = {}
    for plan, outcome, n, r in query.tuples():
        figures = out.setdefault(plan, {"contacted": [0, 0], "held_out": [0, 0]})
        side = figures["held_out" if outcome == "held_out" else "contacted"]
        side[0] += int(r or 0)
        side[1] += int(n)
    for figures in out.values():
        figures["interval"] = lift_interval(*figures["contacted"], *figures["held_out"])
    return out


def _staff_and_plans(store: Store) -> tuple[list[int], list[int]]:
    """Every staff id (a follow-up may name someone no longer in the store) and the store's plans."""
    staff = [s for (s,) in Staff.select(Staff.id).tuples()]
    plans = [p for (p,) in Plan.select(Plan.id).where(Plan.store == store.id).tuples()]
    return staff, plans


def _counted_by(
    column, keys: list, index: tuple[str, ...], where, *figures, null: bool = True
) -> dict:
    """{key: [figures…]} of the follow-ups matching `where`, one index range per key (so the
    rows arrive grouped and nothing is sorted), plus the key NULL unless `null` is False."""
    out = {}
    for matching in (column.in_(keys), column.is_null()) if null else (column.in_(keys),):
        query = FollowUp.select(column, *figures).where(matching & where)
        hinted = _sqlite_index(FollowUp, index)
        if hinted is not None:
            query = query.from_(SQL(hinted))
        for key, *values in query.group_by(column).tuples():
            out[key] = values
    return out


def _completion(store: Store, start: datetime, end: datetime, now: datetime) -> tuple:
    """Per employee and per plan: follow-ups due in the period (not withdrawn), done, open and
    overdue now, and withdrawn in the period."""
    cutoff = min(end, now)
    in_store = FollowUp.store == store.id
    due = in_store & FollowUp.status.in_(NOT_WITHDRAWN) & _between(FollowUp.due_at, start, cutoff)
    overdue = in_store & (FollowUp.status == "open") & (FollowUp.due_at < now)
    withdrawn = (
        FollowUp.select(FollowUp.assignee, FollowUp.plan, fn.COUNT(SQL("*")))
        .where(
            in_store,
            FollowUp.status == "withdrawn",
            _between(FollowUp.updated_at, start, end),
        )
        .group_by(FollowUp.assignee, FollowUp.plan)
        .tuples()
    )
    staff, plans = _staff_and_plans(store)
    results = []
    for column, keys, index, position in (
        (FollowUp.assignee, staff, BY_STAFF_INDEX, 0),
        (FollowUp.plan, plans, BY_PLAN_INDEX, 1),
    ):
        out: dict = {}
        done = sum_if(FollowUp.status == "done")
        for key, (n, d) in _counted_by(column, keys, index, due, fn.COUNT(SQL("*")), done).items():
            _row(out, key).update(due=int(n), done=int(d))
        for key, (n,) in _counted_by(column, keys, index, overdue, fn.COUNT(SQL("*"))).items():
            _row(out, key)["overdue"] = int(n)
        for *pair, n in withdrawn:
            _row(out, pair[position])["withdrawn"] += int(n)
        for figures in out.values():
            figures["rate"] = (
                round(100 * figures["done"] / figures["due"]) if figures["due"] else None
            )
        results.append(out)
    return tuple(results)


COMPLETION_KEYS = ("due", "done", "overdue", "withdrawn")


def _row(out: dict, key) -> dict:
    """The completion row of `key`, created empty."""
    return out.setdefault(key, dict.fromkeys(COMPLETION_KEYS, 0))


# Indexes of migration 0010, by their columns.
BY_STAFF_INDEX = ("store_id", "assignee_id", "status", "due_at")
BY_PLAN_INDEX = ("store_id", "plan_id", "status", "due_at")
CONTACTS_BY_PLAN = (
    "store_id",
    "plan_id",
    "status",
    "completed_at",
    "returned_at",
    "return_revenue",
)
CONTACTS_BY_STAFF = (
    "store_id",
    "assignee_id",
    "status",
    "completed_at",
    "plan_id",
    "returned_at",
    "return_revenue",
)


def _only_store_with_followups(store: Store) -> bool:
    """True when every follow-up in the database is this store's (two index probes)."""
    # Separate MIN and MAX: each is then one probe of the store index.
    low = FollowUp.select(fn.MIN(FollowUp.store)).scalar()
    high = FollowUp.select(fn.MAX(FollowUp.store)).scalar()
    return low is None or low == high == store.id


def _outcome_mix(store: Store, start: datetime, end: datetime) -> dict[str, int]:
    """Contact-log outcomes logged in the period (every log belongs to a follow-up)."""
    query = ContactLog.select(ContactLog.outcome, fn.COUNT(SQL("*"))).where(
        ContactLog.outcome.in_(OUTCOMES),  # one index range per outcome: nothing to sort
        _between(ContactLog.at, start, end),
        ContactLog.followup.is_null(False),
    )
    if not _only_store_with_followups(store):
        followup = FollowUp.alias("f")
        hinted = _sqlite_index(FollowUp, ("store_id",), alias="f")
        if hinted is None:
            query = query.join(followup, on=(ContactLog.followup == followup.id))
        else:
            # The store check from the store index alone, not from each follow-up's row.
            query = query.from_(
                SQL(f'"contact_log" AS "t1" JOIN {hinted} ON "f"."id" = "t1"."followup_id"')
            )
        query = query.where(followup.store == store.id)
    return {outcome: int(n) for outcome, n in query.group_by(ContactLog.outcome).tuples()}


def _decision_counts(store: Store, start: datetime, end: datetime) -> dict:
    """Per plan: withdrawn because the client booked, and missed occurrences, in the period."""
    plans = [p for (p,) in Plan.select(Plan.id).where(Plan.store == store.id).tuples()]
    if not plans:
        return {"withdrawn_booked": {}, "missed": {}}
    booked = (
        Decision.select(Decision.plan, fn.COUNT(SQL("*")))
        .where(
            Decision.plan.in_(plans),
            Decision.outcome == "withdrawn",
            _between(Decision.updated_at, start, end),
            Decision.reason.contains("appointment_booked"),
        )
        .group_by(Decision.plan)
    )
    missed = (
        Occurrence.select(Occurrence.plan, fn.COUNT(SQL("*")))
        .where(
            Occurrence.plan.in_(plans),
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


def _value_of(product: CardProduct | None, balance, uses) -> Decimal:
    """Value of cards of one product from their summed balances or remaining uses."""
    if product is None:
        return Decimal(0)
    if product.kind == "stored_value":
        return Decimal(str(balance or 0))
    if product.kind == "count" and product.uses and product.price is not None:
        return Decimal(int(uses or 0)) * Decimal(str(product.price)) / product.uses
    return Decimal(0)


def money_at_risk(store: Store, now: datetime) -> list[dict]:
    """Active card value expiring within 30, 60 and 90 days (store-local dates), with counts:
    one covering-index scan grouped by expiry day and product, valued in Python."""
    today = schedule.local_date(now, store.timezone)
    query = (
        CustomerCard.select(
            CustomerCard.expires_on,
            CustomerCard.product,
            fn.COUNT(SQL("*")),
            fn.SUM(CustomerCard.balance),
            fn.SUM(CustomerCard.remaining_uses),
        )
        .where(
            CustomerCard.store == store.id,
            CustomerCard.status == "active",
            CustomerCard.expires_on >= today,
            CustomerCard.expires_on <= today + timedelta(days=max(RISK_DAYS)),
        )
        .group_by(CustomerCard.expires_on, CustomerCard.product)
    )
    rows = list(query.tuples())
    products = {
        p.id: p for p in CardProduct.select().where(CardProduct.id.in_({r[1] for r in rows} or {0}))
    }
    out = [{"days": days, "value": Decimal(0), "cards": 0} for days in RISK_DAYS]
    for expires_on, product, n, balance, uses in rows:
        if isinstance(expires_on, str):
            expires_on = date.fromisoformat(expires_on)
        value = _value_of(products.get(product), balance, uses)
        for bucket in out:
            if expires_on <= today + timedelta(days=bucket["days"]):
                bucket["value"] += value
                bucket["cards"] += int(n)
    for bucket in out:
        bucket["value"] = _money(bucket["value"])
    return out


def _timed(name: str, function, *args):
    """function(*args), its wall time kept in last_timings[name] for the benchmark."""
    t0 = time.perf_counter()
    result = function(*args)
    last_timings[name] = time.perf_counter() - t0
    return result


def dashboard(store: Store, start: datetime, end: datetime, now: datetime) -> dict:
    """Every dashboard figure for a store and period, each from grouped index range scans."""
    last_timings.clear()
    by_staff, by_plan = _timed("completion", _completion, store, start, end, now)
    returns = _timed("returns", _attributed_returns, store, start, end)
    lift = _timed("lift", _lift, store, start, end)
    counts = _timed("withdrawn and missed", _decision_counts, store, start, end)
    outcomes = _timed("outcome mix", _outcome_mix, store, start, end)
    at_risk = _timed("money at risk", money_at_risk, store, now)
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
        "outcomes": outcomes,
        "returns": returns["total"],
        "withdrawn_booked": sum(counts["withdrawn_booked"].values()),
        "missed": sum(counts["missed"].values()),
        "at_risk": at_risk,
    }
