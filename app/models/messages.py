"""Automatic messages kept in an outbox until sent, with their status history."""

import peewee as pw

from app import clock
from app.db import BaseModel, JSONField, MoneyField, UTCDateTimeField
from app.models.customers import Customer
from app.models.org import Store
from app.models.plans import Decision, Occurrence, Plan

MESSAGE_STATUSES = (
    "queued",
    "sending",
    "sent",
    "delivered",
    "read",
    "failed",
    "suppressed",
    "withdrawn",
)


class Message(BaseModel):
    store = pw.ForeignKeyField(Store, on_delete="CASCADE")
    customer = pw.ForeignKeyField(Customer, backref="messages", on_delete="CASCADE")
    plan = pw.ForeignKeyField(Plan, null=True, backref="messages", on_delete="SET NULL")
    occurrence = pw.ForeignKeyField(Occurrence, null=True, on_delete="SET NULL")
    decision = pw.ForeignKeyField(Decision, null=True, unique=True, on_delete="SET NULL")
    channel = pw.CharField(max_length=16)
    to_address = pw.CharField(max_length=254, default="")
    subject = pw.CharField(max_length=200, default="")
    body = pw.TextField()
    variant = pw.CharField(max_length=2, default="")
    status = pw.CharField(max_length=12, default="queued")
    idempotency_key = pw.CharField(max_length=64, unique=True)
    provider_message_id = pw.CharField(max_length=200, null=True)
    attempts = pw.SmallIntegerField(default=0)
    next_attempt_at = UTCDateTimeField(null=True)
    error = pw.CharField(max_length=500, default="")
    created_at = UTCDateTimeField(default=clock.now)
    sending_at = UTCDateTimeField(null=True)
    sent_at = UTCDateTimeField(null=True)
    delivered_at = UTCDateTimeField(null=True)
    read_at = UTCDateTimeField(null=True)
    failed_at = UTCDateTimeField(null=True)
    closed_at = UTCDateTimeField(null=True)
    # Return attribution, recorded when the visit or booking arrives (reports.attribute_event).
    returned_at = UTCDateTimeField(null=True)
    return_revenue = MoneyField(null=True)

    class Meta:
        indexes = (
            (("store", "status", "sent_at", "plan", "returned_at", "return_revenue"), False),
            (("status", "next_attempt_at"), False),
            (("store", "channel", "status"), False),
            (("customer", "created_at"), False),
            (("plan", "status"), False),
            (("provider_message_id",), False),
            (("store", "channel", "sending_at"), False),
        )


class MessageStatusChange(BaseModel):
    message = pw.ForeignKeyField(Message, backref="history", on_delete="CASCADE")
    status = pw.CharField(max_length=12)
    detail = JSONField(null=True)
    at = UTCDateTimeField(default=clock.now)

    class Meta:
        indexes = ((("message", "at"), False),)


class ChannelSetting(BaseModel):
    """A store's configuration of one channel (credentials kept encrypted)."""

    store = pw.ForeignKeyField(Store, backref="channels", on_delete="CASCADE")
    channel = pw.CharField(max_length=16)
    enabled = pw.BooleanField(default=False)
    config = JSONField(default=dict)
    secret = pw.TextField(default="")
    # Messages per `rate_unit` ("second" or "minute"); None means the channel's default.
    rate_limit = pw.IntegerField(null=True)
    rate_unit = pw.CharField(max_length=8, default="second")
    daily_quota = pw.IntegerField(null=True)
    price = pw.DecimalField(max_digits=10, decimal_places=4, default=0)
    updated_at = UTCDateTimeField(default=clock.now)

    class Meta:
        indexes = ((("store", "channel"), True),)
