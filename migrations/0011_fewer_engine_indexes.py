"""Fewer index writes per contact the engine makes: the single-column indexes of foreign keys
that already lead a composite index go (follow_up customer/plan/assignee, decision
plan/occurrence/customer, why_log customer). Every lookup they served is served by the composite
index that starts with the same column."""
from peewee import *

DROPPED = [
    ('follow_up', ('customer_id',)),
    ('follow_up', ('plan_id',)),
    ('follow_up', ('assignee_id',)),
    ('decision', ('plan_id',)),
    ('decision', ('occurrence_id',)),
    ('decision', ('customer_id',)),
    ('why_log', ('customer_id',)),
]


def _named(db, table, columns):
    """The name of the non-unique index on exactly these columns, if there is one."""
    for index in db.get_indexes(table):
        if tuple(index.columns) == tuple(columns) and not index.unique:
            return index.name
    return None


def up(migrator, db):
    ops = []
    for table, columns in DROPPED:
        name = _named(db, table, columns)
        if name:
            ops.append(migrator.drop_index(table, name))
    migrator.migrate(*ops)


def down(migrator, db):
    migrator.migrate(*[migrator.add_index(table, columns) for table, columns in DROPPED])
