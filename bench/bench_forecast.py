"""The plan builder's 14-day forecast on the benchmark database, each customer counted once.

Usage: DATABASE_URL=… python -m bench.bench_forecast [--customers N] [--runs R]
Generates the benchmark store if needed (bench.generate), builds unsaved drafts of a
card-expiry plan (state keys: each expiring card counted on the first day it enters the window)
and a member-day plan (a key per firing: counted in SQL), and times plans.forecast for each,
wall and process CPU time. For comparison it also prints the old figure (every firing's count
summed, an expiring card counted again on each day it stays in the window).
"""

import argparse
import json
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("REVISIT_NOW", "2026-11-24T00:00:00+00:00")

from app import create_app  # noqa: E402
from app.db import db, is_postgres  # noqa: E402
from app.models import Store  # noqa: E402
from app.services import engine, plans  # noqa: E402
from bench.generate import BENCH_NOW, DEFAULT_URL, generate  # noqa: E402

DRAFTS = {
    "card_expiry": {
        "template": "card_expiry",
        "name": "Card expiry",
        "params": {"days_before": 30},
    },
    "member_day": {
        "template": "member_day",
        "name": "Member day",
        "params": {"day_of_month": 1, "remind_days_before": 1},
        "action": {"kind": "message", "channel": "whatsapp"},
    },
}


def _old_total(draft, store, now) -> int:
    """What the forecast said before: each firing's count of undecided pairs, summed."""
    cfg = engine.config(draft)
    total, instant = 0, now
    until = now + timedelta(days=14)
    while True:
        instant = engine.next_firing(cfg, store.timezone, instant)
        if instant is None or instant > until:
            return total
        total += plans._count_new(draft, store, plans._probe(draft, store, instant, now), now)


def main() -> None:
    """Generate if needed, then time the forecast of each draft."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL") or DEFAULT_URL
    store_id = generate(url, args.customers, args.seed)
    create_app({"DATABASE": db.obj, "SECRET_KEY": "bench", "TESTING": True})
    out = {
        "backend": "postgresql" if is_postgres() else "sqlite",
        "customers": args.customers,
        "runs": args.runs,
    }
    with db.obj.connection_context():
        store = Store.get_by_id(store_id)
        for key, body in DRAFTS.items():
            draft = plans.draft_plan(store, body)
            wall, cpu, days = [], [], []
            for _ in range(args.runs):
                started, cpu_started = time.perf_counter(), time.process_time()
                days = plans.forecast(draft, BENCH_NOW)
                wall.append(time.perf_counter() - started)
                cpu.append(time.process_time() - cpu_started)
            started, cpu_started = time.perf_counter(), time.process_time()
            old_total = _old_total(draft, store, BENCH_NOW)
            old_wall, old_cpu = time.perf_counter() - started, time.process_time() - cpu_started
            out[key] = {
                "firings": len(days),
                "customers_total": sum(d["count"] for d in days),
                "old_summed_total": old_total,
                "old_wall_ms": round(old_wall * 1000, 1),
                "old_cpu_ms": round(old_cpu * 1000, 1),
                "wall_p50_ms": round(statistics.median(wall) * 1000, 1),
                "wall_max_ms": round(max(wall) * 1000, 1),
                "cpu_p50_ms": round(statistics.median(cpu) * 1000, 1),
            }
    out["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
