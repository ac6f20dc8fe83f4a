"""Who gets a follow-up: assigned staff → who served them last → round-robin → manager queue.

Computed set-based: one SELECT (or UPDATE) with correlated subqueries and a CASE, never a
Python loop per customer. Only the store's short list of eligible staff is read into Python.
"""

from datetime import date

import peewee as pw

from app.db import is_postgres
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


def _rule_exprs(customer_id, store: Store, day: date):
    """(assignee expression, rule-name expression) for a customer id column."""
    everyone, employees = eligible_staff(store, day)
    if not everyone:
        return pw.SQL("NULL"), pw.Value("manager_queue")
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
        modulo = mod(customer_id, len(employees))
        round_robin = pw.Case(modulo, [(i, sid) for i, sid in enumerate(employees)])
    else:
        round_robin = pw.SQL("NULL")
    assignee = pw.fn.COALESCE(assigned, last_served, round_robin)
    rule = pw.Case(
        None,
        [
            (pw.fn.EXISTS(assigned), "assigned"),
            (pw.fn.EXISTS(last_served), "last_served"),
        ],
        "round_robin" if employees else "manager_queue",
    )
    return assignee, rule


def assignees(store: Store, customer_ids: list[int], day: date) -> dict[int, tuple]:
    """customer id → (staff id or None, rule) for a batch of customers, in one query."""
    if not customer_ids:
        return {}
    assignee, rule = _rule_exprs(Customer.id, store, day)
    query = Customer.select(Customer.id, assignee, rule).where(Customer.id.in_(customer_ids))
    return {cid: (sid, rule_name) for cid, sid, rule_name in query.tuples()}


def reassign_open(store: Store, day: date, only_unassigned: bool = True) -> int:
    """Re-apply the rule to the store's open follow-ups (e.g. after staff leave); one UPDATE."""
    assignee, rule = _rule_exprs(FollowUp.customer, store, day)
    where = (FollowUp.store == store.id) & (FollowUp.status == "open")
    if only_unassigned:
        where &= FollowUp.assignee.is_null()
    return FollowUp.update(assignee=assignee, assigned_by_rule=rule).where(where).execute()
