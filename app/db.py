"""Database: one proxy, a base model, and connection handling per request."""

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import parse_qs, urlparse

import peewee as pw
from playhouse.pool import PooledSqliteDatabase
from playhouse.postgres_ext import PooledPsycopg3Database

db = pw.DatabaseProxy()
log = logging.getLogger(__name__)


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


def _gate_path() -> str | None:
    """The lock file beside a SQLite database file; None on PostgreSQL or in memory."""
    if is_postgres() or db.obj is None:
        return None
    path = getattr(db.obj, "database", "") or ""
    if not path or path == ":memory:" or path.startswith("file::memory:"):
        return None
    return f"{path}-writers"


_gate = threading.local()  # how deep this thread is inside interactive_writer()


def _open_gate(path: str) -> int | None:
    """The lock file, opened read-only (flock needs no more, so web and worker processes of
    different users can share it); None when it cannot be opened: then nobody waits for
    anybody, as before the gate existed, rather than a staff member's tap failing."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError as exc:
        log.warning("writer gate %s unavailable: %s", path, exc)
        return None


@contextlib.contextmanager
def interactive_writer():
    """Mark this block as a person's write (a staff member's tap) so that, on SQLite, the
    engine's long runs step aside for it between two batches (see `yield_to_writers`)."""
    path = _gate_path()
    if path is None:
        yield
        return
    fd = _open_gate(path)  # one open file per writer: flock is per open file
    if fd is None:
        yield
        return
    _gate.depth = getattr(_gate, "depth", 0) + 1
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        _gate.depth -= 1
        os.close(fd)  # releases the lock


def yield_to_writers(max_wait: float = 2.0) -> str:
    """Between two batches of a long SQLite run: wait (at most `max_wait` s) until no person's
    write is waiting or running. SQLite has one writer at a time and its busy handler polls a
    waiting writer only every 25–100 ms, so a run that commits batch after batch would otherwise
    starve them. → "free" (nobody was waiting), "waited", or "gave_up" (still held after
    `max_wait`: a long request, such as an upload, holds it)."""
    path = _gate_path()
    if path is None or getattr(_gate, "depth", 0):
        return "free"  # a run inside a person's own request has nobody to step aside for
    fd = _open_gate(path)
    if fd is None:
        return "free"
    try:
        deadline = time.monotonic() + max_wait
        outcome = "free"
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return outcome
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return "gave_up"
                outcome = "waited"
                time.sleep(0.002)
    finally:
        os.close(fd)


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
