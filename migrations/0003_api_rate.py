"""API rate limit: requests per token per minute, for deployments without Redis."""
from peewee import *


def up(migrator, db):
    class ApiRateWindow(Model):
        key = CharField(max_length=80)
        window = BigIntegerField()
        count = IntegerField(default=0)
        class Meta:
            database = db
            table_name = 'api_rate_window'
            indexes = ((('key', 'window'), True),)
    db.create_tables([ApiRateWindow])


def down(migrator, db):
    migrator.migrate(migrator.drop_table('api_rate_window'))
