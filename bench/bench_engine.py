"""Time the plan engine on the generated benchmark store (see bench/generate.py).

Usage: DATABASE_URL=… python -m bench.bench_engine [--customers N] [--target 100000] [--batch N]

Measures: one occurrence creating ~100,000 follow-ups; re-running it (0 rows added); a tick with
nothing due; and (SQLite) a staff member's outcome write from another thread while a
100,000-follow-up occurrence runs (p50/p99 latency). Each figure is wall time with the process
CPU time beside it (the machine is shared), plus the load average when the run started.
"""

import argparse
import json
import os
import statistics
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import peewee as pw  # noqa: E402

from app.db import db, interactive_writer, is_postgres  # noqa: E402
from app.models import (  # noqa: E402
    Decision,
    Enrollment,
    FollowUp,
    FollowUpReason,
    Message,
    Occurrence,
    Plan,
    SchedulerLock,
    Staff,
    StaffStore,
    Store,
    WhyLog,
)
from app.services import audience, engine, plans, scheduler  # noqa: E402
from bench.generate import BENCH_NOW, DEFAULT_URL, generate  # noqa: E402

ENGINE_URL = DEFAULT_URL.replace("bench.db", "engine.db")


def _reset(store: Store) -> None:
    """Remove what earlier benchmark runs made, set-based."""
    plan_ids = Plan.select(Plan.id).where(Plan.store == store.id)
    FollowUpReason.delete().where(
        FollowUpReason.followup.in_(FollowUp.select(FollowUp.id).where(FollowUp.store == store.id))
    ).execute()
    FollowUp.delete().where(FollowUp.store == store.id).execute()
    Message.delete().where(Message.store == store.id).execute()
    for model in (WhyLog, Decision, Enrollment, Occurrence):
        model.delete().where(model.plan.in_(plan_ids)).execute()
    Plan.delete().where(Plan.store == store.id).execute()
    SchedulerLock.delete().execute()
    if is_postgres():
        # Vacuum what the delete freed now: an autovacuum starting mid-run would compete for
        # the cores (and be counted as the engine's server CPU).
        for table in ("follow_up_reason", "follow_up", "decision", "why_log", "enrollment"):
            db.execute_sql(f'VACUUM (ANALYZE) "{table}"')
    # Two big plans run a day apart below; the contact budget would (rightly) defer the second.
    store.settings = {**(store.settings or {}), "fatigue_followups": 10}
    store.save()
    staff = [s.id for s in Staff.select(Staff.id).where(Staff.email.startswith("bench-staff"))]
    StaffStore.insert_many(
        [{"staff": s, "store": store.id} for s in staff]
    ).on_conflict_ignore().execute()


def _audience_for(store: Store, target: int) -> dict:
    """An audience of roughly `target` customers: recent visitors, widened day by day."""
    lo, hi = 1, 2000
    best = None
    while lo <= hi:
        mid = (lo + hi) // 2
        aud = {"all": [{"field": "last_visit_at", "op": "in_last_days", "value": mid}]}
        n = audience.count(store.id, aud, BENCH_NOW)
        best = (aud, n)
        if n < target:
            lo = mid + 1
        elif n > target * 1.05:
            hi = mid - 1
        else:
            break
    return best[0]


def _plan(store: Store, name: str, aud: dict) -> Plan:
    data = {
        "name": name,
        "type": "recurring",
        "schedule": {"frequency": "daily", "at": "10:00"},
        "audience": aud,
        "action": {
            "kind": "followup",
            "script": "Hi {first_name}, this is {staff_name} from "
            "{store_name}. It has been {days_since_visit} days since your last visit.",
        },
        "status": "active",
    }
    return plans.create_plan(store, data, now=BENCH_NOW - timedelta(hours=1))


def _occurrence(plan: Plan, at) -> Occurrence:
    day = at.date().isoformat()
    Occurrence.insert(
        plan=plan.id,
        key=day,
        step=0,
        scheduled_for=at,
        status="pending",
        detail={"day": day, "mode": "normal"},
    ).on_conflict_ignore().execute()
    return Occurrence.get((Occurrence.plan == plan.id) & (Occurrence.key == day))


CPU: dict = {}
SERVER_CPU: dict = {}


def _server_cpu() -> float | None:
    """CPU seconds used so far by the PostgreSQL server's processes (same machine only): the
    engine runs a big occurrence's batches on several connections, each its own backend."""
    if not is_postgres():
        return None
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, fields = stat.read_text().rsplit(")", 1)
        except OSError:
            continue
        if name.endswith("(postgres"):
            fields = fields.split()
            total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return total / os.sysconf("SC_CLK_TCK")


def _timed(fn, name: str | None = None):
    started, cpu, server = time.perf_counter(), time.process_time(), _server_cpu()
    result = fn()
    if name:
        CPU[name] = round(time.process_time() - cpu, 2)
        if server is not None:
            SERVER_CPU[name] = round(_server_cpu() - server, 2)
    return time.perf_counter() - started, result


