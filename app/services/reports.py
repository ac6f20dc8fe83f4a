"""Reports: what plans and staff did in a period, and who came back afterwards (set-based SQL)."""

from datetime import datetime

import peewee as pw
from peewee import SQL, fn

from app.db import is_postgres
from app.models import ContactLog, FollowUp, Message, Plan, Staff, Store, Visit

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
