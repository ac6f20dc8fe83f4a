"""Message templates a plan's automatic message uses: per-language bodies and, for WhatsApp,
the provider template each language maps to with its approval status."""

import peewee as pw

from app import clock
from app.db import BaseModel, UTCDateTimeField
from app.models.org import Staff, Store

APPROVAL_STATUSES = ("pending", "approved", "rejected")


class MessageTemplate(BaseModel):
    store = pw.ForeignKeyField(Store, backref="message_templates", on_delete="CASCADE")
    name = pw.CharField(max_length=120)
    channel = pw.CharField(max_length=16, default="")  # "" = any channel
    wa_name = pw.CharField(max_length=512, default="")  # the WhatsApp template's name at Meta
    updated_by = pw.ForeignKeyField(Staff, null=True, on_delete="SET NULL")
    created_at = UTCDateTimeField(default=clock.now)
    updated_at = UTCDateTimeField(default=clock.now)

    class Meta:
        indexes = ((("store", "name"), True),)


class MessageTemplateVariant(BaseModel):
    """One language of a template; for WhatsApp the (name, language) pair Meta approves."""

    template = pw.ForeignKeyField(MessageTemplate, backref="variants", on_delete="CASCADE")
    locale = pw.CharField(max_length=10)
    body = pw.TextField()
    wa_language = pw.CharField(max_length=16, default="")
    wa_status = pw.CharField(
        max_length=10, default=""
    )  # "" (not WhatsApp) | pending | approved | rejected
    wa_reason = pw.CharField(max_length=300, default="")
    wa_checked_at = UTCDateTimeField(null=True)

    class Meta:
        indexes = ((("template", "locale"), True),)
