"""Loyalty points: an append-only ledger per customer."""

import peewee as pw

from app import clock
from app.db import BaseModel, UTCDateTimeField
from app.models.customers import Customer
from app.models.events import Event
from app.models.org import Staff, Store


class PointsEntry(BaseModel):
    store = pw.ForeignKeyField(Store, on_delete="CASCADE")
    customer = pw.ForeignKeyField(Customer, backref="points_entries", on_delete="CASCADE")
    delta = pw.IntegerField()
    kind = pw.CharField(max_length=16)  # signup | earn | bonus | adjust | redeem | expire | reverse
    event = pw.ForeignKeyField(Event, null=True, on_delete="SET NULL")
    # One credit per order: "earn:<event id>", "reverse:<event id>", "signup".
    dedupe_key = pw.CharField(max_length=80, null=True)
    reason = pw.CharField(max_length=200, default="")
    staff = pw.ForeignKeyField(Staff, null=True, on_delete="SET NULL")
    expires_at = UTCDateTimeField(null=True)
    at = UTCDateTimeField(default=clock.now)

    class Meta:
        indexes = ((("customer", "dedupe_key"), True), (("customer", "at"), False))
