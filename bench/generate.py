"""Generate a large, internally consistent store for benchmarks (customers, cards, events, visits).

Usage: DATABASE_URL=… python -m bench.generate [--customers N] [--seed S]
The database should be dedicated to benchmarks: when it already holds a benchmark store of a
different size, every table is emptied and the data is generated again.
"""

import argparse
import json
import logging
import os
import random
import sys
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app import migrate  # noqa: E402
from app.db import db, is_postgres, make_database  # noqa: E402
from app.models import (  # noqa: E402
    ALL_MODELS,
    CardProduct,
    Consent,
    Customer,
    CustomerAttribute,
    CustomerCard,
    CustomerTag,
    Event,
    EventItem,
    Staff,
    Store,
    Tag,
    Visit,
)

log = logging.getLogger("bench.generate")

DEFAULT_URL = f"sqlite:///{ROOT / 'bench' / 'out' / 'bench.db'}"
BENCH_NOW = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
STORE_KEY = "bench"
OFFSET = 8 * 3600  # Asia/Kuala_Lumpur is UTC+8 all year: local day = (t + 8h) // 1 day
CHUNK = 20_000
TAGS = [
    "cosmetics",
    "haircare",
    "skincare",
    "nails",
    "massage",
    "VIP",
    "student",
    "office",
    "mum",
    "bride",
    "sensitive-skin",
    "colour",
    "keratin",
    "perm",
    "lash",
    "brow",
    "spa",
    "weekend",
    "evening",
    "referrer",
]
SKUS = [f"P{n:03d}" for n in range(1, 39)] + ["LIPSTICK", "SERUM"]
PRODUCTS = [
    ("SV500", "Stored value 500", "stored_value", 500, None),
    ("SV1000", "Stored value 1000", "stored_value", 1000, None),
    ("FACIAL10", "10 facials", "count", None, 10),
    ("HAIR5", "5 hair treatments", "count", None, 5),
    ("MONTHLY", "Monthly pass", "period", None, None),
    ("ANNUAL", "Annual membership", "period", None, None),
]
EVENT_TYPES = (
    ["purchase"] * 35
    + ["service_completed"] * 30
    + ["card_used"] * 15
    + ["appointment_booked"] * 10
    + ["visit"] * 5
    + ["appointment_cancelled"] * 3
    + ["refund"] * 2
)
VISIT_TYPES = {"visit", "service_completed", "purchase", "card_used"}
CUSTOMER_COLUMNS = [
    f.column_name for f in Customer._meta.sorted_fields if f.column_name != "portal_secret"
]


def _ts(seconds: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def _money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


class _Writer:
    """Bulk rows into a table: executemany on SQLite, COPY on PostgreSQL."""

    def __init__(self, database):
        self.database = database
        self.postgres = is_postgres()

    def write(self, table: str, columns: list[str], rows: list[tuple]) -> None:
        if not rows:
            return
        cols = ", ".join(f'"{c}"' for c in columns)
        if self.postgres:
            cursor = self.database.cursor()
            with cursor.copy(f'COPY "{table}" ({cols}) FROM STDIN') as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in columns)
            self.database.connection().executemany(
                f'INSERT INTO "{table}" ({cols}) VALUES ({marks})', rows
            )


def _big_tables():
    return [
        Customer,
        CustomerTag,
        CustomerAttribute,
        Consent,
        CustomerCard,
        Event,
        EventItem,
        Visit,
    ]


def _drop_indexes(database) -> None:
    """Secondary indexes are rebuilt after loading: far faster than maintaining them per row."""
    for model in _big_tables():
        for index in database.get_indexes(model._meta.table_name):
            if index.name.endswith("_pkey") or index.name.startswith("sqlite_autoindex"):
                continue
            database.execute_sql(f'DROP INDEX IF EXISTS "{index.name}"')


def _create_indexes(database) -> None:
    for model in _big_tables():
        model._schema.create_indexes(safe=True)
    # VACUUM also sets PostgreSQL's visibility map, so covering indexes give index-only scans.
    database.execute_sql("VACUUM ANALYZE" if is_postgres() else "ANALYZE")


def _existing(customers: int, seed: int) -> int | None:
    store = Store.get_or_none(Store.key == STORE_KEY)
    if store is None:
        return None
    marker = store.setting("bench", {})
    if marker.get("customers") == customers and marker.get("seed") == seed and marker.get("done"):
        return store.id
    return -1


def _empty_everything(database) -> None:
    tables = [m._meta.table_name for m in ALL_MODELS]
    if is_postgres():
        database.execute_sql(
            "TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"
        )
    else:
        database.execute_sql("PRAGMA foreign_keys = OFF")
        for table in tables:
            database.execute_sql(f'DELETE FROM "{table}"')


