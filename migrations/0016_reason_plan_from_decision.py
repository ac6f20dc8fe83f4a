"""A follow-up reason's plan and occurrence are read from its decision, not copied onto the
reason row: the two columns (each with an index and a foreign key) go, so each follow-up a big
occurrence makes costs two index writes and two foreign-key checks fewer. Every reason row the
engine wrote has its decision, and decisions are deleted only with their plan, occurrence or
client (which delete or empty the reason's columns alike): nothing is lost."""
from playhouse.migrate import SqliteMigrator

COLUMNS = ('plan_id', 'occurrence_id')


def up(migrator, db):
    # SQLite cannot drop a column with a foreign key in place: the table is rebuilt.
    legacy = {'legacy': True} if isinstance(migrator, SqliteMigrator) else {}
    for column in COLUMNS:
        migrator.migrate(migrator.drop_column('follow_up_reason', column, **legacy))


def down(migrator, db):
    for column, table in (('plan_id', 'plan'), ('occurrence_id', 'occurrence')):
        db.execute_sql(
            f'ALTER TABLE follow_up_reason ADD COLUMN {column} INTEGER'
            f' REFERENCES {table} (id) ON DELETE SET NULL'
        )
        db.execute_sql(
            f'UPDATE follow_up_reason SET {column} = (SELECT d.{column} FROM decision d'
            ' WHERE d.id = follow_up_reason.decision_id)'
        )
        db.execute_sql(
            f'CREATE INDEX followupreason_{column} ON follow_up_reason ({column})'
        )
