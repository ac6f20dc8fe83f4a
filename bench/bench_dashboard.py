"""Time the manager's dashboard (reports.dashboard) for one month on the 1M-customer benchmark store.

Usage: DATABASE_URL=sqlite:///…/copy.db python -m bench.bench_dashboard [--runs R] [--events E]

The database is a copy of the shared benchmark database of bench/generate.py (1,000,000 customers,
~1.25M cards, ~5M events, ~4.2M visits; no plans or follow-ups). The script upgrades its schema,
then adds a month of plan activity once, set-based (plans, daily occurrences, one decision per
fifth customer, follow-ups with ~60% done and a contact log each, messages, a 10% holdout, one
missed occurrence), records the return attribution of that history with
reports.attribute_returns (the backfill path; then VACUUM ANALYZE on PostgreSQL) and times:
- the dashboard for November (the acceptance figure), wall and process CPU time;
- the per-event attribution (hooks.after_event's set-based UPDATEs) for --events visits.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.db import db, is_postgres, make_database  # noqa: E402

NOW = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)
# November in Kuala Lumpur (UTC+8), as the dashboard route computes it.
START, END = datetime(2026, 10, 31, 16, 0, tzinfo=UTC), datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
PLANS = 6
STAFF = 20


def _day(base: str, days: str, seconds: str = "0") -> str:
    """SQL for `base` (a UTC timestamp literal) plus `days` days and `seconds` seconds (integer
    expressions): contacts spread over the day, as real work is."""
    if is_postgres():
        return f"(TIMESTAMP '{base}' + ({days}) * INTERVAL '1 day' + ({seconds}) * INTERVAL '1 second')"
    return f"datetime('{base}', '+' || ({days}) || ' days', '+' || ({seconds}) || ' seconds')"


def _statements() -> list[str]:
    """The month of activity, as set-based SQL on the benchmark's store 1."""
    true = "TRUE" if is_postgres() else "1"
    plan_of = f"(1 + (c.id / 5) % {PLANS})"
    outcome = (
        "CASE (c.id / 5) % 10 WHEN 9 THEN 'held_out' WHEN 8 THEN 'message' ELSE 'followup' END"
    )
    return [
        f"""INSERT INTO plan (id, store_id, name, template, type, status, version, params,
               action, backfill, holdout_percent, priority, window_days, created_at, updated_at)
            SELECT n, 1, 'Bench plan ' || n, 'custom', 'recurring', 'active', 1, '{{}}',
                   '{{"kind": "followup"}}', {true}, 10, 50, 14,
                   '2026-10-01 00:00:00', '2026-10-01 00:00:00'
            FROM (SELECT id AS n FROM staff WHERE id <= {PLANS}) AS s""",
        f"""INSERT INTO occurrence (plan_id, version, key, step, scheduled_for, status,
               created_count)
            SELECT p.id, 1, 'day-' || d.id, 0, {_day("2026-11-01 02:00:00", "d.id - 1")},
                   CASE WHEN p.id = 1 AND d.id = 10 THEN 'missed' ELSE 'done' END, 0
            FROM plan p, (SELECT id FROM customer WHERE id <= 28) AS d""",
        f"""INSERT INTO decision (plan_id, occurrence_id, customer_id, step, dedupe_key, outcome,
               variant, reason, created_at, updated_at)
            SELECT o.plan_id, o.id, c.id, 0, 'bench', {outcome}, '', '',
                   o.scheduled_for, o.scheduled_for
            FROM customer c JOIN occurrence o
              ON o.plan_id = {plan_of} AND o.key = 'day-' || (1 + c.id % 28)
            WHERE c.id % 5 = 0""",
        f"""INSERT INTO follow_up (store_id, customer_id, plan_id, occurrence_id, assignee_id,
               assigned_by_rule, status, open_customer, due_at, script, variant, outcome,
               attempts, note, withdrawn_reason, created_at, completed_at, updated_at)
            SELECT 1, d.customer_id, d.plan_id, d.occurrence_id,
                   CASE WHEN d.customer_id % 21 = 0 THEN NULL
                        ELSE 1 + (d.customer_id / 5) % {STAFF} END,
                   'assigned', s.status,
                   CASE WHEN s.status = 'open' THEN d.customer_id END,
                   {_day("2026-11-01 00:00:00", "d.customer_id % 28", "d.id % 43200")},
                   'Hi', '', CASE WHEN s.status = 'done' THEN s.outcome END, 0, '',
                   CASE WHEN s.status = 'withdrawn' THEN 'Booked (appointment_booked)' ELSE '' END,
                   d.created_at,
                   CASE WHEN s.status = 'done'
                        THEN {_day("2026-11-01 02:30:00", "d.customer_id % 28", "d.id % 36000")}
                   END,
                   {_day("2026-11-01 02:30:00", "d.customer_id % 28", "d.id % 36000")}
            FROM decision d JOIN (
              SELECT id, CASE WHEN id % 20 < 12 THEN 'done' WHEN id % 20 = 19 THEN 'withdrawn'
                              ELSE 'open' END AS status,
                     CASE id % 4 WHEN 0 THEN 'booked' WHEN 1 THEN 'reached'
                                 WHEN 2 THEN 'no_answer' ELSE 'declined' END AS outcome
              FROM decision) AS s ON s.id = d.id
            WHERE d.outcome = 'followup'""",
        """INSERT INTO contact_log (followup_id, customer_id, staff_id, channel, outcome, note, at)
           SELECT id, customer_id, assignee_id, 'phone', outcome, '', completed_at
           FROM follow_up WHERE status = 'done'""",
        f"""INSERT INTO message (store_id, customer_id, plan_id, occurrence_id, channel,
               to_address, subject, body, variant, status, idempotency_key, attempts, error,
               created_at, sent_at, delivered_at)
            SELECT 1, c.id, 1 + c.id % {PLANS}, NULL, 'sms', '', '', 'Hi', '',
                   CASE WHEN c.id % 40 = 3 THEN 'failed' ELSE 'delivered' END, 'bench-' || c.id,
                   1, '', {_day("2026-11-02 01:00:00", "c.id % 27", "c.id % 7200")},
                   CASE WHEN c.id % 40 <> 3
                        THEN {_day("2026-11-02 01:00:00", "c.id % 27", "c.id % 7200")} END,
                   CASE WHEN c.id % 40 <> 3
                        THEN {_day("2026-11-02 01:00:00", "c.id % 27", "c.id % 7200")} END
            FROM customer c WHERE c.id % 20 = 3""",
    ]


