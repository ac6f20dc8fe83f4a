"""On SQLite a staff member's write goes ahead of the engine's next batch (app.db writer gate)."""

import threading
import time

import pytest

from app.db import interactive_writer, is_postgres, yield_to_writers


@pytest.fixture
def sqlite_only(app):
    if is_postgres():
        pytest.skip("PostgreSQL writers do not queue behind one another")


def test_engine_goes_on_at_once_when_nobody_is_waiting_to_write(sqlite_only):
    started = time.perf_counter()
    assert yield_to_writers() is False
    assert time.perf_counter() - started < 0.05


def test_engine_waits_until_a_staff_write_is_done(sqlite_only):
    inside, leave = threading.Event(), threading.Event()

    def staff_write():
        with interactive_writer():
            inside.set()
            leave.wait(5)

    writer = threading.Thread(target=staff_write)
    writer.start()
    inside.wait(5)
    threading.Timer(0.2, leave.set).start()
    started = time.perf_counter()
    assert yield_to_writers(max_wait=10) is True
    waited = time.perf_counter() - started
    writer.join()
    assert 0.15 < waited < 8


def test_engine_stops_waiting_after_max_wait(sqlite_only):
    with interactive_writer():
        started = time.perf_counter()
        assert yield_to_writers(max_wait=0.1) is True
        assert time.perf_counter() - started < 1


def test_a_request_that_changes_data_holds_the_gate_until_it_ends(app, sqlite_only):
    with app.test_request_context("/login", method="POST"):
        app.preprocess_request()
        assert yield_to_writers(max_wait=0) is True
        app.do_teardown_request()
    assert yield_to_writers(max_wait=0) is False


def test_a_request_that_only_reads_does_not_hold_the_gate(app, sqlite_only):
    with app.test_request_context("/login", method="GET"):
        app.preprocess_request()
        assert yield_to_writers(max_wait=0) is False
        app.do_teardown_request()
