"""Shared fixtures: one schema per session from migrations, tables emptied per test."""

import os
import socket
import tempfile

_TMP = tempfile.mkdtemp(prefix="revisit-test-")
os.environ.setdefault("REVISIT_INSTANCE", _TMP)
os.environ["REVISIT_HUEY_IMMEDIATE"] = "1"
os.environ.pop("REVISIT_NOW", None)

import pytest  # noqa: E402

from app import create_app  # noqa: E402
from app.db import db, make_database  # noqa: E402
from app.models import ALL_MODELS  # noqa: E402

TEST_DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{_TMP}/test.db"
_database = make_database(TEST_DATABASE_URL)
db.initialize(_database)


def _allowed(address) -> bool:
    if isinstance(address, str):  # unix socket
        return True
    host = address[0] if isinstance(address, tuple) else address
    return host in ("127.0.0.1", "::1", "localhost") or str(host).startswith("127.")


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _guarded_connect(self, address):
    if not _allowed(address):
        raise RuntimeError(f"Network access outside 127.0.0.1 is blocked in tests: {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    if not _allowed(address):
        raise RuntimeError(f"Network access outside 127.0.0.1 is blocked in tests: {address!r}")
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex


def _drop_everything():
    with _database.connection_context():
        tables = _database.get_tables()
        if not tables:
            return
        if (
            _database.__class__.__name__.lower().find("postgres") >= 0
            or "Psycopg" in type(_database).__name__
        ):
            _database.execute_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        else:
            _database.execute_sql("PRAGMA foreign_keys = OFF")
            for table in tables:
                _database.execute_sql(f'DROP TABLE IF EXISTS "{table}"')
            _database.execute_sql("PRAGMA foreign_keys = ON")


@pytest.fixture(scope="session")
def schema():
    """Build the schema once per session by running the migrations."""
    from app import migrate

    _drop_everything()
    migrate.upgrade()
    yield _database


def truncate_all():
    """Empty every table of the app."""
    tables = [m._meta.table_name for m in ALL_MODELS]
    with _database.connection_context():
        if "sqlite" in type(_database).__name__.lower():
            _database.execute_sql("PRAGMA foreign_keys = OFF")
            with _database.atomic():
                for table in tables:
                    _database.execute_sql(f'DELETE FROM "{table}"')
                _database.execute_sql(
                    "DELETE FROM sqlite_sequence"
                ) if _has_sqlite_sequence() else None
            _database.execute_sql("PRAGMA foreign_keys = ON")
        else:
            _database.execute_sql(
                "TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"
            )


def _has_sqlite_sequence() -> bool:
    return bool(
        _database.execute_sql(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='sqlite_sequence'"
        ).fetchone()
    )


@pytest.fixture
def app(schema):
    """A fresh app on empty tables."""
    truncate_all()
    application = create_app(
        {
            "TESTING": True,
            "DATABASE": _database,
            "DATABASE_URL": TEST_DATABASE_URL,
            "WTF_CSRF_ENABLED": False,
            "SECRET_KEY": "test-secret",
            "SERVER_NAME": "localhost",
        }
    )
    with _database.connection_context():
        yield application


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def csrf_app(schema):
    """An app with CSRF protection switched on, as in production."""
    truncate_all()
    application = create_app(
        {
            "TESTING": True,
            "DATABASE": _database,
            "SECRET_KEY": "test-secret",
            "SERVER_NAME": "localhost",
        }
    )
    with _database.connection_context():
        yield application


@pytest.fixture
def in_app_context(app):
    """Run the test inside the app's context (services read SECRET_KEY and PUBLIC_URL from it);
    modules that need it say `pytestmark = pytest.mark.usefixtures("in_app_context")`."""
    with app.app_context():
        yield


@pytest.fixture
def wa():
    """A local WhatsApp Cloud API server speaking the documented protocol."""
    from tests.stubs import WhatsAppStub

    stub = WhatsAppStub()
    yield stub
    stub.close()