def prepare() -> None:
    """Add a month of activity once (marker: the bench plans exist) and record its returns."""
    from app.models import Store
    from app.services import reports

    if db.execute_sql("SELECT 1 FROM plan WHERE name = 'Bench plan 1'").fetchone():
        return
    t0 = time.perf_counter()
    with db.atomic():
        for sql in _statements():
            db.execute_sql(sql.replace("%", "%%") if is_postgres() else sql)  # % is modulo
        if is_postgres():
            db.execute_sql("SELECT setval('plan_id_seq', (SELECT MAX(id) FROM plan))")
    db.execute_sql("ANALYZE")
    t1 = time.perf_counter()
    print(f"prepared a month of activity in {t1 - t0:.1f} s", flush=True)
    c0 = time.process_time()
    with db.atomic():
        counts = reports.attribute_returns(Store.get_by_id(1))
    # The backfill rewrote every contact row: on PostgreSQL, do what autovacuum would do soon
    # after (without it the dead rows and the unset visibility map defeat index-only scans).
    db.execute_sql("VACUUM ANALYZE" if is_postgres() else "ANALYZE")
    print(
        f"backfilled return attribution in {time.perf_counter() - t1:.1f} s wall, "
        f"{time.process_time() - c0:.1f} s CPU: {counts}",
        flush=True,
    )


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(round(0.95 * len(ordered))) - 1)]


def _server_cpu() -> float | None:
    """CPU seconds used so far by this connection's PostgreSQL backend (same host: /proc), so
    the server's share is measured too; None on SQLite, whose work is this process's CPU."""
    if not is_postgres():
        return None
    pid = db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def time_dashboard(store, runs: int) -> None:
    """p50/p95 wall and CPU of the month's dashboard, after one warm-up."""
    from app.services import reports

    reports.dashboard(store, START, END, NOW)
    wall, cpu = [], []
    server0 = _server_cpu()
    for _ in range(runs):
        w0, c0 = time.perf_counter(), time.process_time()
        d = reports.dashboard(store, START, END, NOW)
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    if server0 is not None:
        server = (_server_cpu() - server0) / runs
        print(f"PostgreSQL backend CPU: mean {server * 1000:.0f} ms per dashboard", flush=True)
    print(
        f"dashboard (month): runs {runs}, p50 {statistics.median(wall) * 1000:.0f} ms, "
        f"p95 {_p95(wall) * 1000:.0f} ms wall; CPU p50 {statistics.median(cpu) * 1000:.0f} ms, "
        f"p95 {_p95(cpu) * 1000:.0f} ms; due {d['totals']['due']:,}, "
        f"done {d['totals']['done']:,}, came back {d['returns']['returns']:,} of "
        f"{d['returns']['contacts']:,}; load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    for name, seconds in reports.last_timings.items():
        print(f"  {name}: {seconds * 1000:.1f} ms", flush=True)


def time_events(store, count: int) -> None:
    """The attribution step of the after-event hook for `count` visits, rolled back after."""
    from app.models import Event, FollowUp
    from app.services import reports

    done = FollowUp.select(FollowUp.customer).where(FollowUp.status == "done")
    customers = [c for (c,) in done.order_by(FollowUp.id).limit(count).tuples()]
    wall, cpu = [], []
    with db.atomic() as txn:
        for i, customer in enumerate(customers):
            event = Event.create(
                store=store.id,
                customer=customer,
                external_id=f"bench-visit-{i}",
                type="visit",
                occurred_at=datetime(2026, 11, 29, 3, 0, tzinfo=UTC) + timedelta(seconds=i),
                amount="50.00",
                created_at=NOW,
            )
            w0, c0 = time.perf_counter(), time.process_time()
            reports.attribute_event(event)
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
        txn.rollback()
    print(
        f"attribution per event: {count} visits, p50 {statistics.median(wall) * 1000:.2f} ms, "
        f"p95 {_p95(wall) * 1000:.2f} ms wall; CPU p50 {statistics.median(cpu) * 1000:.2f} ms",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--events", type=int, default=200)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("DATABASE_URL must point at a copy of the benchmark database")
    database = make_database(url)
    db.initialize(database)
    from app import migrate
    from app.models import ContactLog, FollowUp, Message, Store

    print(f"migrations applied: {migrate.upgrade()}", flush=True)
    with database.connection_context():
        prepare()
        store = Store.get_by_id(1)
        print(
            f"follow-ups {FollowUp.select().count():,}, logs {ContactLog.select().count():,}, "
            f"messages {Message.select().count():,}",
            flush=True,
        )
        time_dashboard(store, args.runs)
        if args.events:
            time_events(store, args.events)


if __name__ == "__main__":
    main()
