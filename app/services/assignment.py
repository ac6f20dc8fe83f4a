"""Who gets a follow-up: assigned staff → who served them last → round-robin → manager queue.

Computed set-based: one SELECT (or UPDATE) with correlated subqueries and a CASE, never a
Python loop per customer. Only the store's short list of eligible staff is read into Python.
"""

from datetime import date

import peewee as pw

from app.db import db, is_postgres
from app.models import Customer, FollowUp, Staff, StaffLeave, StaffStore, Store, Visit

RULES = ("assigned", "last_served", "round_robin", "manager_queue")


def mod(expr, divisor: int):
    """`expr % divisor` in SQL (peewee's Python `%` means LIKE/GLOB, not modulo)."""
    if is_postgres():
        return pw.fn.MOD(expr, int(divisor))
    return pw.NodeList((expr, pw.SQL("%"), pw.Value(int(divisor))), glue=" ", parens=True)


def eligible_staff(store: Store, day: date) -> tuple[list[int], list[int]]:
    """(everyone who can take work in the store that day, the employees among them), by id."""
    on_leave = StaffLeave.select(StaffLeave.staff).where(
        (StaffLeave.starts_on <= day) & (StaffLeave.ends_on >= day)
    )
    rows = (
        Staff.select(Staff.id, Staff.role)
        .join(StaffStore, on=(StaffStore.staff == Staff.id))
        .where(
            (StaffStore.store == store.id) & (Staff.active == True) & ~(Staff.id.in_(on_leave))  # noqa: E712
        )
        .order_by(Staff.id)
        .tuples()
    )
    everyone = [sid for sid, _ in rows]
    employees = [sid for sid, role in rows if role == "employee"]
    return everyone, employees


def _parts(customer_id, store: Store, day: date):
    """(assigned staff, who served last, round-robin pick) expressions for a customer column."""
    everyone, employees = eligible_staff(store, day)
    if not everyone:
        return None
    Assigned = Customer.alias("ac")
    assigned = Assigned.select(Assigned.assigned_staff).where(
        (Assigned.id == customer_id) & Assigned.assigned_staff.in_(everyone)
    )
    last_served = (
        Visit.select(Visit.staff)
        .where((Visit.customer == customer_id) & Visit.staff.in_(everyone))
        .order_by(Visit.day.desc())
        .limit(1)
    )
    if employees:
        round_robin = pw.Case(mod(customer_id, len(employees)), list(enumerate(employees)))
    else:
        round_robin = pw.Cast(pw.SQL("NULL"), "INTEGER")
    return assigned, last_served, round_robin


def _rule_exprs(customer_id, store: Store, day: date):
    """(assignee expression, rule-name expression) for a customer id column."""
    parts = _parts(customer_id, store, day)
    if parts is None:
        return pw.SQL("NULL"), pw.Value("manager_queue")
    assigned, last_served, round_robin = parts
    assignee = pw.fn.COALESCE(assigned, last_served, round_robin)
    rule = pw.Case(
        None,
        [(pw.fn.EXISTS(assigned), "assigned"), (pw.fn.EXISTS(last_served), "last_served")],
        pw.Case(None, [(round_robin.is_null(False), "round_robin")], "manager_queue"),
    )
    return assignee, rule


def assignees(store: Store, customer_ids, day: date) -> dict[int, tuple]:
    """customer id → (staff id, rule) for a batch (a list or a subquery of ids), in one query.

    Each subquery runs once per customer: an inner SELECT computes them and the outer one
    picks the first that answered.
    """
    parts = _parts(Customer.id, store, day)
    if parts is None:
        return {}
    assigned, last_served, round_robin = parts
    inner = Customer.select(
        Customer.id.alias("cid"),
        assigned.alias("a"),
        last_served.alias("l"),
        round_robin.alias("r"),
    ).where(Customer.id.in_(customer_ids))
    sql, params = inner.sql()
    cursor = db.execute_sql(
        "SELECT cid, COALESCE(a, l, r), CASE WHEN a IS NOT NULL THEN 'assigned' "
        "WHEN l IS NOT NULL THEN 'last_served' WHEN r IS NOT NULL THEN 'round_robin' "
        f"ELSE 'manager_queue' END FROM ({sql}) AS x",
        params,
    )
    return {cid: (sid, rule) for cid, sid, rule in cursor.fetchall()}


def reassign_open(store: Store, day: date, only_unassigned: bool = True) -> int:
    """Re-apply the rule to the store's open follow-ups (e.g. after staff leave); one UPDATE."""
    assignee, rule = _rule_exprs(FollowUp.customer, store, day)
    where = (FollowUp.store == store.id) & (FollowUp.status == "open")
    if only_unassigned:
        where &= FollowUp.assignee.is_null()
    return FollowUp.update(assignee=assignee, assigned_by_rule=rule).where(where).execute()