def generate(database_url: str | None, customers: int = 1_000_000, seed: int = 42) -> int:
    """Fill the database at database_url with one benchmark store; returns its id (reused if done)."""
    url = database_url or DEFAULT_URL
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    database = make_database(url)
    db.initialize(database)
    migrate.upgrade()
    with database.connection_context():
        found = _existing(customers, seed)
        if found and found > 0:
            log.info("benchmark store already generated (%s customers)", customers)
            return found
        if found == -1:
            _empty_everything(database)
        started = time.perf_counter()
        store_id = _generate(database, customers, seed)
        log.info("generated %s customers in %.0f s", customers, time.perf_counter() - started)
        return store_id


def _generate(database, customers: int, seed: int) -> int:
    rng = random.Random(seed)
    postgres = is_postgres()
    if postgres:
        database.execute_sql("SET session_replication_role = replica")
    else:
        database.execute_sql("PRAGMA foreign_keys = OFF")
        database.execute_sql("PRAGMA synchronous = OFF")
    now_s = int(BENCH_NOW.timestamp())
    stamp = _ts(now_s)
    with database.atomic():
        store = Store.create(
            key=STORE_KEY,
            name="Bench Beauty",
            timezone="Asia/Kuala_Lumpur",
            region="MY",
            currency="MYR",
            settings={"bench": {"customers": customers, "seed": seed, "done": False}},
            created_at=BENCH_NOW,
        )
        staff_ids = [
            Staff.create(
                email=f"bench-staff{n}@example.test",
                name=f"Bench staff {n}",
                password_hash="!",
                role="employee",
                created_at=BENCH_NOW,
                password_changed_at=BENCH_NOW,
            ).id
            for n in range(20)
        ]
        tag_ids = [Tag.create(store=store, name=name, created_at=BENCH_NOW).id for name in TAGS]
        products = [
            (
                CardProduct.create(
                    store=store,
                    sku=sku,
                    name=name,
                    kind=kind,
                    value=value,
                    uses=uses,
                    created_at=BENCH_NOW,
                ).id,
                kind,
                value,
                uses,
            )
            for sku, name, kind, value, uses in PRODUCTS
        ]
    _drop_indexes(database)
    writer = _Writer(database)
    next_event = _max_id(Event) + 1
    next_card = _max_id(CustomerCard) + 1
    first_customer = _max_id(Customer) + 1
    for start in range(0, customers, CHUNK):
        rows = _chunk(
            rng,
            store.id,
            range(start, min(start + CHUNK, customers)),
            first_customer,
            staff_ids,
            tag_ids,
            products,
            now_s,
            stamp,
            next_event,
            next_card,
        )
        next_event, next_card = rows.pop("_next")
        with database.atomic():
            for table, (columns, values) in rows.items():
                writer.write(table, columns, values)
        if start and start % (CHUNK * 10) == 0:
            log.info("… %s customers", start)
    _create_indexes(database)
    if postgres:
        for model in (Customer, Event, CustomerCard):
            table = model._meta.table_name
            database.execute_sql(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f'(SELECT COALESCE(MAX(id), 1) FROM "{table}"))'
            )
        database.execute_sql("SET session_replication_role = DEFAULT")
    else:
        database.execute_sql("PRAGMA foreign_keys = ON")
    store.settings = {"bench": {"customers": customers, "seed": seed, "done": True}}
    store.save()
    return store.id


def _max_id(model) -> int:
    return model.select(model.id).order_by(model.id.desc()).limit(1).scalar() or 0


