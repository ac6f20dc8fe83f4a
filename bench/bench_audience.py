"""Time audience.count() of a five-condition audience against hand-written SQL doing the same count.

Usage: DATABASE_URL=… python -m bench.bench_audience [--customers N] [--runs R]
(generates the benchmark store first when needed; see bench/generate.py)
"""

import argparse
import json
import os
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.db import db, is_postgres  # noqa: E402
from app.services import audience  # noqa: E402
from bench.generate import BENCH_NOW, DEFAULT_URL, generate  # noqa: E402

AUDIENCE = {
    "all": [
        {"field": "tags", "op": "has_any", "value": ["cosmetics"]},
        {"field": "last_visit_at", "op": "in_last_days", "value": 90},
        {"field": "total_spend", "op": "gte", "value": 500},
        {"field": "cards.balance", "op": "lte", "value": 500},
        {"field": "gender", "op": "eq", "value": "female"},
    ]
}

# Two hand-written forms of the same count; the benchmark compares with the faster one.
RAW_SQL = {
    "exists": """
SELECT COUNT(*) FROM customer c
WHERE c.store_id = {p}
  AND c.gender = 'female'
  AND c.last_visit_at >= {p} AND c.last_visit_at <= {p}
  AND c.total_spend >= 500
  AND EXISTS (SELECT 1 FROM customer_tag ct JOIN tag t ON t.id = ct.tag_id
              WHERE ct.customer_id = c.id AND t.store_id = {p} AND t.name = 'cosmetics')
  AND EXISTS (SELECT 1 FROM customer_card cc
              WHERE cc.customer_id = c.id AND cc.status = 'active' AND cc.balance <= 500)
""",
    "in": """
SELECT COUNT(*) FROM customer c
WHERE c.store_id = {p}
  AND c.gender = 'female'
  AND c.last_visit_at >= {p} AND c.last_visit_at <= {p}
  AND c.total_spend >= 500
  AND c.id IN (SELECT ct.customer_id FROM customer_tag ct JOIN tag t ON t.id = ct.tag_id
               WHERE t.store_id = {p} AND t.name = 'cosmetics')
  AND c.id IN (SELECT cc.customer_id FROM customer_card cc
               WHERE cc.store_id = {p} AND cc.status = 'active' AND cc.balance <= 500)
""",
}


def _raw_count(store_id: int, form: str) -> int:
    # 90 days back from the local (UTC+8) day of BENCH_NOW, as local midnight in UTC.
    local_today = (BENCH_NOW + timedelta(hours=8)).date()
    since = datetime.combine(local_today - timedelta(days=90), datetime.min.time()) - timedelta(
        hours=8
    )
    until = BENCH_NOW.strftime("%Y-%m-%d %H:%M:%S")
    sql = RAW_SQL[form].format(p="%s" if is_postgres() else "?")
    params = [store_id, since.strftime("%Y-%m-%d %H:%M:%S"), until, store_id]
    if form == "in":
        params.append(store_id)
    return db.execute_sql(sql, params).fetchone()[0]


def _time(fn, runs: int) -> tuple[float, float, object]:
    """Median wall time and median CPU time of this process (SQLite runs in-process)."""
    fn()  # warm the cache
    walls, cpus, result = [], [], None
    for _ in range(runs):
        started, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), result


def main() -> None:
    """Generate (if needed), then time both counts and print them with their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL") or DEFAULT_URL
    store_id = generate(url, args.customers, args.seed)
    with db.obj.connection_context():
        ours_s, ours_cpu, ours = _time(
            lambda: audience.count(store_id, AUDIENCE, BENCH_NOW), args.runs
        )
        # The correlated EXISTS form scans every recent customer: timed once, for the record.
        raw = {
            form: _time(lambda f=form: _raw_count(store_id, f), args.runs if form == "in" else 1)
            for form in RAW_SQL
        }
        if args.explain:
            query = audience.customer_query(store_id, AUDIENCE, BENCH_NOW)
            sql, params = query.sql()
            prefix = "EXPLAIN ANALYZE " if is_postgres() else "EXPLAIN QUERY PLAN "
            for row in db.execute_sql(prefix + sql, params).fetchall():
                print(" | ".join(str(v) for v in row))
        load = os.getloadavg()[0]
    best = min(raw, key=lambda form: raw[form][0])
    print(
        json.dumps(
            {
                "backend": "postgresql" if is_postgres() else "sqlite",
                "customers": args.customers,
                "count": ours,
                "audience_s": round(ours_s, 4),
                "audience_cpu_s": round(ours_cpu, 4),
                **{f"raw_{form}_s": round(raw[form][0], 4) for form in raw},
                **{f"raw_{form}_cpu_s": round(raw[form][1], 4) for form in raw},
                "ratio_to_best_raw": round(ours_s / raw[best][0], 2),
                "cpu_ratio_to_best_raw": round(ours_cpu / raw[best][1], 2)
                if raw[best][1]
                else None,
                "load_average": round(load, 1),
            }
        )
    )
    for form, (_, _, raw_count) in raw.items():
        if raw_count != ours:
            raise SystemExit(f"counts differ: audience {ours} vs raw SQL ({form}) {raw_count}")


if __name__ == "__main__":
    main()
