"""On SQLite a staff member's write goes ahead of the engine's next batch (app.db writer gate)."""

import importlib
import threading
import time

import pytest

from app.db import interactive_writer, is_postgres, yield_to_writers
from app.models import FollowUp
from app.services import engine
from tests.factories import make_customer, make_staff, make_store
from tests.test_engine_rules import NOON, followup_plan


@pytest.fixture
def sqlite_only(app):
    if is_postgres():
        pytest.skip("PostgreSQL writers do not queue behind one another")


def test_engine_goes_on_at_once_when_nobody_is_waiting_to_write(sqlite_only):
    started = time.perf_counter()
    assert yield_to_writers() == "free"
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
    assert yield_to_writers(max_wait=10) == "waited"
    waited = time.perf_counter() - started
    writer.join()
    assert 0.15 < waited < 8


def _from_another_thread(fn):
    """What `fn` answers when called by another thread (the engine's, say)."""
    answer = []
    thread = threading.Thread(target=lambda: answer.append(fn()))
    thread.start()
    thread.join(10)
    return answer[0]


def test_engine_stops_waiting_after_max_wait(sqlite_only):
    with interactive_writer():
        started = time.perf_counter()
        assert _from_another_thread(lambda: yield_to_writers(max_wait=0.1)) == "gave_up"
        assert time.perf_counter() - started < 1


def test_a_run_inside_a_persons_own_request_does_not_wait_for_itself(sqlite_only):
    with interactive_writer():
        started = time.perf_counter()
        assert yield_to_writers(max_wait=5) == "free"
        assert time.perf_counter() - started < 0.5


def test_a_request_that_changes_data_holds_the_gate_until_it_ends(app, sqlite_only):
    with app.test_request_context("/login", method="POST"):
        app.preprocess_request()
        assert _from_another_thread(lambda: yield_to_writers(max_wait=0)) == "gave_up"
        app.do_teardown_request()
    assert yield_to_writers(max_wait=0) == "free"


def test_a_request_that_only_reads_does_not_hold_the_gate(app, sqlite_only):
    with app.test_request_context("/login", method="GET"):
        app.preprocess_request()
        assert _from_another_thread(lambda: yield_to_writers(max_wait=0)) == "free"
        app.do_teardown_request()


def test_a_long_request_holding_the_gate_is_waited_for_once_not_before_every_batch(
    app, sqlite_only, monkeypatch
):
    store = make_store()
    make_staff(stores=[store], name="Anna")
    for i in range(14):
        make_customer(store, name=f"Pelanggan {i}")
    followup_plan(store)
    monkeypatch.setattr(engine, "BATCH", 2)  # seven batches, six pauses between them
    monkeypatch.setattr(engine, "WRITER_PATIENCE", 0.5)
    held, done = threading.Event(), threading.Event()

    def upload():
        with interactive_writer():
            held.set()
            done.wait(20)

    uploader = threading.Thread(target=upload)
    uploader.start()
    held.wait(5)
    started = time.perf_counter()
    try:
        engine.run_due(NOON)
    finally:
        done.set()
        uploader.join()
    assert FollowUp.select().count() == 14
    assert time.perf_counter() - started < 2.0  # 0.5 s once, not 6 × 0.5 s


def test_a_gate_file_that_cannot_be_opened_never_fails_a_staff_write(sqlite_only, monkeypatch):
    db_module = importlib.import_module("app.db")  # `app.db` the package attribute is the proxy
    monkeypatch.setattr(db_module, "_gate_path", lambda: "/proc/no-such-dir/revisit.db-writers")
    with interactive_writer():
        assert yield_to_writers(max_wait=1) == "free"
    assert _from_another_thread(lambda: yield_to_writers(max_wait=1)) == "free"
