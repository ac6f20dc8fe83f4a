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


class Reward(BaseModel):
    """Something a customer can take for points (a free product, a service)."""

    store = pw.ForeignKeyField(Store, backref="rewards", on_delete="CASCADE")
    name = pw.CharField(max_length=200)
    points_price = pw.IntegerField(default=200)
    active = pw.BooleanField(default=True)
    stock = pw.IntegerField(null=True)
    description = pw.TextField(default="")
    created_at = UTCDateTimeField(default=clock.now)

    class Meta:
        indexes = ((("store", "active", "points_price"), False),)


class Coupon(BaseModel):
    """A redeemed reward: a single-use code that expires."""

    store = pw.ForeignKeyField(Store, on_delete="CASCADE")
    customer = pw.ForeignKeyField(Customer, backref="coupons", on_delete="CASCADE")
    reward = pw.ForeignKeyField(Reward, backref="coupons", on_delete="RESTRICT")
    code = pw.CharField(max_length=16, unique=True)
    points = pw.IntegerField()
    status = pw.CharField(max_length=12, default="active")  # active | used | expired
    source = pw.CharField(max_length=12, default="counter")  # counter | portal
    redeem_entry = pw.ForeignKeyField(PointsEntry, null=True, on_delete="SET NULL")
    issued_by = pw.ForeignKeyField(Staff, null=True, on_delete="SET NULL", backref="+")
    issued_at = UTCDateTimeField(default=clock.now)
    expires_at = UTCDateTimeField()
    used_at = UTCDateTimeField(null=True)
    used_by = pw.ForeignKeyField(Staff, null=True, on_delete="SET NULL", backref="+")
    refunded = pw.BooleanField(default=False)

    class Meta:
        indexes = (
            (("customer", "status"), False),
            (("store", "status", "expires_at"), False),
        )
