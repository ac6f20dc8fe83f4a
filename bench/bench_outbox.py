"""Outbox drain speed, and rate-limit compliance, on a fresh database.

Usage: [DATABASE_URL=…] python -m bench.bench_outbox [--messages N] [--workers W]
       [--channel webhook|log_only] [--skip-rate]

1. Drain N queued messages with rate limits off (rate_limit 0) using W sender processes, each
   running messaging.send_due as the tick job does. With --channel webhook (the default) every
   message is a signed JSON POST to a local sink on 127.0.0.1 (its own process, HTTP/1.1
   keep-alive) that counts deliveries per idempotency key; log_only only writes a log line.
   Prints wall time, messages per second, and the CPU seconds of the senders and of the sink.
2. With limits on (80 per second, the WhatsApp default throughput), drain 400 messages through
   the log-only channel in real time and count 1-second windows holding more than 80 claims.
Without DATABASE_URL a temporary SQLite file is used. The database is emptied first.
"""

import argparse
import json
import logging
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("SECRET_KEY", "bench-secret")
TEMP_DIR = None
if not os.environ.get("DATABASE_URL"):
    TEMP_DIR = tempfile.mkdtemp()
    os.environ["DATABASE_URL"] = f"sqlite:///{TEMP_DIR}/bench_outbox.db"

from app import migrate  # noqa: E402
from app.db import db, init_db  # noqa: E402
from app.models import ALL_MODELS, Consent, Customer, Message, Store  # noqa: E402
from app.services import messaging  # noqa: E402

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)  # midday in Kuala Lumpur
SINK_SECRET = "bench-sink-secret"


def _sink(port_queue, counts_queue, stop) -> None:
    """A local delivery sink: answers 200 to every POST and counts idempotency keys."""
    keys: Counter = Counter()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            key = self.headers.get("X-Revisit-Idempotency-Key", "")
            keys[key] += 1
            payload = json.dumps({"id": f"sink-{key}"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.timeout = 0.2
    port_queue.put(server.server_address[1])
    while not stop.is_set():
        server.handle_request()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    counts_queue.put((dict(keys), usage.ru_utime + usage.ru_stime))


def _reset() -> None:
    init_db(os.environ["DATABASE_URL"])
    with db.connection_context():
        migrate.upgrade()
        for model in reversed(ALL_MODELS):
            model.delete().execute()


def _fill(n: int, rate: tuple, channel: str = "log_only", config: dict | None = None) -> Store:
    store = Store.create(
        key=f"bench{uuid.uuid4().hex[:6]}", name="Bench", timezone="Asia/Kuala_Lumpur"
    )
    secrets = {"signing_secret": SINK_SECRET} if channel == "webhook" else {}
    messaging.configure_channel(store, channel, NOW, True, config or {}, secrets, rate=rate)
    for start in range(0, n, 5000):
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
                for i in range(start, min(n, start + 5000))
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
                    "body": "Member day tomorrow: double points at Bunga Beauty",
                    "status": "queued",
                    "idempotency_key": uuid.uuid4().hex,
                    "created_at": NOW,
                }
                for cid in chunk
            ]
        ).execute()
    return store


def _worker(n: int, cpu=None) -> None:
    logging.disable(logging.INFO)
    init_db(os.environ["DATABASE_URL"])
    started = time.process_time()
    with db.connection_context():
        messaging.send_due(NOW, limit=n, max_seconds=0)
    if cpu is not None:
        cpu.put(time.process_time() - started)


def drain(n: int, workers: int, channel: str) -> dict:
    """Send n messages with `workers` processes; wall and CPU seconds."""
    sink = None
    config = {}
    if channel == "webhook":
        port_q, counts_q, stop = (
            multiprocessing.Queue(),
            multiprocessing.Queue(),
            multiprocessing.Event(),
        )
        sink = multiprocessing.Process(target=_sink, args=(port_q, counts_q, stop))
        sink.start()
        config = {"url": f"http://127.0.0.1:{port_q.get(timeout=10)}/deliver", "timeout": 5}
    with db.connection_context():
        _fill(n, (messaging.UNLIMITED, "second"), channel, config)
    if not db.is_closed():
        db.close()
    cpu_q = multiprocessing.Queue()
    started = time.perf_counter()
    if workers == 1:
        cpu_started = time.process_time()
        _worker(n)
        worker_cpu = time.process_time() - cpu_started
    else:
        procs = [multiprocessing.Process(target=_worker, args=(n, cpu_q)) for _ in range(workers)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        worker_cpu = sum(cpu_q.get() for _ in procs)
    elapsed = time.perf_counter() - started
    with db.connection_context():
        sent = Message.select().where(Message.status == "sent").count()
    assert sent == n, f"sent {sent} of {n}"
    result = {"elapsed": elapsed, "worker_cpu": worker_cpu, "sink_cpu": None}
    if sink is not None:
        stop.set()
        keys, sink_cpu = counts_q.get(timeout=30)
        sink.join()
        assert len(keys) == n, f"the sink got {len(keys)} distinct messages of {n}"
        assert max(keys.values()) == 1, "a message was delivered twice"
        result["sink_cpu"] = sink_cpu
    return result


def rate_violations(n: int = 400, per_second: int = 80) -> tuple[int, float]:
    """Drain with the limit on; count 1-second windows over the limit."""
    with db.connection_context():
        for model in reversed(ALL_MODELS):
            model.delete().execute()
        _fill(n, (per_second, "second"))
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
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--channel", choices=("webhook", "log_only"), default="webhook")
    parser.add_argument("--skip-rate", action="store_true")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    _reset()
    load = os.getloadavg()
    r = drain(args.messages, args.workers, args.channel)
    backend = os.environ["DATABASE_URL"].split(":", 1)[0]
    sink = f", sink CPU {r['sink_cpu']:.2f}s" if r["sink_cpu"] is not None else ""
    print(
        f"{backend} {args.channel}: drained {args.messages} messages with {args.workers} "
        f"worker(s) in {r['elapsed']:.2f}s = {args.messages / r['elapsed']:.0f} messages/s; "
        f"sender CPU {r['worker_cpu']:.2f}s = {args.messages / r['worker_cpu']:.0f} messages "
        f"per CPU-second{sink}; load average before {load[0]:.2f}, after {os.getloadavg()[0]:.2f}"
    )
    if not args.skip_rate:
        violations, took = rate_violations()
        print(f"rate limit 80/s: 400 messages in {took:.1f}s, {violations} window violations")


if __name__ == "__main__":
    try:
        main()
    finally:
        if TEMP_DIR:
            shutil.rmtree(TEMP_DIR, ignore_errors=True)
