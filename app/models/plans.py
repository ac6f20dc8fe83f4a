"""Plans, their versions, occurrences, per-customer decisions and step progress."""

import peewee as pw

from app import clock
from app.db import BaseModel, JSONField, UTCDateTimeField
from app.models.customers import Customer
from app.models.events import Event
from app.models.org import Staff, Store

PLAN_TYPES = ("one_off", "behaviour", "recurring")
PLAN_STATUSES = ("draft", "active", "paused", "archived")


class Plan(BaseModel):
    store = pw.ForeignKeyField(Store, backref="plans", on_delete="CASCADE")
    name = pw.CharField(max_length=200)
    template = pw.CharField(max_length=40, null=True)
    type = pw.CharField(max_length=12)
    status = pw.CharField(max_length=10, default="draft")
    version = pw.IntegerField(default=1)
    params = JSONField(default=dict)
    schedule = JSONField(null=True)  # {"rrule": "...", "at": "10:00", "dtstart": "..."}
    trigger = JSONField(
        null=True
    )  # {"event": "...", "products": [...], "delay_days": n, "at": "09:00"}
    audience = JSONField(null=True)
    action = JSONField(default=dict)
    steps = JSONField(null=True)
    backfill = pw.BooleanField(default=True)
    holdout_percent = pw.DecimalField(max_digits=5, decimal_places=2, default=0)
    priority = pw.SmallIntegerField(default=50)  # lower runs first when budgets are tight
    window_days = pw.SmallIntegerField(default=30)  # return-visit attribution window
    next_run_at = UTCDateTimeField(null=True)
    last_run_at = UTCDateTimeField(null=True)
    activated_at = UTCDateTimeField(null=True)
    created_by = pw.ForeignKeyField(Staff, null=True, on_delete="SET NULL")
    created_at = UTCDateTimeField(default=clock.now)
    updated_at = UTCDateTimeField(default=clock.now)

    class Meta:
        indexes = ((("status", "next_run_at"), False), (("store", "status"), False))


class PlanVersion(BaseModel):
    plan = pw.ForeignKeyField(Plan, backref="versions", on_delete="CASCADE")
    version = pw.IntegerField()
    snapshot = JSONField()
    created_by = pw.ForeignKeyField(Staff, null=True, on_delete="SET NULL")
    created_at = UTCDateTimeField(default=clock.now)

    class Meta:
        indexes = ((("plan", "version"), True),)


class Occurrence(BaseModel):
    """One firing of a plan: a date for a recurring plan, one event for a behaviour plan."""

    plan = pw.ForeignKeyField(Plan, backref="occurrences", on_delete="CASCADE")
    version = pw.IntegerField(default=1)
    key = pw.CharField(max_length=80)
    step = pw.SmallIntegerField(default=0)
    scheduled_for = UTCDateTimeField()
    status = pw.CharField(max_length=10, default="pending")  # pending | running | done | missed
    event = pw.ForeignKeyField(Event, null=True, on_delete="CASCADE")
    started_at = UTCDateTimeField(null=True)
    finished_at = UTCDateTimeField(null=True)
    created_count = pw.IntegerField(default=0)
    detail = JSONField(null=True)

    class Meta:
        indexes = (
            (("plan", "key", "step"), True),
            (("status", "scheduled_for"), False),
        )


class Enrollment(BaseModel):
    """A customer's progress through a multi-step plan."""

    plan = pw.ForeignKeyField(Plan, backref="enrollments", on_delete="CASCADE")
    customer = pw.ForeignKeyField(Customer, backref="enrollments", on_delete="CASCADE")
    key = pw.CharField(max_length=80)
    step = pw.SmallIntegerField(default=0)
    status = pw.CharField(max_length=10, default="active")  # active | converted | left | done
    started_at = UTCDateTimeField(default=clock.now)
    next_step_at = UTCDateTimeField(null=True)
    updated_at = UTCDateTimeField(default=clock.now)

    class Meta:
        indexes = (
            (("plan", "customer", "key"), True),
            (("status", "next_step_at"), False),
        )


class Decision(BaseModel):
    """What a plan decided for one customer in one occurrence; the exactly-once key."""

    # No single-column indexes: each column leads a composite index below (fewer index writes
    # per decision; migration 0011).
    plan = pw.ForeignKeyField(Plan, backref="decisions", on_delete="CASCADE", index=False)
    occurrence = pw.ForeignKeyField(
        Occurrence, backref="decisions", on_delete="CASCADE", index=False
    )
    customer = pw.ForeignKeyField(Customer, backref="decisions", on_delete="CASCADE", index=False)
    step = pw.SmallIntegerField(default=0)
    dedupe_key = pw.CharField(max_length=80)
    outcome = pw.CharField(
        max_length=12
    )  # followup | message | held_out | skipped | deferred | withdrawn
    variant = pw.CharField(max_length=2, default="")
    branch = pw.SmallIntegerField(null=True)
    reason = pw.CharField(max_length=300, default="")
    defer_until = UTCDateTimeField(null=True)
    created_at = UTCDateTimeField(default=clock.now)
    updated_at = UTCDateTimeField(default=clock.now)
    returned_at = UTCDateTimeField(null=True)  # return attribution, for the holdout lift

    class Meta:
        indexes = (
            (("plan", "step", "customer", "dedupe_key"), True),
            (("plan", "outcome", "created_at", "returned_at", "updated_at"), False),
            (("occurrence", "outcome"), False),
            (("customer", "created_at"), False),
        )


# Only deferred decisions have a defer_until: a partial index stays as small as they are, and
# the decisions a big occurrence inserts write no entry to it (migration 0014).
Decision.add_index(
    Decision.index(Decision.defer_until, name="decision_deferred_until").where(
        Decision.defer_until.is_null(False)
    )
)


class WhyLog(BaseModel):
    """A timeline entry for every plan decision about a customer."""

    # (customer, at) serves every lookup by customer (migration 0011).
    customer = pw.ForeignKeyField(Customer, backref="why_log", on_delete="CASCADE", index=False)
    plan = pw.ForeignKeyField(Plan, null=True, on_delete="CASCADE")
    occurrence = pw.ForeignKeyField(Occurrence, null=True, on_delete="CASCADE")
    kind = pw.CharField(max_length=16)  # created | withdrawn | deferred | skipped | held_out
    detail = pw.CharField(max_length=300, default="")
    at = UTCDateTimeField(default=clock.now)

    class Meta:
        indexes = ((("customer", "at"), False),)


class SchedulerLock(BaseModel):
    """A lease that expires by itself, so a killed worker never blocks the scheduler."""

    name = pw.CharField(max_length=60, primary_key=True)
    holder = pw.CharField(max_length=80)
    expires_at = UTCDateTimeField()
