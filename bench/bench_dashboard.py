"""Time the manager's dashboard (reports.dashboard) for one month on the generated 1M-customer store.

Usage: DATABASE_URL=sqlite:///…/bench/out/console.db python -m bench.bench_dashboard [--runs R]

The database is a copy of the one bench/generate.py + bench/bench_engine.py produced (1,000,000
customers, ~184,000 follow-ups from the engine benchmark). Before timing, a month of activity is
added once, set-based: follow-ups spread over November with ~60% done and a contact log each,
50,000 sent messages, a 10% holdout plan with held-out decisions, and some missed occurrences.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.db import db, make_database  # noqa: E402

NOW = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)
START, END = datetime(2026, 10, 31, 16, 0, tzinfo=UTC), datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
DEFAULT = f"sqlite:///{ROOT / 'bench' / 'out' / 'console.db'}"

PREPARE = [
    # spread the engine's follow-ups over the month; 60% done with a logged outcome
    """UPDATE follow_up SET
         due_at = datetime('2026-11-01 02:00:00', '+' || (id % 28) || ' days'),
         created_at = datetime('2026-11-01 01:00:00', '+' || (id % 28) || ' days'),
         status = CASE WHEN id % 10 < 6 THEN 'done' ELSE status END,
         open_customer = CASE WHEN id % 10 < 6 THEN NULL ELSE open_customer END,
         completed_at = CASE WHEN id % 10 < 6
           THEN datetime('2026-11-01 05:00:00', '+' || (id % 28) || ' days') END""",
    """INSERT INTO contact_log (followup_id, customer_id, staff_id, channel, outcome, note, at)
       SELECT id, customer_id, assignee_id, 'phone',
              CASE id % 4 WHEN 0 THEN 'booked' WHEN 1 THEN 'reached'
                          WHEN 2 THEN 'no_answer' ELSE 'not_interested' END, '', completed_at
       FROM follow_up WHERE status = 'done' AND completed_at IS NOT NULL""",
    """INSERT INTO message (store_id, customer_id, plan_id, channel, to_address, subject, body,
                           variant, status, idempotency_key, attempts, error, created_at, sent_at)
       SELECT store_id, id, (SELECT MIN(id) FROM plan), 'sms', '', '', 'Hi', '', 'delivered',
              'bench-' || id, 1, '', datetime('2026-11-02 03:00:00', '+' || (id % 27) || ' days'),
              datetime('2026-11-02 03:00:00', '+' || (id % 27) || ' days')
       FROM customer WHERE id % 20 = 3""",
    "UPDATE plan SET holdout_percent = 10, window_days = 14",
    """UPDATE decision SET outcome = 'held_out',
         created_at = datetime('2026-11-01 02:00:00', '+' || (id % 28) || ' days')
       WHERE id % 10 = 9""",
    """UPDATE decision SET created_at = datetime('2026-11-01 02:00:00', '+' || (id % 28) || ' days')
       WHERE id % 10 <> 9""",
    """UPDATE occurrence SET status = 'missed', scheduled_for = '2026-11-10 02:00:00'
       WHERE id = (SELECT MAX(id) FROM occurrence)""",
    "ANALYZE",
]


def prepare() -> None:
    """Add a month of activity once (marker: the bench messages exist)."""
    if db.execute_sql("SELECT 1 FROM message WHERE idempotency_key = 'bench-3'").fetchone():
        return
    t0 = time.perf_counter()
    with db.atomic():
        for sql in PREPARE[:-1]:
            db.execute_sql(sql)
    db.execute_sql(PREPARE[-1])
    print(f"prepared a month of activity in {time.perf_counter() - t0:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL") or DEFAULT
    database = make_database(url)
    db.initialize(database)
    from app.models import ContactLog, FollowUp, Message, Store
    from app.services import reports

    with database.connection_context():
        prepare()
        store = Store.get()
        print(
            f"follow-ups {FollowUp.select().count():,}, logs {ContactLog.select().count():,}, "
            f"messages {Message.select().count():,}",
            flush=True,
        )
        reports.dashboard(store, START, END, NOW)  # warm-up
        wall, cpu = [], []
        for _ in range(args.runs):
            w0, c0 = time.perf_counter(), time.process_time()
            d = reports.dashboard(store, START, END, NOW)
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
        wall.sort()
        cpu.sort()
        p95 = wall[max(0, int(round(0.95 * len(wall))) - 1)]
        print(
            f"dashboard (month): runs {len(wall)}, p50 {statistics.median(wall) * 1000:.0f} ms, "
            f"p95 {p95 * 1000:.0f} ms, cpu p50 {statistics.median(cpu) * 1000:.0f} ms; "
            f"due {d['totals']['due']:,}, done {d['totals']['done']:,}, "
            f"returns {d['returns']['returns']:,} of {d['returns']['contacts']:,}, "
            f"load {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