def main() -> None:
    """Generate if needed, then time the engine's big operations."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--target", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=0, help="engine batch size (0: default)")
    parser.add_argument("--skip-concurrent", action="store_true")
    args = parser.parse_args()
    if args.batch:
        engine.BATCH = engine.BATCH_POSTGRES = args.batch
    url = os.environ.get("DATABASE_URL") or ENGINE_URL
    store_id = generate(url, args.customers, args.seed)
    report = {
        "backend": "postgresql" if is_postgres() else "sqlite",
        "customers": args.customers,
        "batch": engine.BATCH_POSTGRES if is_postgres() else engine.BATCH,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    with db.obj.connection_context():
        store = Store.get_by_id(store_id)
        _reset(store)
        aud = _audience_for(store, args.target)
        report["audience"] = aud
        at = BENCH_NOW + timedelta(hours=2)  # 10:00 in Kuala Lumpur
        plan = _plan(store, "Bench A", aud)
        occ = _occurrence(plan, at)
        seconds, made = _timed(lambda: engine.run_occurrence(occ, at), "occurrence")
        report["occurrence_s"] = round(seconds, 2)
        report["followups_created"] = made
        before = Decision.select().count()
        seconds, again = _timed(lambda: engine.run_occurrence(occ, at), "rerun")
        report["rerun_s"] = round(seconds, 2)
        report["rerun_rows_added"] = again + (Decision.select().count() - before)
        # As after a crash: the occurrence is still marked running, so every batch is redone.
        Occurrence.update(status="running").where(Occurrence.id == occ.id).execute()
        occ.status = "running"
        seconds, again = _timed(lambda: engine.run_occurrence(occ, at), "forced_regeneration")
        report["forced_regeneration_s"] = round(seconds, 2)
        report["forced_regeneration_rows_added"] = again + (Decision.select().count() - before)
        Plan.update(next_run_at=at + timedelta(days=1)).where(Plan.store == store.id).execute()
        timings = []
        for _ in range(7):
            seconds, summary = _timed(lambda: scheduler.tick(at + timedelta(minutes=5)))
            timings.append(seconds)
        report["idle_tick_ms"] = round(statistics.median(timings) * 1000, 1)
        report["idle_tick_summary"] = summary.line(at)
    if not is_postgres() and not args.skip_concurrent:
        report.update(_concurrent_write(store_id, aud, at))
    report["cpu_s"] = CPU
    if SERVER_CPU:
        report["postgres_backend_cpu_s"] = SERVER_CPU
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=2, default=str))


def _concurrent_write(store_id: int, aud: dict, at) -> dict:
    """A staff outcome write (UPDATE follow_up) every 20 ms while a big occurrence runs."""
    with db.obj.connection_context():
        store = Store.get_by_id(store_id)
        # Close plan A's follow-ups (as if staff finished them) so plan B opens new ones.
        ids = [
            r[0]
            for r in FollowUp.select(FollowUp.id)
            .where(FollowUp.store == store_id)
            .limit(2000)
            .tuples()
        ]
        FollowUp.update(status="done", open_customer=None).where(
            FollowUp.store == store_id
        ).execute()
        plan = _plan(store, "Bench B", aud)
        occ = _occurrence(plan, at + timedelta(days=1))
    latencies: list[float] = []
    done = threading.Event()

    def staff_writes():
        with db.obj.connection_context():
            n = 0
            while not done.is_set():
                fid = ids[n % len(ids)]
                started = time.perf_counter()
                # As the web app does for a request that changes data (app/__init__.py).
                with interactive_writer(), db.atomic():
                    FollowUp.update(
                        outcome="reached",
                        note=pw.Value(f"call {n}"),
                        attempts=FollowUp.attempts + 1,
                    ).where(FollowUp.id == fid).execute()
                latencies.append(time.perf_counter() - started)
                n += 1
                time.sleep(0.02)

    holds: list[float] = []
    real_tx = engine._tx

    class _TimedTx:
        """How long each engine transaction holds the write lock."""

        def __init__(self, joined=False):
            self.inner = real_tx(joined)

        def __enter__(self):
            self.started = time.perf_counter()
            return self.inner.__enter__()

        def __exit__(self, *exc):
            try:
                return self.inner.__exit__(*exc)
            finally:
                holds.append(time.perf_counter() - self.started)

    engine._tx = _TimedTx
    writer = threading.Thread(target=staff_writes)
    writer.start()
    with db.obj.connection_context():
        seconds, made = _timed(
            lambda: engine.run_occurrence(occ, at + timedelta(days=1)), "concurrent_occurrence"
        )
    done.set()
    writer.join()
    engine._tx = real_tx
    latencies.sort()
    holds.sort()
    return {
        "concurrent_occurrence_s": round(seconds, 2),
        "concurrent_followups": made,
        "staff_writes": len(latencies),
        "staff_write_p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "staff_write_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
        "staff_write_max_ms": round(latencies[-1] * 1000, 1),
        "engine_transactions": len(holds),
        "engine_hold_p50_ms": round(holds[len(holds) // 2] * 1000, 1),
        "engine_hold_p99_ms": round(holds[int(len(holds) * 0.99) - 1] * 1000, 1),
        "engine_hold_max_ms": round(holds[-1] * 1000, 1),
    }


if __name__ == "__main__":
    main()
