"""Time the customer import job on a generated 100,000-row CSV: check, import, re-import, and an
import whose worker process is killed with SIGKILL mid-way and then resumed.

Usage: python -m bench.bench_import [--rows N] [--batch 1000] [--keep]
Uses DATABASE_URL when set (a scratch database: the script adds its own stores); otherwise a
fresh SQLite file in a temporary directory. Import files go to a temporary instance directory.
"""

import argparse
import csv
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WORKDIR = Path(tempfile.mkdtemp(prefix="revisit-bench-import-"))
os.environ["REVISIT_INSTANCE"] = str(WORKDIR / "instance")

from app.db import init_db  # noqa: E402

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
FIRST = ["Nur", "Siti", "Tan", "Lim", "陈", "林", "王", "สม", "มาลี", "Aisyah", "Mei", "Hafiz"]
LAST = ["Aisyah", "Ling", "Wei", "美玲", "志明", "ใจดี", "รักดี", "binti Ahmad", "Kumar"]
TAGS = ["VIP", "新客", "lash", "nail", "ลูกค้าใหม่", "rambut", "hair", "facial"]
WORKER = """
import sys
from app.db import db, init_db
init_db(sys.argv[1])
from datetime import datetime
from app.services import import_jobs
with db.connection_context():
    import_jobs.run(sys.argv[2], datetime.fromisoformat(sys.argv[3]))
"""


def write_csv(path: Path, rows: int, seed: int = 7) -> dict:
    """A customer file with ~1% duplicate phones and ~0.5% bad rows."""
    rng = random.Random(seed)
    bad = duplicates = 0
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["会员编号", "姓名", "手机", "生日", "性别", "标签", "car_type", "whatsapp"]
        )
        for i in range(rows):
            phone = f"012-{i // 10000:03d} {i % 10000:04d}"
            member = f"M{i:07d}"
            if i > 100 and rng.random() < 0.01:
                j = rng.randrange(i)
                phone, member = f"012-{j // 10000:03d} {j % 10000:04d}", f"M{j:07d}"
                duplicates += 1
            birthday = date(1960, 1, 1) + timedelta(days=rng.randrange(20000))
            birthday_text = birthday.isoformat()
            if rng.random() < 0.005:
                bad += 1
                phone = "12345" if rng.random() < 0.5 else phone
                birthday_text = "31/02/1990" if not phone.startswith("1") else birthday_text
            writer.writerow(
                [
                    member,
                    f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                    phone,
                    birthday_text,
                    rng.choice(["女", "男", "female", "M", ""]),
                    ", ".join(rng.sample(TAGS, rng.randrange(0, 3))),
                    rng.choice(["suv", "sedan", "mpv", ""]),
                    rng.choice(["yes", "no", ""]),
                ]
            )
    return {"bad": bad, "duplicates": duplicates}


def server_cpu() -> float | None:
    """CPU seconds of this connection's PostgreSQL backend (same machine), else None."""
    from app.db import db, is_postgres

    if not is_postgres():
        return None
    pid = db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Timer:
    """Wall time, CPU time of this process (and of its PostgreSQL backend), load at the end."""

    def __enter__(self):
        self.server = server_cpu()
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu
        self.load = os.getloadavg()[0]
        after = server_cpu()
        self.server = None if after is None or self.server is None else after - self.server

    def __str__(self) -> str:
        server = f" + {self.server:.1f}s PostgreSQL CPU" if self.server is not None else ""
        return f"{self.wall:.1f}s wall, {self.cpu:.1f}s CPU{server}, load {self.load:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--keep", action="store_true", help="keep the generated CSV")
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL") or f"sqlite:///{WORKDIR}/bench.db"
    init_db(url)
    from app import migrate
    from app.db import db
    from app.models import Customer, CustomerTag, ImportBatch
    from app.services import import_jobs, importing, stores

    migrate.upgrade()
    path = WORKDIR / "customers.csv"
    shape = write_csv(path, args.rows)
    data = path.read_bytes()
    print(f"{args.rows} rows, batches of {args.batch}, {os.cpu_count()} cores; file: {shape}")

    def new_job(store) -> str:
        job_id = import_jobs.create_job(store, None, "customers", "customers.csv", data, NOW)
        table = import_jobs.load_table(import_jobs.read_job(job_id))
        mapping = importing.suggest_mapping("customers", table.headers)
        options = {"create_tags": True, "triggers_plans": False}
        import_jobs.start_check(job_id, mapping, None, options, NOW)
        import_jobs.write_job(job_id, batch_size=args.batch)
        return job_id

    def outcome(store, job_id: str) -> tuple:
        job = import_jobs.read_job(job_id)
        customers = Customer.select().where(Customer.store == store.id).count()
        links = CustomerTag.select().join(Customer).where(Customer.store == store.id).count()
        rejected = len(import_jobs.rejected_rows(job))
        return job["totals"], job["landed"], customers, links, rejected

    with db.connection_context():
        stamp = int(time.time())
        store = stores.create_store(f"bench{stamp}", "Bench", "Asia/Kuala_Lumpur", "MY", "MYR")
        job_id = new_job(store)
        with Timer() as t:
            job = import_jobs.check(job_id, NOW)
        print(f"check (dry run, in the worker): {t}  {job['check']['created']} would be created")
        import_jobs.queue(job_id, NOW)
        with Timer() as t:
            job = import_jobs.run(job_id, NOW)
        first = outcome(store, job_id)
        print(
            f"first import: {t} ({args.rows / t.wall:,.0f} rows/s)  "
            f"{first[0]}; customers {first[2]}, tag links {first[3]}"
        )

        again = new_job(store)
        import_jobs.check(again, NOW)
        import_jobs.queue(again, NOW)
        with Timer() as t:
            import_jobs.run(again, NOW)
        print(f"re-import: {t}  {import_jobs.read_job(again)['totals']}")

        other = stores.create_store(f"bench{stamp}b", "Bench B", "Asia/Kuala_Lumpur", "MY", "MYR")
        killed = new_job(other)
        import_jobs.check(killed, NOW)
        import_jobs.queue(killed, NOW)
    batches = -(-args.rows // args.batch)
    cut = max(1, int(batches * 0.4))
    started = time.perf_counter()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, url, killed, NOW.isoformat()], cwd=ROOT, env=env
    )
    with db.connection_context():
        committed = ImportBatch.select().where(ImportBatch.job == killed)
        while committed.count() < cut and worker.poll() is None:
            time.sleep(0.02)
        if worker.poll() is not None:
            raise SystemExit(f"the worker ended by itself (exit {worker.returncode})")
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        landed = committed.count()
        saved = import_jobs.read_job(killed)
        child = resource.getrusage(resource.RUSAGE_CHILDREN)
        print(
            f"worker killed (SIGKILL) after {landed} committed batches; job file says row "
            f"{saved['next_row']}, state {saved['state']}; worker CPU "
            f"{child.ru_utime + child.ru_stime:.1f}s"
        )
        import_jobs.queue(killed, NOW)
        with Timer() as t:
            import_jobs.run(killed, NOW)
        total = time.perf_counter() - started
        resumed = outcome(other, killed)
        same = "identical to" if resumed == first else "DIFFERENT FROM"
        print(
            f"resume: {t}; killed + resumed {total:.1f}s wall; totals {resumed[0]}, "
            f"customers {resumed[2]}, tag links {resumed[3]}, rejected rows {resumed[4]} — "
            f"{same} the uninterrupted import"
        )
    if not args.keep:
        path.unlink()


if __name__ == "__main__":
    main()
