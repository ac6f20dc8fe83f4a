"""Message templates per plan: per-language bodies and WhatsApp approval status."""
from peewee import *
from app.db import UTCDateTimeField


def up(migrator, db):
    class Store(Model):
        class Meta:
            database = db
            table_name = 'store'

    class Staff(Model):
        class Meta:
            database = db
            table_name = 'staff'

    class MessageTemplate(Model):
        store = ForeignKeyField(Store, on_delete='CASCADE')
        name = CharField(max_length=120)
        channel = CharField(max_length=16, default='')
        wa_name = CharField(max_length=512, default='')
        updated_by = ForeignKeyField(Staff, null=True, on_delete='SET NULL')
        created_at = UTCDateTimeField()
        updated_at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'message_template'
            indexes = ((('store', 'name'), True),)
    db.create_tables([MessageTemplate])

    class MessageTemplateVariant(Model):
        template = ForeignKeyField(MessageTemplate, on_delete='CASCADE')
        locale = CharField(max_length=10)
        body = TextField()
        wa_language = CharField(max_length=16, default='')
        wa_status = CharField(max_length=10, default='')
        wa_reason = CharField(max_length=300, default='')
        wa_checked_at = UTCDateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'message_template_variant'
            indexes = ((('template', 'locale'), True),)
    db.create_tables([MessageTemplateVariant])


def down(migrator, db):
    migrator.migrate(migrator.drop_table('message_template_variant'))
    migrator.migrate(migrator.drop_table('message_template'))
