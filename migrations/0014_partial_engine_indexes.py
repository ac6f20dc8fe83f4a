"""Two indexes only a few rows need become partial, so the rows a big occurrence inserts write
no entry to them: decisions by defer_until (only deferred ones have it) and follow-ups by
parent (only a next follow-up a staff member asked for has one)."""
from peewee import *

DROPPED = [
    ('decision', ('outcome', 'defer_until')),
    ('follow_up', ('parent_id',)),
]
PARTIAL = [
    ('decision_deferred_until', 'decision', 'defer_until'),
    ('follow_up_parent_given', 'follow_up', 'parent_id'),
]


def _named(db, table, columns):
    """The name of the non-unique index on exactly these columns, if there is one."""
    for index in db.get_indexes(table):
        if tuple(index.columns) == tuple(columns) and not index.unique:
            return index.name
    return None


def up(migrator, db):
    for table, columns in DROPPED:
        name = _named(db, table, columns)
        if name:
            migrator.migrate(migrator.drop_index(table, name))
    for name, table, column in PARTIAL:
        db.execute_sql(
            f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ("{column}")'
            f' WHERE "{column}" IS NOT NULL'
        )


def down(migrator, db):
    for name, _, _ in PARTIAL:
        db.execute_sql(f'DROP INDEX IF EXISTS "{name}"')
    migrator.migrate(*[migrator.add_index(table, columns) for table, columns in DROPPED])
