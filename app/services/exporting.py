"""CSV exports (customers, follow-ups, contact logs, messages), streamed in chunks and formula-safe."""

import csv
import io
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import peewee as pw

from app.models import (
    CardProduct,
    ContactLog,
    Customer,
    CustomerAttribute,
    CustomerCard,
    CustomerTag,
    FollowUp,
    Message,
    Plan,
    Staff,
    Store,
    Tag,
)
from app.services import audience as audience_service
from app.services.importing import csv_safe

CHUNK = 1000
KINDS = ("customers", "followups", "contacts", "messages")

CUSTOMER_COLUMNS = [
    "id",
    "external_id",
    "name",
    "phone",
    "email",
    "line_id",
    "gender",
    "birthday",
    "source",
    "level",
    "joined_at",
    "first_visit_at",
    "last_visit_at",
    "visit_count",
    "total_spend",
    "points",
    "tags",
    "attributes",
    "cards",
]
# Each export column: its header and the attribute path read from the joined row.
FOLLOWUP_FIELDS = [
    ("id", "id"),
    ("customer_id", "customer.id"),
    ("customer_name", "customer.name"),
    ("customer_phone", "customer.phone"),
    ("plan", "plan.name"),
    ("assignee", "assignee.name"),
    ("status", "status"),
    ("due_at", "due_at"),
    ("outcome", "outcome"),
    ("attempts", "attempts"),
    ("note", "note"),
    ("created_at", "created_at"),
    ("completed_at", "completed_at"),
]
CONTACT_FIELDS = [
    ("id", "id"),
    ("at", "at"),
    ("customer_id", "customer.id"),
    ("customer_name", "customer.name"),
    ("customer_phone", "customer.phone"),
    ("staff", "staff.name"),
    ("channel", "channel"),
    ("outcome", "outcome"),
    ("note", "note"),
    ("next_at", "next_at"),
    ("followup_id", "followup_id"),
]
MESSAGE_FIELDS = [
    ("id", "id"),
    ("created_at", "created_at"),
    ("customer_id", "customer.id"),
    ("customer_name", "customer.name"),
    ("plan", "plan.name"),
    ("channel", "channel"),
    ("to_address", "to_address"),
    ("status", "status"),
    ("body", "body"),
    ("sent_at", "sent_at"),
    ("delivered_at", "delivered_at"),
    ("read_at", "read_at"),
    ("error", "error"),
]
FOLLOWUP_COLUMNS = [name for name, _ in FOLLOWUP_FIELDS]
CONTACT_COLUMNS = [name for name, _ in CONTACT_FIELDS]
MESSAGE_COLUMNS = [name for name, _ in MESSAGE_FIELDS]


class ExportError(ValueError):
    """A filter that cannot be used (names the field)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _chunks(query: pw.Select, key: pw.Field, size: int) -> Iterator[list]:
    """The query's rows in key order, `size` at a time (keyset pages, never all at once)."""
    last = None
    while True:
        page = query.where(key > last) if last is not None else query
        rows = list(page.order_by(key).limit(size))
        if not rows:
            return
        yield rows
        last = rows[-1].id
        if len(rows) < size:
            return


def _day_start(store: Store, value: date) -> datetime:
    local = datetime.combine(value, time(0), tzinfo=ZoneInfo(store.timezone))
    return local.astimezone(ZoneInfo("UTC"))


def _range(store: Store, field: pw.Field, filters: dict) -> list:
    conds = []
    if filters.get("start"):
        conds.append(field >= _day_start(store, filters["start"]))
    if filters.get("end"):
        conds.append(field < _day_start(store, filters["end"] + timedelta(days=1)))
    return conds


def customer_query(store: Store, filters: dict, now: datetime) -> pw.Select:
    """The store's customers matching an AUDIENCE or simple filters (tag, source, last visit)."""
    query = Customer.select().where(Customer.store == store.id)
    audience = filters.get("audience")
    if audience:
        problems = audience_service.validate(audience)
        if problems:
            raise ExportError("audience", problems[0]["message"])
        query = query.where(
            Customer.id.in_(audience_service.customer_query(store.id, audience, now))
        )
    if filters.get("tag"):
        tagged = (
            CustomerTag.select(CustomerTag.customer)
            .join(Tag)
            .where((Tag.store == store.id) & (Tag.name == filters["tag"]))
        )
        query = query.where(Customer.id.in_(tagged))
    if filters.get("source"):
        query = query.where(Customer.source == filters["source"])
    if filters.get("visited_since"):
        query = query.where(Customer.last_visit_at >= _day_start(store, filters["visited_since"]))
    if filters.get("not_visited_since"):
        cutoff = _day_start(store, filters["not_visited_since"])
        query = query.where((Customer.last_visit_at < cutoff) | Customer.last_visit_at.is_null())
    return query


def customer_rows(store: Store, filters: dict, now: datetime, size: int = CHUNK) -> Iterator[list]:
    """Customer rows with tags, attributes and a cards summary, a chunk of customers at a time."""
    return _customer_rows(customer_query(store, filters, now), size)


