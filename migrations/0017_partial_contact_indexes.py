"""The dashboard's two "contacts" indexes (follow-ups completed in a period, per plan and per
employee) become partial: only completed follow-ups have a completed_at, so the open follow-ups
a big occurrence inserts write no entry to them. The dashboard's queries bound completed_at, so
both backends still read them (SQLite's INDEXED BY hints included)."""

INDEXES = [
    ('follow_up_contacts_by_plan',
     ('store_id', 'plan_id', 'status', 'completed_at', 'returned_at', 'return_revenue')),
    ('follow_up_contacts_by_staff',
     ('store_id', 'assignee_id', 'status', 'completed_at', 'plan_id', 'returned_at',
      'return_revenue')),
]


def _named(db, table, columns):
    """The name of the plain index on exactly these columns, if there is one."""
    for index in db.get_indexes(table):
        if tuple(index.columns) == tuple(columns) and not index.unique:
            return index.name
    return None


def up(migrator, db):
    for name, columns in INDEXES:
        old = _named(db, 'follow_up', columns)
        if old and old != name:
            db.execute_sql(f'DROP INDEX "{old}"')
        cols = ', '.join(f'"{c}"' for c in columns)
        db.execute_sql(
            f'CREATE INDEX IF NOT EXISTS "{name}" ON "follow_up" ({cols})'
            ' WHERE "completed_at" IS NOT NULL'
        )


def down(migrator, db):
    for name, columns in INDEXES:
        db.execute_sql(f'DROP INDEX IF EXISTS "{name}"')
        cols = ', '.join(f'"{c}"' for c in columns)
        db.execute_sql(f'CREATE INDEX "follow_up_{"_".join(columns)[:40]}" ON "follow_up" ({cols})')
