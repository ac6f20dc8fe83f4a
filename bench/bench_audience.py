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

RAW_SQL = """
SELECT COUNT(*) FROM customer c
WHERE c.store_id = {p}
  AND c.gender = 'female'
  AND c.last_visit_at >= {p} AND c.last_visit_at <= {p}
  AND c.total_spend >= 500
  AND EXISTS (SELECT 1 FROM customer_tag ct JOIN tag t ON t.id = ct.tag_id
              WHERE ct.customer_id = c.id AND t.store_id = {p} AND t.name = 'cosmetics')
  AND EXISTS (SELECT 1 FROM customer_card cc
              WHERE cc.customer_id = c.id AND cc.store_id = {p}
                AND cc.status = 'active' AND cc.balance <= 500)
"""


def _raw_count(store_id: int) -> int:
    # 90 days back from the local (UTC+8) day of BENCH_NOW, as local midnight in UTC.
    local_today = (BENCH_NOW + timedelta(hours=8)).date()
    since = f"{local_today - timedelta(days=90)} 00:00:00"
    since_utc = (datetime.fromisoformat(since) - timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")
    until = BENCH_NOW.strftime("%Y-%m-%d %H:%M:%S")
    sql = RAW_SQL.format(p="%s" if is_postgres() else "?")
    return db.execute_sql(sql, (store_id, since_utc, until, store_id, store_id)).fetchone()[0]


def _time(fn, runs: int) -> tuple[float, object]:
    fn()  # warm the cache
    timings, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings), result


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
        ours_s, ours = _time(lambda: audience.count(store_id, AUDIENCE, BENCH_NOW), args.runs)
        raw_s, raw = _time(lambda: _raw_count(store_id), args.runs)
        if args.explain:
            query = audience.customer_query(store_id, AUDIENCE, BENCH_NOW)
            sql, params = query.sql()
            prefix = "EXPLAIN ANALYZE " if is_postgres() else "EXPLAIN QUERY PLAN "
            for row in db.execute_sql(prefix + sql, params).fetchall():
                print(" | ".join(str(v) for v in row))
    backend = "postgresql" if is_postgres() else "sqlite"
    print(
        json.dumps(
            {
                "backend": backend,
                "customers": args.customers,
                "audience_count": ours,
                "raw_count": raw,
                "audience_s": round(ours_s, 4),
                "raw_s": round(raw_s, 4),
                "ratio": round(ours_s / raw_s, 2) if raw_s else None,
            }
        )
    )
    if ours != raw:
        raise SystemExit(f"counts differ: audience {ours} vs raw SQL {raw}")


if __name__ == "__main__":
    main()