def _customer_rows(query: pw.Select, size: int) -> Iterator[list]:
    for chunk in _chunks(query, Customer.id, size):
        ids = [c.id for c in chunk]
        tags: dict[int, list[str]] = {}
        for customer_id, name in (
            CustomerTag.select(CustomerTag.customer, Tag.name)
            .join(Tag)
            .where(CustomerTag.customer.in_(ids))
            .order_by(Tag.name)
            .tuples()
        ):
            tags.setdefault(customer_id, []).append(name)
        attrs: dict[int, list[str]] = {}
        for attr in (
            CustomerAttribute.select()
            .where(CustomerAttribute.customer.in_(ids))
            .order_by(CustomerAttribute.key)
        ):
            attrs.setdefault(attr.customer_id, []).append(f"{attr.key}={attr.value}")
        cards: dict[int, list[str]] = {}
        for card in (
            CustomerCard.select(CustomerCard, CardProduct.sku)
            .join(CardProduct)
            .where(CustomerCard.customer.in_(ids))
            .order_by(CustomerCard.id)
        ):
            left = card.balance if card.balance is not None else card.remaining_uses
            cards.setdefault(card.customer_id, []).append(
                f"{card.product.sku} {card.status}" + (f" {left}" if left is not None else "")
            )
        for c in chunk:
            yield [
                c.id,
                c.external_id,
                c.name,
                c.phone,
                c.email,
                c.line_id,
                c.gender,
                c.birthday,
                c.source,
                c.level,
                c.joined_at,
                c.first_visit_at,
                c.last_visit_at,
                c.visit_count,
                c.total_spend,
                c.points,
                "; ".join(tags.get(c.id, [])),
                "; ".join(attrs.get(c.id, [])),
                "; ".join(cards.get(c.id, [])),
            ]


def _value(row, path: str):
    """The value at a dotted attribute path; "" past a missing (LEFT OUTER) relation."""
    for name in path.split("."):
        if row is None:
            return ""
        row = getattr(row, name)
    return row


def _rows(
    store: Store,
    query: pw.Select,
    filters: dict,
    equals: dict[str, pw.Field],
    created: pw.Field,
    spec: list[tuple[str, str]],
    size: int,
) -> Iterator[list]:
    """Rows of a joined query narrowed by equality filters and a date range, in id order."""
    for name, field in equals.items():
        if filters.get(name):
            query = query.where(field == filters[name])
    for cond in _range(store, created, filters):
        query = query.where(cond)
    paths = [path for _, path in spec]
    for chunk in _chunks(query, query.model.id, size):
        for row in chunk:
            yield [_value(row, path) for path in paths]


def followup_rows(store: Store, filters: dict, now: datetime, size: int = CHUNK) -> Iterator[list]:
    """Follow-ups with outcomes (filter: status, plan, assignee, created between)."""
    query = (
        FollowUp.select(FollowUp, Customer, Plan, Staff)
        .join(Customer, on=FollowUp.customer == Customer.id)
        .switch(FollowUp)
        .join(Plan, pw.JOIN.LEFT_OUTER, on=FollowUp.plan == Plan.id)
        .switch(FollowUp)
        .join(Staff, pw.JOIN.LEFT_OUTER, on=FollowUp.assignee == Staff.id)
        .where(FollowUp.store == store.id)
    )
    equals = {"status": FollowUp.status, "plan": FollowUp.plan, "assignee": FollowUp.assignee}
    return _rows(store, query, filters, equals, FollowUp.created_at, FOLLOWUP_FIELDS, size)


def contact_rows(store: Store, filters: dict, now: datetime, size: int = CHUNK) -> Iterator[list]:
    """Contact logs of the store's customers (filter: staff, outcome, between)."""
    query = (
        ContactLog.select(ContactLog, Customer, Staff)
        .join(Customer, on=ContactLog.customer == Customer.id)
        .switch(ContactLog)
        .join(Staff, pw.JOIN.LEFT_OUTER, on=ContactLog.staff == Staff.id)
        .where(Customer.store == store.id)
    )
    equals = {"assignee": ContactLog.staff, "outcome": ContactLog.outcome}
    return _rows(store, query, filters, equals, ContactLog.at, CONTACT_FIELDS, size)


def message_rows(store: Store, filters: dict, now: datetime, size: int = CHUNK) -> Iterator[list]:
    """Messages of the store (filter: status, channel, plan, created between)."""
    query = (
        Message.select(Message, Customer, Plan)
        .join(Customer, on=Message.customer == Customer.id)
        .switch(Message)
        .join(Plan, pw.JOIN.LEFT_OUTER, on=Message.plan == Plan.id)
        .where(Message.store == store.id)
    )
    equals = {"status": Message.status, "channel": Message.channel, "plan": Message.plan}
    return _rows(store, query, filters, equals, Message.created_at, MESSAGE_FIELDS, size)


def cell(value) -> str:
    """A CSV cell: numbers as they are, text formula-safe (csv_safe)."""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return str(value)
    return csv_safe(value)


EXPORTS = {
    "customers": (CUSTOMER_COLUMNS, customer_rows),
    "followups": (FOLLOWUP_COLUMNS, followup_rows),
    "contacts": (CONTACT_COLUMNS, contact_rows),
    "messages": (MESSAGE_COLUMNS, message_rows),
}


def csv_lines(kind: str, store: Store, filters: dict, now: datetime) -> Iterator[str]:
    """The export as CSV text pieces: a BOM and header, then a piece per chunk of rows."""
    columns, rows = EXPORTS[kind]
    rows = rows(store, filters, now)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    yield "\ufeff" + out.getvalue()
    out.seek(0)
    out.truncate()
    count = 0
    for row in rows:
        writer.writerow([cell(v) for v in row])
        count += 1
        if count % CHUNK == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    if out.tell():
        yield out.getvalue()
