"""Card products (stored-value, count, period) and the cards customers hold."""

import peewee as pw

from app import clock
from app.db import BaseModel, MoneyField, UTCDateTimeField
from app.models.customers import Customer
from app.models.org import Store

CARD_KINDS = ("stored_value", "count", "period")


class CardProduct(BaseModel):
    store = pw.ForeignKeyField(Store, backref="card_products", on_delete="CASCADE")
    sku = pw.CharField(max_length=64)
    name = pw.CharField(max_length=200)
    kind = pw.CharField(max_length=16)
    price = MoneyField(null=True)
    uses = pw.IntegerField(null=True)
    value = MoneyField(null=True)
    valid_days = pw.IntegerField(null=True)
    active = pw.BooleanField(default=True)
    created_at = UTCDateTimeField(default=clock.now)

    class Meta:
        indexes = ((("store", "sku"), True),)


class CustomerCard(BaseModel):
    store = pw.ForeignKeyField(Store, on_delete="CASCADE")
    customer = pw.ForeignKeyField(Customer, backref="cards", on_delete="CASCADE")
    product = pw.ForeignKeyField(CardProduct, backref="cards", on_delete="RESTRICT")
    external_id = pw.CharField(max_length=100, null=True)
    balance = MoneyField(null=True)
    remaining_uses = pw.IntegerField(null=True)
    expires_on = pw.DateField(null=True)
    status = pw.CharField(max_length=12, default="active")  # active | used_up | expired | cancelled
    issued_at = UTCDateTimeField(default=clock.now)
    last_used_at = UTCDateTimeField(null=True)

    class Meta:
        indexes = (
            (("store", "external_id"), True),
            (("customer", "status"), False),
            (("store", "expires_on"), False),
            (("product",), False),
            # Covering indexes for audience card conditions on active cards (migration 0002).
            (("store", "status", "balance", "customer"), False),
            (("store", "status", "remaining_uses", "customer"), False),
            (("store", "status", "expires_on", "customer"), False),
            # Money at risk on the dashboard, read from the index alone (migration 0008).
            (("store", "status", "expires_on", "product", "balance", "remaining_uses"), False),
        )