def _chunk(
    rng: random.Random,
    store_id: int,
    numbers: Iterable[int],
    first_customer: int,
    staff_ids: list[int],
    tag_ids: list[int],
    products: list[tuple],
    now_s: int,
    stamp: str,
    next_event: int,
    next_card: int,
) -> dict:
    """Rows of every table for a run of customers, with consistent cached aggregates."""
    customer_rows, tag_rows, attr_rows, consent_rows = [], [], [], []
    card_rows, event_rows, item_rows, visit_rows = [], [], [], []
    today = (now_s + OFFSET) // 86400
    three_years = 3 * 365 * 86400
    rand, randint, choice = rng.random, rng.randint, rng.choice
    for n in numbers:
        cid = first_customer + n
        joined = now_s - randint(0, three_years)
        events = []
        for _ in range(randint(0, 10)):
            kind = choice(EVENT_TYPES)
            at = randint(joined, now_s - 60)
            if kind in ("purchase", "service_completed"):
                amount = randint(2000, 80000)
            elif kind == "refund":
                amount = -randint(1000, 20000)
            else:
                amount = None
            events.append((at, kind, amount))
        events.sort()
        visits: dict[int, list] = {}
        total = 0
        for at, kind, amount in events:
            eid = next_event
            next_event += 1
            if amount is not None:
                total += amount
            event_rows.append(
                (
                    eid,
                    store_id,
                    cid,
                    f"b{eid}",
                    kind,
                    _ts(at),
                    _money(amount) if amount is not None else None,
                    "import",
                    False,
                    _ts(at),
                )
            )
            if kind == "purchase":
                for sku in {choice(SKUS) for _ in range(randint(1, 2))}:
                    item_rows.append((eid, cid, sku, sku, 1, _money(randint(1000, 30000))))
            if kind in VISIT_TYPES:
                day = (at + OFFSET) // 86400
                entry = visits.get(day)
                if entry is None:
                    visits[day] = [at, amount or 0]
                else:
                    entry[1] += amount or 0
        for day, (first_at, amount) in visits.items():
            visit_rows.append((cid, store_id, _day(day), _ts(first_at), _money(amount), None))
        visit_days = sorted(visits)
        first_visit = _ts(visits[visit_days[0]][0]) if visit_days else None
        last_visit = (
            _ts(max(at for at, kind, _ in events if kind in VISIT_TYPES)) if visit_days else None
        )
        born = None
        if rand() < 0.8:
            born = date(randint(1950, 2008), 1, 1) + timedelta(days=randint(0, 364))
        gender = "female" if rand() < 0.6 else ("male" if rand() < 0.9 else None)
        email = f"c{cid}@example.test" if rand() < 0.3 else None
        line_id = f"line{cid}" if rand() < 0.1 else None
        row = {
            "id": cid,
            "store_id": store_id,
            "external_id": f"c{cid}",
            "name": f"Customer {cid}",
            "phone": f"+601{cid:08d}",
            "email": email,
            "line_id": line_id,
            "gender": gender,
            "birthday": born.isoformat() if born else None,
            "birthday_md": born.month * 100 + born.day if born else None,
            "source": choice(["walk-in", "instagram", "facebook", "referral", "xiaohongshu", None]),
            "level": choice(["silver", "silver", "gold", "vip", None]),
            "locale": None,
            "assigned_staff_id": choice(staff_ids) if rand() < 0.5 else None,
            "notes": "",
            "joined_at": _ts(joined),
            "first_visit_at": first_visit,
            "last_visit_at": last_visit,
            "visit_count": len(visit_days),
            "total_spend": _money(total),
            "points": randint(0, 2000),
            "phone_flagged_at": stamp if rand() < 0.01 else None,
            "created_at": _ts(joined),
            "updated_at": stamp,
        }
        customer_rows.append(tuple(row[c] for c in CUSTOMER_COLUMNS))
        for tag_id in {choice(tag_ids) for _ in range(choice((0, 1, 1, 2, 2, 3)))}:
            tag_rows.append((cid, tag_id, "import", stamp))
        if rand() < 0.5:
            attr_rows.append((cid, "hair_type", choice(["straight", "curly", "wavy", "coily"])))
        if rand() < 0.5:
            attr_rows.append((cid, "skin_type", choice(["dry", "oily", "normal", "mixed"])))
        if rand() < 0.7:
            consent_rows.append((cid, "whatsapp", True, "import", stamp))
        if email and rand() < 0.7:
            consent_rows.append((cid, "email", True, "import", stamp))
        if line_id:
            consent_rows.append((cid, "line", rand() < 0.8, "import", stamp))
        for _ in range(choice((0, 0, 1, 1, 1, 2, 2, 3))):
            product_id, kind, value, uses = choice(products)
            issued = randint(joined, now_s)
            expires = (issued + OFFSET) // 86400 + (
                30 if kind == "period" and rand() < 0.5 else 365
            )
            balance = remaining = None
            if kind == "stored_value":
                balance = randint(0, value * 100)
                status = "active" if balance > 0 else "used_up"
                balance = _money(balance)
            elif kind == "count":
                remaining = randint(0, uses)
                status = "active" if remaining > 0 else "used_up"
            else:
                status = "active"
            if expires < today and status == "active":
                status = "expired"
            card_rows.append(
                (
                    next_card,
                    store_id,
                    cid,
                    product_id,
                    balance,
                    remaining,
                    _day(expires),
                    status,
                    _ts(issued),
                )
            )
            next_card += 1
    return {
        "customer": (CUSTOMER_COLUMNS, customer_rows),
        "customer_tag": (["customer_id", "tag_id", "source", "added_at"], tag_rows),
        "customer_attribute": (["customer_id", "key", "value"], attr_rows),
        "consent": (["customer_id", "channel", "granted", "source", "at"], consent_rows),
        "customer_card": (
            [
                "id",
                "store_id",
                "customer_id",
                "product_id",
                "balance",
                "remaining_uses",
                "expires_on",
                "status",
                "issued_at",
            ],
            card_rows,
        ),
        "event": (
            [
                "id",
                "store_id",
                "customer_id",
                "external_id",
                "type",
                "occurred_at",
                "amount",
                "source",
                "triggers_plans",
                "created_at",
            ],
            event_rows,
        ),
        "event_item": (["event_id", "customer_id", "sku", "name", "quantity", "price"], item_rows),
        "visit": (["customer_id", "store_id", "day", "first_at", "amount", "staff_id"], visit_rows),
        "_next": (next_event, next_card),
    }


def _day(epoch_day: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=epoch_day)).isoformat()


def main() -> None:
    """Command line: generate the benchmark store into DATABASE_URL."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    url = os.environ.get("DATABASE_URL") or DEFAULT_URL
    started = time.perf_counter()
    store_id = generate(url, args.customers, args.seed)
    print(
        json.dumps(
            {
                "store_id": store_id,
                "customers": args.customers,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
