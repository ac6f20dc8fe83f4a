"""Outbox drain speed, and rate-limit compliance, on a fresh database.

Usage: [DATABASE_URL=…] python -m bench.bench_outbox [--messages N] [--workers W]

1. Drain N queued messages through the log-only channel with rate limits effectively off
   (per_second 32767) using W sender processes; prints messages per second.
2. With limits on (per_second 80, the WhatsApp default throughput), drain 400 messages and count
   1-second windows holding more than 80 claims (violations; must be 0).
Without DATABASE_URL a temporary SQLite file is used. The database is emptied first.
"""

import argparse
import logging
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("SECRET_KEY", "bench-secret")
if not os.environ.get("DATABASE_URL"):
    os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp()}/bench_outbox.db"

from app import migrate  # noqa: E402
from app.db import db, init_db  # noqa: E402
from app.models import ALL_MODELS, Consent, Customer, Message, Store  # noqa: E402
from app.services import messaging  # noqa: E402

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)  # midday in Kuala Lumpur


def _reset() -> None:
    init_db(os.environ["DATABASE_URL"])
    with db.connection_context():
        migrate.upgrade()
        for model in reversed(ALL_MODELS):
            model.delete().execute()


def _fill(n: int, per_second: int, channel: str = "log_only") -> Store:
    store = Store.create(
        key=f"bench{uuid.uuid4().hex[:6]}", name="Bench", timezone="Asia/Kuala_Lumpur"
    )
    messaging.configure_channel(store, channel, NOW, True, {}, {}, per_second=per_second)
    Customer.insert_many(
        [
            {
                "store": store.id,
                "name": f"C{i}",
                "phone": f"+6010{i:08d}",
                "created_at": NOW,
                "updated_at": NOW,
                "joined_at": NOW,
            }
            for i in range(n)
        ]
    ).execute()
    ids = [c.id for c in Customer.select(Customer.id).where(Customer.store == store.id)]
    for start in range(0, n, 5000):
        chunk = ids[start : start + 5000]
        Consent.insert_many(
            [{"customer": cid, "channel": "sms", "granted": True, "at": NOW} for cid in chunk]
        ).execute()
        Message.insert_many(
            [
                {
                    "store": store.id,
                    "customer": cid,
                    "channel": channel,
                    "body": "Member day tomorrow",
                    "status": "queued",
                    "idempotency_key": uuid.uuid4().hex,
                    "created_at": NOW,
                }
                for cid in chunk
            ]
        ).execute()
    return store


def _worker(n: int) -> None:
    init_db(os.environ["DATABASE_URL"])
    with db.connection_context():
        messaging.send_due(NOW, limit=n, max_seconds=0)


def drain(n: int, workers: int) -> float:
    """Seconds to send n messages with `workers` processes."""
    with db.connection_context():
        _fill(n, 32767)
    db.close() if not db.is_closed() else None
    started = time.perf_counter()
    if workers == 1:
        _worker(n)
    else:
        procs = [multiprocessing.Process(target=_worker, args=(n,)) for _ in range(workers)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
    elapsed = time.perf_counter() - started
    with db.connection_context():
        sent = Message.select().where(Message.status == "sent").count()
        dupes = n - len(
            {m.idempotency_key for m in Message.select().where(Message.status == "sent")}
        )
    assert sent == n, f"sent {sent} of {n}"
    assert dupes == 0
    return elapsed


def rate_violations(n: int = 400, per_second: int = 80) -> tuple[int, float]:
    """Drain with the limit on; count 1-second windows over the limit."""
    with db.connection_context():
        for model in reversed(ALL_MODELS):
            model.delete().execute()
        _fill(n, per_second)
        started = time.perf_counter()
        messaging.send_due(NOW, limit=n, max_seconds=600)
        elapsed = time.perf_counter() - started
        times = sorted(m.sending_at for m in Message.select(Message.sending_at))
    violations = sum(
        1
        for i in range(len(times) - per_second)
        if times[i + per_second] - times[i] < timedelta(seconds=1)
    )
    return violations, elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    logging.disable(logging.INFO)
    _reset()
    elapsed = drain(args.messages, args.workers)
    backend = os.environ["DATABASE_URL"].split(":", 1)[0]
    print(
        f"{backend}: drained {args.messages} messages with {args.workers} worker(s) in "
        f"{elapsed:.2f}s = {args.messages / elapsed:.0f} messages/s"
    )
    violations, took = rate_violations()
    print(f"rate limit 80/s: 400 messages in {took:.1f}s, {violations} window violations")


if __name__ == "__main__":
    main()
