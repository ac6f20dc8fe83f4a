"""Who gets a follow-up: assigned staff → who served them last → round-robin → manager queue.

Computed set-based: one SELECT (or UPDATE) with correlated subqueries and a CASE, never a
Python loop per customer. Only the store's short list of eligible staff is read into Python.
"""

from datetime import date

import peewee as pw

from app.db import db, is_postgres
from app.models import Customer, FollowUp, Staff, StaffLeave, StaffStore, Store, Visit

RULES = ("assigned", "last_served", "round_robin", "manager_queue", "staff")


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


def _parts(customer_id, store: Store, day: date, assigned_staff=None):
    """(assigned staff, who served last, round-robin pick) expressions for a customer column
    (`assigned_staff`: the customer's assigned_staff column, when the query has their row)."""
    everyone, employees = eligible_staff(store, day)
    if not everyone:
        return None
    if assigned_staff is not None:
        assigned = pw.Case(None, [(assigned_staff.in_(everyone), assigned_staff)], None)
    else:
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


def rule_of(action: dict | None) -> tuple[str, object]:
    """(rule, fixed staff id or email) named by a plan action; unknown rules mean the default."""
    action = action or {}
    rule = str(action.get("assignee_rule") or "default")
    staff = action.get("assignee")
    if rule.startswith("staff:"):
        rule, staff = "staff", rule[len("staff:") :]
    if rule not in (*RULES, "default"):
        rule = "default"
    if rule == "staff" and staff in (None, ""):
        rule = "default"
    return rule, staff


def _fixed_staff(store: Store, day: date, staff) -> int | None:
    """The fixed staff member's id when they can take work in the store that day."""
    everyone, _ = eligible_staff(store, day)
    if isinstance(staff, str) and not staff.isdigit():
        found = Staff.select(Staff.id).where(Staff.email == staff.strip().lower()).scalar()
    else:
        found = int(staff)
    return found if found in everyone else None


def sources(
    customer_id, store: Store, day: date, rule: str = "default", staff=None, assigned_staff=None
) -> list:
    """[(rule name, staff-id expression)] tried in order for a customer id column.

    `default` (and `assigned`): assigned staff → who served last → round-robin;
    `last_served`: who served last → assigned staff → round-robin; `round_robin`: round-robin
    only; `staff`: that staff member while they can take work, else the default order;
    `manager_queue`: nobody. Whoever no source answers for goes to the manager queue.
    """
    if rule == "manager_queue":
        return []
    parts = _parts(customer_id, store, day, assigned_staff)
    if parts is None:
        return []
    assigned, last_served, round_robin = parts
    default = [("assigned", assigned), ("last_served", last_served), ("round_robin", round_robin)]
    if rule == "last_served":
        return [default[1], default[0], default[2]]
    if rule == "round_robin":
        return [default[2]]
    if rule == "staff":
        fixed = _fixed_staff(store, day, staff)
        if fixed is not None:
            return [("staff", pw.Value(fixed))]
    return default


def pick(columns: list) -> tuple:
    """(assignee, rule name) over columns holding each source's answer, in order."""
    if not columns:
        return pw.Cast(pw.SQL("NULL"), "INTEGER"), pw.Value("manager_queue")
    assignee = pw.fn.COALESCE(*[col for _, col in columns]) if len(columns) > 1 else columns[0][1]
    rule = pw.Case(None, [(col.is_null(False), name) for name, col in columns], "manager_queue")
    return assignee, rule


def _rule_exprs(customer_id, store: Store, day: date, rule: str = "default", staff=None):
    """(assignee expression, rule-name expression) for a customer id column."""
    found = sources(customer_id, store, day, rule, staff)
    if not found:
        return pw.SQL("NULL"), pw.Value("manager_queue")
    assignee = pw.fn.COALESCE(*[expr for _, expr in found]) if len(found) > 1 else found[0][1]
    label = pw.Case(
        None,
        [
            (
                pw.fn.EXISTS(expr) if isinstance(expr, pw.SelectQuery) else expr.is_null(False),
                name,
            )
            for name, expr in found
        ],
        "manager_queue",
    )
    return assignee, label


def assignees(
    store: Store, customer_ids, day: date, rule: str = "default", staff=None
) -> dict[int, tuple]:
    """customer id → (staff id, rule) for a batch (a list or a subquery of ids), in one query.

    Each subquery runs once per customer: an inner SELECT computes them and the outer one
    picks the first that answered.
    """
    found = sources(Customer.id, store, day, rule, staff)
    if not found:
        return {}
    inner = Customer.select(
        Customer.id.alias("cid"), *[expr.alias(f"s{i}") for i, (_, expr) in enumerate(found)]
    ).where(Customer.id.in_(customer_ids))
    sql, params = inner.sql()
    names = [f"s{i}" for i in range(len(found))]
    whens = " ".join(
        f"WHEN {col} IS NOT NULL THEN '{name}'" for col, (name, _) in zip(names, found, strict=True)
    )
    cursor = db.execute_sql(
        f"SELECT cid, COALESCE({', '.join(names + ['NULL'])}), "
        f"CASE {whens} ELSE 'manager_queue' END FROM ({sql}) AS x",
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
