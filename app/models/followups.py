"""Follow-ups for staff and what staff logged on them."""

import peewee as pw

from app import clock
from app.db import BaseModel, MoneyField, UTCDateTimeField
from app.models.customers import Customer
from app.models.org import Staff, Store
from app.models.plans import Decision, Occurrence, Plan

FOLLOWUP_STATUSES = ("open", "done", "withdrawn", "expired")
OUTCOMES = ("reached", "booked", "no_answer", "declined", "wrong_number", "opted_out")


class FollowUp(BaseModel):
    # customer, plan and assignee each lead a composite index below, so they have no
    # single-column index of their own (fewer index writes per follow-up; migration 0011). The
    # narrow store index stays: the dashboard reads store membership from it alone.
    store = pw.ForeignKeyField(Store, on_delete="CASCADE")
    customer = pw.ForeignKeyField(Customer, backref="followups", on_delete="CASCADE", index=False)
    plan = pw.ForeignKeyField(
        Plan, null=True, backref="followups", on_delete="SET NULL", index=False
    )
    occurrence = pw.ForeignKeyField(Occurrence, null=True, on_delete="SET NULL")
    assignee = pw.ForeignKeyField(
        Staff, null=True, backref="followups", on_delete="SET NULL", index=False
    )
    assigned_by_rule = pw.CharField(max_length=20, default="")
    status = pw.CharField(max_length=10, default="open")
    # Equals customer_id while open, NULL otherwise: a unique index then allows one open
    # follow-up per customer on every backend.
    open_customer = pw.IntegerField(null=True, unique=True)
    due_at = UTCDateTimeField()
    snoozed_until = UTCDateTimeField(null=True)
    script = pw.TextField(default="")
    variant = pw.CharField(max_length=2, default="")
    outcome = pw.CharField(max_length=16, null=True)
    attempts = pw.SmallIntegerField(default=0)
    note = pw.TextField(default="")
    withdrawn_reason = pw.CharField(max_length=200, default="")
    parent = pw.ForeignKeyField(
        "self", null=True, backref="children", on_delete="SET NULL", index=False
    )
    created_at = UTCDateTimeField(default=clock.now)
    completed_at = UTCDateTimeField(null=True)
    updated_at = UTCDateTimeField(default=clock.now)
    # Return attribution, recorded when the visit or booking arrives (reports.attribute_event).
    returned_at = UTCDateTimeField(null=True)
    return_revenue = MoneyField(null=True)

    class Meta:
        indexes = (
            (("assignee", "status", "due_at"), False),
            (("store", "status", "due_at"), False),
            (("plan", "status"), False),
            (("customer", "created_at"), False),
            # The dashboard reads its figures per employee and per plan in index order.
            (("store", "assignee", "status", "due_at"), False),
            (("store", "plan", "status", "due_at"), False),
            (("store", "status", "updated_at", "assignee", "plan"), False),
        )


# Few follow-ups have a parent (a next follow-up a staff member asked for): a partial index,
# so the follow-ups an occurrence makes write no entry to it (migration 0014).
FollowUp.add_index(
    FollowUp.index(FollowUp.parent, name="follow_up_parent_given").where(
        FollowUp.parent.is_null(False)
    )
)


# The dashboard's contacts (follow-ups completed in a period) per plan and per employee: only
# completed follow-ups have a completed_at, so these indexes are partial and the open follow-ups
# an occurrence inserts write no entry to them (migration 0017).
for _name, _columns in (
    (
        "follow_up_contacts_by_plan",
        ("store", "plan", "status", "completed_at", "returned_at", "return_revenue"),
    ),
    (
        "follow_up_contacts_by_staff",
        ("store", "assignee", "status", "completed_at", "plan", "returned_at", "return_revenue"),
    ),
):
    FollowUp.add_index(
        FollowUp.index(*[getattr(FollowUp, c) for c in _columns], name=_name).where(
            FollowUp.completed_at.is_null(False)
        )
    )


class FollowUpReason(BaseModel):
    """One plan decision a follow-up covers (several when merged for one call). Its plan and
    occurrence are the decision's: not copied here, so a big occurrence writes two indexes and
    two foreign-key checks fewer per follow-up (migration 0016)."""

    followup = pw.ForeignKeyField(FollowUp, backref="reasons", on_delete="CASCADE")
    decision = pw.ForeignKeyField(Decision, null=True, unique=True, on_delete="SET NULL")
    text = pw.CharField(max_length=300, default="")
    script = pw.TextField(default="")
    created_at = UTCDateTimeField(default=clock.now)

    class Meta:
        indexes = ((("followup",), False),)

    @classmethod
    def with_plans(cls):
        """Reasons with their decision's plan_id, occurrence_id, dedupe_key and plan_name as
        attributes (None where the decision or plan is gone)."""
        return (
            cls.select(
                cls,
                Decision.plan.alias("plan_id"),
                Decision.occurrence.alias("occurrence_id"),
                Decision.dedupe_key.alias("dedupe_key"),
                Plan.name.alias("plan_name"),
            )
            .join(Decision, pw.JOIN.LEFT_OUTER, on=(Decision.id == cls.decision))
            .join(Plan, pw.JOIN.LEFT_OUTER, on=(Plan.id == Decision.plan))
            .objects()
        )


class ContactLog(BaseModel):
    followup = pw.ForeignKeyField(FollowUp, null=True, backref="logs", on_delete="CASCADE")
    customer = pw.ForeignKeyField(Customer, backref="contact_logs", on_delete="CASCADE")
    staff = pw.ForeignKeyField(Staff, null=True, on_delete="SET NULL")
    channel = pw.CharField(max_length=16, default="phone")
    outcome = pw.CharField(max_length=16)
    note = pw.TextField(default="")
    next_at = UTCDateTimeField(null=True)
    at = UTCDateTimeField(default=clock.now)

    class Meta:
        indexes = (
            (("customer", "at"), False),
            (("staff", "at"), False),
            (("outcome", "at", "followup"), False),
        )
