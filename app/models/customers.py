"""Customers with their tags, custom attributes, consent, visits and segments."""

import peewee as pw

from app import clock
from app.db import BaseModel, JSONField, MoneyField, UTCDateTimeField
from app.models.org import Staff, Store

GENDERS = ("female", "male", "other")
CHANNELS = ("whatsapp", "line", "sms", "email")


class Customer(BaseModel):
    store = pw.ForeignKeyField(Store, backref="customers", on_delete="CASCADE")
    external_id = pw.CharField(max_length=100, null=True)
    name = pw.CharField(max_length=200)
    phone = pw.CharField(max_length=20, null=True)
    email = pw.CharField(max_length=254, null=True)
    line_id = pw.CharField(max_length=100, null=True)
    gender = pw.CharField(max_length=8, null=True)
    birthday = pw.DateField(null=True)
    # Month*100+day of the birthday, so "birthday in N days" is an indexed range.
    birthday_md = pw.SmallIntegerField(null=True)
    source = pw.CharField(max_length=60, null=True)
    level = pw.CharField(max_length=40, null=True)
    locale = pw.CharField(max_length=16, null=True)
    assigned_staff = pw.ForeignKeyField(
        Staff, null=True, backref="assigned_customers", on_delete="SET NULL"
    )
    notes = pw.TextField(default="")
    joined_at = UTCDateTimeField(default=clock.now)
    first_visit_at = UTCDateTimeField(null=True)
    last_visit_at = UTCDateTimeField(null=True)
    visit_count = pw.IntegerField(default=0)
    total_spend = MoneyField(default=0)
    points = pw.IntegerField(default=0)
    phone_flagged_at = UTCDateTimeField(null=True)
    portal_secret = pw.CharField(max_length=32, null=True)
    created_at = UTCDateTimeField(default=clock.now)
    updated_at = UTCDateTimeField(default=clock.now)

    class Meta:
        indexes = (
            (("store", "phone"), True),
            (("store", "external_id"), True),
            (("store", "last_visit_at"), False),
            (("store", "birthday_md"), False),
            (("store", "joined_at"), False),
            (("store", "gender"), False),
            (("store", "name"), False),
            (("name",), False),  # GIN trigram on PostgreSQL (migration 0009)
            (("assigned_staff",), False),
        )


class Visit(BaseModel):
    """One day on which a customer came in (several events that day are one visit)."""

    customer = pw.ForeignKeyField(Customer, backref="visits", on_delete="CASCADE")
    store = pw.ForeignKeyField(Store, on_delete="CASCADE")
    day = pw.DateField()
    first_at = UTCDateTimeField()
    amount = MoneyField(default=0)
    staff = pw.ForeignKeyField(Staff, null=True, on_delete="SET NULL")

    class Meta:
        indexes = ((("customer", "day"), True), (("store", "day"), False))


class Tag(BaseModel):
    store = pw.ForeignKeyField(Store, backref="tags", on_delete="CASCADE")
    name = pw.CharField(max_length=60)
    dimension = pw.CharField(max_length=60, default="")
    colour = pw.CharField(max_length=7, default="#6b7280")
    created_at = UTCDateTimeField(default=clock.now)

    class Meta:
        indexes = ((("store", "name"), True),)


class CustomerTag(BaseModel):
    customer = pw.ForeignKeyField(Customer, backref="customer_tags", on_delete="CASCADE")
    tag = pw.ForeignKeyField(Tag, backref="customer_tags", on_delete="CASCADE")
    source = pw.CharField(max_length=20, default="manual")
    added_at = UTCDateTimeField(default=clock.now)

    class Meta:
        # (tag, customer) covers "customers with tag X" for audiences (migration 0002).
        indexes = (
            (("customer", "tag"), True),
            (("tag",), False),
            (("tag", "customer"), False),
        )


class CustomerAttribute(BaseModel):
    customer = pw.ForeignKeyField(Customer, backref="attributes", on_delete="CASCADE")
    key = pw.CharField(max_length=60)
    value = pw.CharField(max_length=500)

    class Meta:
        indexes = ((("customer", "key"), True), (("key", "value"), False))


class Consent(BaseModel):
    """Consent for one channel, with when and where it was given or withdrawn."""

    customer = pw.ForeignKeyField(Customer, backref="consents", on_delete="CASCADE")
    channel = pw.CharField(max_length=16)
    granted = pw.BooleanField()
    source = pw.CharField(max_length=40, default="")
    at = UTCDateTimeField(default=clock.now)

    class Meta:
        indexes = ((("customer", "channel"), True), (("channel", "granted"), False))


class ConsentChange(BaseModel):
    """The history of consent: every grant and every opt-out."""

    customer = pw.ForeignKeyField(Customer, backref="consent_changes", on_delete="CASCADE")
    channel = pw.CharField(max_length=16)
    granted = pw.BooleanField()
    source = pw.CharField(max_length=40, default="")
    staff = pw.ForeignKeyField(Staff, null=True, on_delete="SET NULL")
    at = UTCDateTimeField(default=clock.now)


class Segment(BaseModel):
    store = pw.ForeignKeyField(Store, backref="segments", on_delete="CASCADE")
    key = pw.CharField(max_length=60)
    name = pw.CharField(max_length=120)
    kind = pw.CharField(max_length=10, default="custom")  # custom | smart
    audience = JSONField(null=True)
    created_by = pw.ForeignKeyField(Staff, null=True, on_delete="SET NULL")
    created_at = UTCDateTimeField(default=clock.now)

    class Meta:
        indexes = ((("store", "key"), True),)


class TagRule(BaseModel):
    """Automatic tagging: customers matching the audience get (or lose) the tag."""

    store = pw.ForeignKeyField(Store, backref="tag_rules", on_delete="CASCADE")
    tag = pw.ForeignKeyField(Tag, backref="rules", on_delete="CASCADE")
    action = pw.CharField(max_length=8, default="add")  # add | remove
    audience = JSONField()
    active = pw.BooleanField(default=True)
    last_run_at = UTCDateTimeField(null=True)
    created_at = UTCDateTimeField(default=clock.now)
