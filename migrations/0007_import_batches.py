"""Import batches: each committed batch's outcome, written in the batch's own transaction."""
from peewee import *
from app.db import JSONField, UTCDateTimeField


def up(migrator, db):
    class Store(Model):
        class Meta:
            database = db
            table_name = 'store'

    class ImportBatch(Model):
        store = ForeignKeyField(Store, on_delete='CASCADE')
        job = CharField(max_length=40)
        first_row = IntegerField()
        end_row = IntegerField()
        counts = JSONField()
        landed = JSONField()
        errors = JSONField()
        carry = JSONField()
        at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'import_batch'
            indexes = ((('job', 'first_row'), True),)
    db.create_tables([ImportBatch])


def down(migrator, db):
    migrator.migrate(migrator.drop_table('import_batch'))
