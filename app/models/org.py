"""Stores, staff, their memberships, sessions, logins, API tokens and the audit log."""

import peewee as pw

from app import clock
from app.db import BaseModel, JSONField, UTCDateTimeField

ROLES = ("employee", "manager", "owner")


class Store(BaseModel):
    key = pw.CharField(max_length=64, unique=True)
    name = pw.CharField(max_length=200)
    timezone = pw.CharField(max_length=64, default="UTC")
    region = pw.CharField(max_length=2, default="MY")
    currency = pw.CharField(max_length=3, default="MYR")
    locale = pw.CharField(max_length=16, default="en")
    member_day = pw.SmallIntegerField(null=True)
    quiet_start = pw.CharField(max_length=5, default="21:00")
    quiet_end = pw.CharField(max_length=5, default="09:00")
    settings = JSONField(default=dict)
    active = pw.BooleanField(default=True)
    created_at = UTCDateTimeField(default=clock.now)

    def setting(self, name: str, default=None):
        """A per-store setting with its default."""
        return (self.settings or {}).get(name, default)


class Staff(BaseModel):
    email = pw.CharField(max_length=254, unique=True)
    name = pw.CharField(max_length=200)
    password_hash = pw.CharField(max_length=255)
    role = pw.CharField(max_length=16, choices=[(r, r) for r in ROLES], default="employee")
    active = pw.BooleanField(default=True)
    locale = pw.CharField(max_length=16, null=True)
    phone = pw.CharField(max_length=20, null=True)
    password_changed_at = UTCDateTimeField(default=clock.now)
    last_login_at = UTCDateTimeField(null=True)
    created_at = UTCDateTimeField(default=clock.now)


class StaffStore(BaseModel):
    staff = pw.ForeignKeyField(Staff, backref="memberships", on_delete="CASCADE")
    store = pw.ForeignKeyField(Store, backref="memberships", on_delete="CASCADE")

    class Meta:
        indexes = ((("staff", "store"), True), (("store",), False))


class StaffLeave(BaseModel):
    staff = pw.ForeignKeyField(Staff, backref="leaves", on_delete="CASCADE")
    starts_on = pw.DateField()
    ends_on = pw.DateField()
    note = pw.CharField(max_length=200, default="")
    created_at = UTCDateTimeField(default=clock.now)

    class Meta:
        indexes = ((("staff", "starts_on"), False),)


class StaffSession(BaseModel):
    """One signed-in browser; revoking it makes a copied cookie useless."""

    token_hash = pw.CharField(max_length=64, unique=True)
    staff = pw.ForeignKeyField(Staff, backref="sessions", on_delete="CASCADE")
    created_at = UTCDateTimeField(default=clock.now)
    last_seen_at = UTCDateTimeField(default=clock.now)
    revoked_at = UTCDateTimeField(null=True)
    ip = pw.CharField(max_length=64, default="")
    user_agent = pw.CharField(max_length=300, default="")


class LoginEvent(BaseModel):
    """Every sign-in attempt: the login audit and the shared rate-limit counter."""

    email = pw.CharField(max_length=254)
    staff = pw.ForeignKeyField(Staff, null=True, backref="login_events", on_delete="SET NULL")
    ip = pw.CharField(max_length=64, default="")
    user_agent = pw.CharField(max_length=300, default="")
    success = pw.BooleanField()
    reason = pw.CharField(max_length=40, default="")
    at = UTCDateTimeField(default=clock.now)

    class Meta:
        indexes = ((("email", "at"), False), (("ip", "at"), False))


class ApiToken(BaseModel):
    store = pw.ForeignKeyField(Store, backref="tokens", on_delete="CASCADE")
    name = pw.CharField(max_length=100, default="")
    prefix = pw.CharField(max_length=12)
    token_hash = pw.CharField(max_length=64, unique=True)
    created_at = UTCDateTimeField(default=clock.now)
    created_by = pw.ForeignKeyField(Staff, null=True, on_delete="SET NULL")
    last_used_at = UTCDateTimeField(null=True)
    revoked_at = UTCDateTimeField(null=True)


class AuditLog(BaseModel):
    at = UTCDateTimeField(default=clock.now)
    staff = pw.ForeignKeyField(Staff, null=True, on_delete="SET NULL")
    store = pw.ForeignKeyField(Store, null=True, on_delete="SET NULL")
    action = pw.CharField(max_length=64)
    object_type = pw.CharField(max_length=40, default="")
    object_id = pw.CharField(max_length=64, default="")
    detail = JSONField(null=True)

    class Meta:
        indexes = ((("store", "at"), False), (("object_type", "object_id"), False))


class Notice(BaseModel):
    """An in-app notice to one staff member (a manager's nudge, an import finished…)."""

    staff = pw.ForeignKeyField(Staff, backref="notices", on_delete="CASCADE")
    store = pw.ForeignKeyField(Store, null=True, on_delete="CASCADE")
    sender = pw.ForeignKeyField(Staff, null=True, on_delete="SET NULL", backref="sent_notices")
    text = pw.TextField()
    url = pw.CharField(max_length=300, default="")
    created_at = UTCDateTimeField(default=clock.now)
    read_at = UTCDateTimeField(null=True)

    class Meta:
        indexes = ((("staff", "read_at"), False),)


class ApiRateWindow(BaseModel):
    """Requests counted per API token per minute, shared by every web process (no Redis)."""

    key = pw.CharField(max_length=80)
    window = pw.BigIntegerField()
    count = pw.IntegerField(default=0)

    class Meta:
        indexes = ((("key", "window"), True),)
