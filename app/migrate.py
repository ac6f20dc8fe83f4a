"""Running the migrations in migrations/ with peewee's own runner."""

from playhouse.migrations import Runner

from app.config import ROOT
from app.db import db

MIGRATIONS = ROOT / "migrations"


def upgrade() -> list[str]:
    """Apply pending migrations; returns their names (empty when up to date)."""
    database = db.obj
    with database.connection_context():
        return Runner(database, str(MIGRATIONS)).up()


def pending() -> list[str]:
    """Names of migrations not yet applied."""
    database = db.obj
    with database.connection_context():
        return [
            m.name for m in Runner(database, str(MIGRATIONS)).status() if not m.applied and m.path
        ]
