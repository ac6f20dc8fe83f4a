"""Server time of Today for an employee with 200 open follow-ups on the benchmark database.

Usage: DATABASE_URL=… python -m bench.bench_today [--customers N] [--runs R] [--backlog B]
Generates the benchmark store if needed (bench.generate), gives one employee 200 open follow-ups
spread over overdue / today / upcoming, gives `--backlog` more open follow-ups to other staff of
the store (so the indexes must do the narrowing), then times GET /today through the WSGI app.
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

os.environ.setdefault("REVISIT_NOW", "2026-11-24T02:00:00+00:00")

from app import create_app  # noqa: E402
from app.db import db, is_postgres  # noqa: E402
from app.models import Customer, FollowUp, Plan, Staff, StaffStore  # noqa: E402
from app.services import auth  # noqa: E402
from bench.generate import BENCH_NOW, DEFAULT_URL, generate  # noqa: E402

EMAIL = "bench-today@example.test"
PASSWORD = "bench today password"


def _prepare(store_id: int, mine: int, backlog: int) -> None:
    """One employee with `mine` open follow-ups; `backlog` more for ten colleagues."""
    if Staff.get_or_none(Staff.email == EMAIL) is not None:
        return
    me = Staff.create(
        email=EMAIL,
        name="Bench Employee",
        role="employee",
        password_hash=auth.hash_password(PASSWORD),
    )
    StaffStore.create(staff=me, store=store_id)
    colleagues = []
    for i in range(10):
        s = Staff.create(
            email=f"bench-colleague{i}@example.test",
            name=f"Colleague {i}",
            role="employee",
            password_hash="x",
        )
        StaffStore.create(staff=s, store=store_id)
        colleagues.append(s.id)
    plan = Plan.create(
        store=store_id,
        name="Card expiry",
        template="card_expiry",
        type="recurring",
        status="active",
    )
    taken = {
        f.open_customer
        for f in FollowUp.select(FollowUp.open_customer).where(
            FollowUp.open_customer.is_null(False)
        )
    }
    ids = [
        c.id
        for c in Customer.select(Customer.id)
        .where(Customer.store == store_id)
        .order_by(Customer.id)
        .limit(mine + backlog + len(taken))
        if c.id not in taken
    ][: mine + backlog]
    rows = []
    for n, cid in enumerate(ids):
        owner = me.id if n < mine else colleagues[n % len(colleagues)]
        due = BENCH_NOW + timedelta(hours=(n % 96) - 40)
        rows.append(
            dict(
                store=store_id,
                customer=cid,
                plan=plan.id,
                assignee=owner,
                due_at=due,
                open_customer=cid,
                status="open",
                script="Hi, your card expires soon",
                created_at=BENCH_NOW,
                updated_at=BENCH_NOW,
            )
        )
    for i in range(0, len(rows), 1000):
        FollowUp.insert_many(rows[i : i + 1000]).execute()


def main() -> None:
    """Generate if needed, prepare the follow-ups, then time Today."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--backlog", type=int, default=20_000)
    parser.add_argument(
        "--search",
        action="append",
        default=[],
        help="also time GET /customers?q=… for this query (repeatable)",
    )
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL") or DEFAULT_URL
    store_id = generate(url, args.customers, args.seed)
    app = create_app(
        {"DATABASE": db.obj, "SECRET_KEY": "bench", "WTF_CSRF_ENABLED": False, "TESTING": True}
    )
    with db.obj.connection_context(), db.atomic():
        _prepare(store_id, 200, args.backlog)
    client = app.test_client()
    resp = client.post("/login", data={"email": EMAIL, "password": PASSWORD})
    assert resp.status_code == 303, resp.status_code
    timings, cpu, size = [], [], 0
    for _ in range(args.runs + 3):
        started, cpu_started = time.perf_counter(), time.process_time()
        resp = client.get("/today")
        timings.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        assert resp.status_code == 200
        size = len(resp.data)
    timings, cpu = sorted(timings[3:]), sorted(cpu[3:])
    p95 = timings[max(0, int(len(timings) * 0.95) - 1)]
    cpu_p95 = cpu[max(0, int(len(cpu) * 0.95) - 1)]
    searches = {}
    for q in args.search:
        spent = []
        for _ in range(5):
            started = time.perf_counter()
            found = client.get("/customers", query_string={"q": q})
            spent.append(time.perf_counter() - started)
            assert found.status_code == 200
        searches[q] = {
            "median_ms": round(statistics.median(spent) * 1000, 1),
            "rows": found.data.count(b'class="row"'),
        }
    print(
        json.dumps(
            {
                "backend": "postgresql" if is_postgres() else "sqlite",
                "customers": args.customers,
                "my_open_followups": 200,
                "other_open_followups": args.backlog,
                "runs": args.runs,
                "today_p50_ms": round(statistics.median(timings) * 1000, 1),
                "today_p95_ms": round(p95 * 1000, 1),
                "cpu_p50_ms": round(statistics.median(cpu) * 1000, 1),
                "cpu_p95_ms": round(cpu_p95 * 1000, 1),
                "rows_rendered": resp.data.count(b'class="fu"'),
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "html_bytes": size,
                "search": searches,
            }
        )
    )


if __name__ == "__main__":
    main()
