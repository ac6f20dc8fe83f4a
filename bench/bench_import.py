"""Time the customer importer on a generated 100,000-row CSV: first import, re-import, resume.

Usage: python -m bench.bench_import [--rows N] [--batch 500] [--keep]
Uses DATABASE_URL when set (it must point at an empty scratch database); otherwise a fresh
SQLite file in a temporary directory.
"""

import argparse
import csv
import os
import random
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.db import init_db  # noqa: E402

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
FIRST = ["Nur", "Siti", "Tan", "Lim", "陈", "林", "王", "สม", "มาลี", "Aisyah", "Mei", "Hafiz"]
LAST = ["Aisyah", "Ling", "Wei", "美玲", "志明", "ใจดี", "รักดี", "binti Ahmad", "Kumar"]
TAGS = ["VIP", "新客", "lash", "nail", "ลูกค้าใหม่", "rambut", "hair", "facial"]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--keep", action="store_true", help="keep the generated CSV")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="revisit-bench-import-"))
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{workdir}/bench.db"
    init_db(url)
    from app import migrate
    from app.db import db
    from app.models import Customer, CustomerTag
    from app.services import importing, stores

    try:
        migrate.upgrade()
    except Exception as exc:  # a migration in progress elsewhere must not block the benchmark
        if not url.startswith("sqlite"):
            raise
        print(f"migrations failed ({exc}); building the schema from the models instead")
        from app.models import ALL_MODELS

        db.close_all() if hasattr(db, "close_all") else None
        url = f"sqlite:///{workdir}/bench-models.db"
        init_db(url)
        with db.connection_context():
            db.create_tables(ALL_MODELS)
    path = workdir / "customers.csv"
    started = time.perf_counter()
    shape = write_csv(path, args.rows)
    print(f"generated {args.rows} rows in {time.perf_counter() - started:.1f}s ({shape})")

    with db.connection_context():
        store = stores.create_store(
            f"bench{int(time.time())}", "Bench", "Asia/Kuala_Lumpur", "MY", "MYR"
        )
        options = {"batch_size": args.batch}

        started = time.perf_counter()
        table = importing.read_table(path)
        read_s = time.perf_counter() - started
        mapping = importing.suggest_mapping("customers", table.headers)

        started, cpu = time.perf_counter(), time.process_time()
        first = importing.import_rows("customers", store, table, mapping, NOW, options)
        first_s, first_cpu = time.perf_counter() - started, time.process_time() - cpu
        count = Customer.select().where(Customer.store == store.id).count()
        print(
            f"read: {read_s:.1f}s  import: {first_s:.1f}s wall, {first_cpu:.1f}s CPU "
            f"({args.rows / first_s:,.0f} rows/s); load average {os.getloadavg()[0]:.1f} "
            f"on {os.cpu_count()} cores"
        )
        print(f"  {first.summary()}  customers in store: {count}")

        started, cpu = time.perf_counter(), time.process_time()
        again = importing.import_rows("customers", store, table, mapping, NOW, options)
        again_s, again_cpu = time.perf_counter() - started, time.process_time() - cpu
        print(f"re-import: {again_s:.1f}s wall, {again_cpu:.1f}s CPU  {again.summary()}")

        # Kill-and-resume: a second store, cancelled after 40% of the batches, then resumed
        # from one batch earlier than reported (the last progress write was lost).
        other = stores.create_store(
            f"bench{int(time.time())}b", "Bench B", "Asia/Kuala_Lumpur", "MY", "MYR"
        )
        cut = int(len(table) * 0.4)
        progress = {"done": 0}

        def remember(done: int, total: int) -> None:
            progress["done"] = done

        started = time.perf_counter()
        part = importing.import_rows(
            "customers",
            other,
            table,
            mapping,
            NOW,
            dict(options, on_progress=remember, should_cancel=lambda: progress["done"] >= cut),
        )
        importing.import_rows(
            "customers",
            other,
            table,
            mapping,
            NOW,
            dict(options, resume_from=max(0, part.next_row - args.batch)),
        )
        resume_s = time.perf_counter() - started
        count_b = Customer.select().where(Customer.store == other.id).count()
        tags_a = CustomerTag.select().join(Customer).where(Customer.store == store.id).count()
        tags_b = CustomerTag.select().join(Customer).where(Customer.store == other.id).count()
        print(
            f"cancel at row {part.next_row} + resume from {max(0, part.next_row - args.batch)}: "
            f"{resume_s:.1f}s; customers {count_b} (uninterrupted: {count}), "
            f"tag links {tags_b} (uninterrupted: {tags_a})"
        )
    if not args.keep:
        path.unlink()


if __name__ == "__main__":
    main()
