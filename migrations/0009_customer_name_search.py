"""Name search in any script: on PostgreSQL a GIN trigram index answers ILIKE '%fragment%'
for Chinese, Thai and Malay names alike; SQLite keeps a plain index (its LIKE scans)."""

from peewee import PostgresqlDatabase

INDEX = "customer_name_search"


def _postgres(db):
    return isinstance(db, PostgresqlDatabase)


def _has_trigrams(db):
    """pg_trgm installed here (creating it needs the contrib package and the right role)."""
    try:
        with db.atomic():
            db.execute_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except Exception:  # noqa: BLE001 - without the extension the index is a plain one
        return False
    return True


def up(migrator, db):
    if _postgres(db) and _has_trigrams(db):
        db.execute_sql(f"CREATE INDEX {INDEX} ON customer USING gin (name gin_trgm_ops)")
    else:
        db.execute_sql(f"CREATE INDEX {INDEX} ON customer (name)")


def down(migrator, db):
    db.execute_sql(f"DROP INDEX {INDEX}")
