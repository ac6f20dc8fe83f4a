"""What customers did: purchases, services, card uses, appointments, visits."""

import peewee as pw

from app import clock
from app.db import BaseModel, JSONField, MoneyField, UTCDateTimeField
from app.models.cards import CustomerCard
from app.models.customers import Customer
from app.models.org import Staff, Store

EVENT_TYPES = (
    "purchase",
    "service_completed",
    "card_used",
    "appointment_booked",
    "appointment_cancelled",
    "visit",
    "top_up",
    "refund",
)
VISIT_TYPES = ("visit", "service_completed", "purchase", "card_used")


class Event(BaseModel):
    store = pw.ForeignKeyField(Store, on_delete="CASCADE")
    customer = pw.ForeignKeyField(Customer, backref="events", on_delete="CASCADE")
    external_id = pw.CharField(max_length=100)
    type = pw.CharField(max_length=24)
    occurred_at = UTCDateTimeField()
    amount = MoneyField(null=True)
    items = JSONField(null=True)
    card = pw.ForeignKeyField(CustomerCard, null=True, backref="events", on_delete="SET NULL")
    card_uses = pw.IntegerField(null=True)
    card_amount = MoneyField(null=True)
    appointment_at = UTCDateTimeField(null=True)
    staff = pw.ForeignKeyField(Staff, null=True, on_delete="SET NULL")
    source = pw.CharField(max_length=16, default="api")  # api | ui | import | demo
    triggers_plans = pw.BooleanField(default=True)
    created_at = UTCDateTimeField(default=clock.now)

    class Meta:
        indexes = (
            (("store", "external_id"), True),
            (("customer", "occurred_at"), False),
            (("store", "type", "occurred_at"), False),
        )


class EventItem(BaseModel):
    event = pw.ForeignKeyField(Event, backref="item_rows", on_delete="CASCADE")
    customer = pw.ForeignKeyField(Customer, on_delete="CASCADE")
    sku = pw.CharField(max_length=64)
    name = pw.CharField(max_length=200, default="")
    quantity = pw.IntegerField(default=1)
    price = MoneyField(null=True)

    class Meta:
        indexes = ((("customer", "sku"), False), (("sku",), False))


class CardLedger(BaseModel):
    """Every change to a card: issue, use, top-up, adjustment, expiry."""

    card = pw.ForeignKeyField(CustomerCard, backref="ledger", on_delete="CASCADE")
    event = pw.ForeignKeyField(Event, null=True, backref="card_movements", on_delete="SET NULL")
    kind = pw.CharField(max_length=16)  # issue | use | top_up | adjust | expire
    delta_balance = MoneyField(default=0)
    delta_uses = pw.IntegerField(default=0)
    balance_after = MoneyField(null=True)
    uses_after = pw.IntegerField(null=True)
    staff = pw.ForeignKeyField(Staff, null=True, on_delete="SET NULL")
    note = pw.CharField(max_length=300, default="")
    at = UTCDateTimeField(default=clock.now)

    class Meta:
        indexes = ((("card", "at"), False),)
