"""Dashboard figures per employee, per plan and per outcome read in index order (nothing sorted):
follow-ups due and completed by (store, assignee | plan, status, time), contact logs by outcome;
the store/status/due index goes back to its own size."""
from peewee import *

ADDED = [
    ('follow_up', ('store_id', 'assignee_id', 'status', 'due_at')),
    ('follow_up', ('store_id', 'plan_id', 'status', 'due_at')),
    ('follow_up', ('store_id', 'plan_id', 'status', 'completed_at', 'returned_at',
                   'return_revenue')),
    ('follow_up', ('store_id', 'assignee_id', 'status', 'completed_at', 'plan_id', 'returned_at',
                   'return_revenue')),
    ('follow_up', ('store_id', 'status', 'due_at')),
    ('contact_log', ('outcome', 'at', 'followup_id')),
]
DROPPED = [
    ('follow_up', ('store_id', 'status', 'due_at', 'assignee_id', 'plan_id')),
    ('follow_up', ('store_id', 'status', 'completed_at', 'plan_id', 'assignee_id', 'returned_at',
                   'return_revenue')),
    ('contact_log', ('at', 'followup_id', 'outcome')),
]


def _named(db, table, columns):
    """The name of the index on exactly these columns (names differ between creators)."""
    for index in db.get_indexes(table):
        if tuple(index.columns) == tuple(columns):
            return index.name
    return None


def up(migrator, db):
    ops = []
    for table, columns in DROPPED:
        name = _named(db, table, columns)
        if name:
            ops.append(migrator.drop_index(table, name))
    ops += [migrator.add_index(table, columns) for table, columns in ADDED]
    migrator.migrate(*ops)
    if 'sqlite' in type(db).__name__.lower():
        db.execute_sql('ANALYZE follow_up')
        db.execute_sql('ANALYZE contact_log')


def down(migrator, db):
    ops = [migrator.drop_index(table, _named(db, table, columns)) for table, columns in ADDED]
    ops += [migrator.add_index(table, columns) for table, columns in DROPPED]
    migrator.migrate(*ops)
