"""Database: one proxy, a base model, and connection handling per request."""

import json
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import parse_qs, urlparse

import peewee as pw
from playhouse.pool import PooledSqliteDatabase
from playhouse.postgres_ext import PooledPsycopg3Database

db = pw.DatabaseProxy()


def make_database(url: str) -> pw.Database:
    """Build a database from a URL: sqlite:///path or postgresql://…"""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else parsed.path
        return PooledSqliteDatabase(
            path or ":memory:",
            max_connections=32,
            stale_timeout=300,
            check_same_thread=False,
            timeout=30,
            pragmas={
                "journal_mode": "wal",
                "foreign_keys": 1,
                "synchronous": "normal",
                "busy_timeout": 30000,
                "cache_size": -64000,
            },
        )
    if parsed.scheme in ("postgres", "postgresql"):
        opts = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        return PooledPsycopg3Database(
            parsed.path.lstrip("/"),
            user=parsed.username,
            password=parsed.password,
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 5432,
            max_connections=int(opts.get("pool", 20)),
            stale_timeout=300,
            register_hstore=False,
        )
    raise ValueError(f"Unsupported DATABASE_URL scheme: {parsed.scheme!r}")


def init_db(url: str) -> pw.Database:
    """Point the proxy at the database named by url."""
    database = make_database(url)
    db.initialize(database)
    return database


def is_postgres() -> bool:
    """True when the proxy points at PostgreSQL."""
    return isinstance(db.obj, pw.PostgresqlDatabase)


class UTCDateTimeField(pw.DateTimeField):
    """An aware datetime stored as naive UTC; always read back aware."""

    field_type = "DATETIME"

    def db_value(self, value):
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            raise ValueError("naive datetime given to UTCDateTimeField")
        return value.astimezone(UTC).replace(tzinfo=None)

    def python_value(self, value):
        value = super().python_value(value)
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class JSONField(pw.TextField):
    """JSON stored as text, the same on SQLite and PostgreSQL."""

    def db_value(self, value):
        if value is None:
            return None
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=_json_default)

    def python_value(self, value):
        if value is None or value == "":
            return None
        return json.loads(value)


def _json_default(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class MoneyField(pw.DecimalField):
    """Money as an exact Decimal with two places."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_digits", 14)
        kwargs.setdefault("decimal_places", 2)
        kwargs.setdefault("auto_round", True)
        super().__init__(*args, **kwargs)


class BaseModel(pw.Model):
    class Meta:
        database = db
        legacy_table_names = False
