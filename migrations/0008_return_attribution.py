"""Return attribution kept on each contact (recorded when the visit or booking arrives), and
indexes that let the dashboard's per-period figures be read from index range scans."""
from peewee import *
from app.db import MoneyField, UTCDateTimeField

INDEXES = [
    ('follow_up', ('store_id', 'status', 'completed_at', 'plan_id', 'assignee_id', 'returned_at',
                   'return_revenue')),
    ('follow_up', ('store_id', 'status', 'due_at', 'assignee_id', 'plan_id')),
    ('follow_up', ('store_id', 'status', 'updated_at', 'assignee_id', 'plan_id')),
    ('message', ('store_id', 'status', 'sent_at', 'plan_id', 'returned_at', 'return_revenue')),
    ('decision', ('plan_id', 'outcome', 'created_at', 'returned_at', 'updated_at')),
    ('contact_log', ('at', 'followup_id', 'outcome')),
    ('customer_card', ('store_id', 'status', 'expires_on', 'product_id', 'balance',
                       'remaining_uses')),
]
REPLACED = [('follow_up', ('store_id', 'status', 'due_at'))]


def _named(db, table, columns):
    """The name of the index on exactly these columns (names differ between creators)."""
    for index in db.get_indexes(table):
        if tuple(index.columns) == tuple(columns):
            return index.name
    return None


def up(migrator, db):
    migrator.migrate(
        migrator.add_column('follow_up', 'returned_at', UTCDateTimeField(null=True)),
        migrator.add_column('follow_up', 'return_revenue', MoneyField(null=True)),
        migrator.add_column('message', 'returned_at', UTCDateTimeField(null=True)),
        migrator.add_column('message', 'return_revenue', MoneyField(null=True)),
        migrator.add_column('decision', 'returned_at', UTCDateTimeField(null=True)),
    )
    ops = []
    for table, columns in REPLACED:
        name = _named(db, table, columns)
        if name:
            ops.append(migrator.drop_index(table, name))
    ops += [migrator.add_index(table, columns) for table, columns in INDEXES]
    migrator.migrate(*ops)
    # Backfill: the returns of existing contacts, from the visits and bookings already recorded.
    from app.models import Store
    from app.services import reports

    for (store_id,) in db.execute_sql('SELECT id FROM store').fetchall():
        reports.attribute_returns(Store(id=store_id))
    if 'sqlite' in type(db).__name__.lower():
        for table in ('follow_up', 'message', 'decision', 'contact_log', 'customer_card'):
            db.execute_sql(f'ANALYZE {table}')


def down(migrator, db):
    ops = [migrator.drop_index(table, _named(db, table, columns)) for table, columns in INDEXES]
    ops += [migrator.add_index(table, columns) for table, columns in REPLACED]
    migrator.migrate(*ops)
    migrator.migrate(
        migrator.drop_column('follow_up', 'returned_at'),
        migrator.drop_column('follow_up', 'return_revenue'),
        migrator.drop_column('message', 'returned_at'),
        migrator.drop_column('message', 'return_revenue'),
        migrator.drop_column('decision', 'returned_at'),
    )
