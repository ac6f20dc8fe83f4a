"""AUDIENCE JSON → one peewee WHERE expression over Customer (set-based; SQLite and PostgreSQL)."""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

import peewee as pw
from flask import has_app_context
from flask_babel import gettext
from flask_babel import lazy_gettext as _l

from app.db import is_postgres
from app.models import (
    CardProduct,
    Consent,
    Customer,
    CustomerAttribute,
    CustomerCard,
    CustomerTag,
    Event,
    EventItem,
    Segment,
    Staff,
    Store,
    Tag,
    Visit,
)
from app.models.cards import CARD_KINDS
from app.models.customers import CHANNELS, GENDERS
from app.services import segments

CARD_STATUSES = ("active", "used_up", "expired", "cancelled")
MAX_DEPTH = 12
MAX_DAYS = 36600

TEXT_OPS = ("eq", "ne", "in", "not_in", "is_set", "is_not_set")
NUMBER_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "between")
DATE_OPS = (
    "eq",
    "gt",
    "gte",
    "lt",
    "lte",
    "between",
    "in_last_days",
    "not_in_last_days",
    "in_next_days",
    "this_month",
    "is_set",
    "is_not_set",
)
HAS_OPS = ("has_any", "has_all", "has_none")
ALL_OPS = (
    "eq",
    "ne",
    "in",
    "not_in",
    "gt",
    "gte",
    "lt",
    "lte",
    "between",
    "is_set",
    "is_not_set",
    "has_any",
    "has_all",
    "has_none",
    "in_last_days",
    "not_in_last_days",
    "in_next_days",
    "this_month",
)
NO_VALUE_OPS = ("is_set", "is_not_set", "this_month")
DAY_OPS = ("in_last_days", "not_in_last_days", "in_next_days")
LIST_OPS = ("in", "not_in", "has_any", "has_all", "has_none")
_MD = re.compile(r"^(\d{2})-(\d{2})$")


class AudienceError(ValueError):
    """An invalid audience; .errors lists {field, message} naming the path of each problem."""

    def __init__(self, errors: list[dict]):
        self.errors = errors
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))


def _t(message: str, **params) -> str:
    """Translate a message when an app is around (validation can run in scripts too)."""
    if has_app_context():
        return gettext(message, **params)
    return message % params if params else message


@dataclass(frozen=True)
class FieldSpec:
    """What a field is, which operators it takes and what its value looks like."""

    type: str  # text | number | integer | age | birthday | datetime | date | list | segment
    ops: tuple
    label: object
    value: object
    options: tuple = ()
    period: bool = False
    card: bool = False


FIELDS: dict[str, FieldSpec] = {
    "gender": FieldSpec(
        "text", TEXT_OPS, _l("Gender"), _l("female, male or other"), options=GENDERS
    ),
    "age": FieldSpec(
        "age", NUMBER_OPS + ("is_set", "is_not_set"), _l("Age"), _l("Whole years, from birthday")
    ),
    "birthday": FieldSpec(
        "birthday",
        ("eq", "in_next_days", "this_month", "is_set", "is_not_set"),
        _l("Birthday"),
        _l('"today" or "MM-DD"; in_next_days takes a number of days (0 = today)'),
    ),
    "level": FieldSpec("text", TEXT_OPS, _l("Member level"), _l("A level name")),
    "source": FieldSpec("text", TEXT_OPS, _l("Source channel"), _l("Where the customer came from")),
    "name": FieldSpec("text", ("eq", "ne", "in", "not_in"), _l("Name"), _l("A name")),
    "phone": FieldSpec("text", ("is_set", "is_not_set"), _l("Phone number"), _l("No value")),
    "email": FieldSpec("text", ("is_set", "is_not_set"), _l("Email address"), _l("No value")),
    "line_id": FieldSpec("text", ("is_set", "is_not_set"), _l("LINE ID"), _l("No value")),
    "tags": FieldSpec(
        "list", HAS_OPS + ("is_set", "is_not_set"), _l("Tags"), _l("A list of tag names")
    ),
    "assigned_staff": FieldSpec(
        "text", TEXT_OPS, _l("Assigned staff"), _l("Staff email address(es)")
    ),
    "store": FieldSpec("text", ("eq", "ne", "in", "not_in"), _l("Home store"), _l("Store key(s)")),
    "joined_at": FieldSpec("datetime", DATE_OPS, _l("Joined"), _l("YYYY-MM-DD, or days")),
    "first_visit_at": FieldSpec("datetime", DATE_OPS, _l("First visit"), _l("YYYY-MM-DD, or days")),
    "last_visit_at": FieldSpec("datetime", DATE_OPS, _l("Last visit"), _l("YYYY-MM-DD, or days")),
    "visit_count": FieldSpec(
        "integer", NUMBER_OPS, _l("Visit count"), _l("A number of visits"), period=True
    ),
    "total_spend": FieldSpec(
        "number", NUMBER_OPS, _l("Total spend"), _l("An amount of money"), period=True
    ),
    "points": FieldSpec("integer", NUMBER_OPS, _l("Points balance"), _l("A number of points")),
    "products_bought": FieldSpec(
        "list", HAS_OPS, _l("Products bought"), _l("A list of product SKUs"), period=True
    ),
    "cards.product": FieldSpec(
        "text",
        ("eq", "ne", "in", "not_in") + HAS_OPS,
        _l("Card product"),
        _l("Card product SKU(s)"),
        card=True,
    ),
    "cards.kind": FieldSpec(
        "text",
        ("eq", "ne", "in", "not_in"),
        _l("Card kind"),
        _l("stored_value, count or period"),
        options=CARD_KINDS,
        card=True,
    ),
    "cards.status": FieldSpec(
        "text",
        ("eq", "ne", "in", "not_in"),
        _l("Card status"),
        _l("active (the default), used_up, expired or cancelled"),
        options=CARD_STATUSES,
        card=True,
    ),
    "cards.balance": FieldSpec(
        "number",
        NUMBER_OPS + ("is_set", "is_not_set"),
        _l("Card balance"),
        _l("An amount of money"),
        card=True,
    ),
    "cards.remaining_uses": FieldSpec(
        "integer",
        NUMBER_OPS + ("is_set", "is_not_set"),
        _l("Card remaining uses"),
        _l("A number of uses"),
        card=True,
    ),
    "cards.expires_on": FieldSpec(
        "date", DATE_OPS, _l("Card expiry"), _l("YYYY-MM-DD, or days"), card=True
    ),
    "channel": FieldSpec(
        "list",
        ("eq",) + HAS_OPS,
        _l("Reachable channel"),
        _l("whatsapp, line, sms or email (consent given and address known)"),
        options=CHANNELS,
    ),
    "segment": FieldSpec(
        "segment", ("eq", "ne", "in", "not_in"), _l("Segment"), _l("Segment key(s)")
    ),
}
ATTRIBUTE_SPEC = FieldSpec(
    "attribute",
    TEXT_OPS + ("gt", "gte", "lt", "lte", "between"),
    _l("Custom attribute"),
    _l("Text; numbers compare as numbers"),
)
_COLUMNS = {
    "gender": Customer.gender,
    "level": Customer.level,
    "source": Customer.source,
    "name": Customer.name,
    "phone": Customer.phone,
    "email": Customer.email,
    "line_id": Customer.line_id,
    "joined_at": Customer.joined_at,
    "first_visit_at": Customer.first_visit_at,
    "last_visit_at": Customer.last_visit_at,
    "visit_count": Customer.visit_count,
    "total_spend": Customer.total_spend,
    "points": Customer.points,
    "cards.balance": CustomerCard.balance,
    "cards.remaining_uses": CustomerCard.remaining_uses,
    "cards.expires_on": CustomerCard.expires_on,
    "cards.status": CustomerCard.status,
}
_ADDRESS = {
    "whatsapp": Customer.phone,
    "sms": Customer.phone,
    "line": Customer.line_id,
    "email": Customer.email,
}


def field_spec(name: str) -> FieldSpec | None:
    """The spec of a field name (attributes.<key> included), or None when unknown."""
    if isinstance(name, str) and name.startswith("attributes."):
        key = name[len("attributes.") :]
        return ATTRIBUTE_SPEC if key and len(key) <= 60 else None
    return FIELDS.get(name)


def fields_catalogue() -> list[dict]:
    """Every field with its type, translated label, operators and value description."""
    out = []
    for name, spec in list(FIELDS.items()) + [("attributes.<key>", ATTRIBUTE_SPEC)]:
        entry = {
            "field": name,
            "type": spec.type,
            "label": str(spec.label),
            "ops": list(spec.ops),
            "value": str(spec.value),
            "period": spec.period,
        }
        if spec.options:
            entry["options"] = list(spec.options)
        if spec.card:
            entry["card"] = True
        out.append(entry)
    return out


# ---------------------------------------------------------------- validation


def _is_group(node) -> bool:
    return (
        isinstance(node, dict)
        and "field" not in node
        and bool({"all", "any", "except"} & set(node))
    )


def validate(audience: dict | None) -> list[dict]:
    """Every problem of an audience as {field, message}; [] when valid. Never raises."""
    errors: list[dict] = []
    try:
        if audience is None or audience == {}:
            return []
        _validate_group(audience, "audience", errors, 0)
    except Exception as exc:  # noqa: BLE001 - validate must never raise
        errors.append({"field": "audience", "message": _t("Invalid audience: %(e)s", e=str(exc))})
    return errors


def _err(errors: list, path: str, message: str, **params) -> None:
    errors.append({"field": path, "message": _t(message, **params)})


def _validate_group(node, path: str, errors: list, depth: int) -> None:
    if depth > MAX_DEPTH:
        _err(errors, path, "Audience is nested too deeply (at most %(n)s levels).", n=MAX_DEPTH)
        return
    if not isinstance(node, dict):
        _err(errors, path, 'An audience is an object with "all" or "any".')
        return
    unknown = set(node) - {"all", "any", "except"}
    for key in sorted(unknown):
        _err(errors, f"{path}.{key}", 'Unknown key; use "all", "any" or "except".')
    if "all" in node and "any" in node:
        _err(errors, path, 'Use either "all" or "any", not both (nest one inside the other).')
    for key in ("all", "any", "except"):
        if key not in node:
            continue
        items = node[key]
        if not isinstance(items, list):
            _err(errors, f"{path}.{key}", "Must be a list of conditions.")
            continue
        if key in ("any", "except") and not items:
            _err(errors, f"{path}.{key}", "Needs at least one condition.")
        for i, item in enumerate(items):
            _validate_item(item, f"{path}.{key}[{i}]", errors, depth + 1)


def _validate_item(item, path: str, errors: list, depth: int) -> None:
    if _is_group(item):
        _validate_group(item, path, errors, depth)
    elif isinstance(item, dict):
        _validate_cond(item, path, errors)
    else:
        _err(errors, path, "A condition is an object with field, op and value.")


def _validate_cond(cond: dict, path: str, errors: list) -> None:
    name = cond.get("field")
    spec = field_spec(name)
    if spec is None:
        _err(errors, f"{path}.field", "Unknown field %(f)r.", f=name)
        return
    for key in sorted(set(cond) - {"field", "op", "value", "days"}):
        _err(errors, f"{path}.{key}", "Unknown key in a condition.")
    op = cond.get("op")
    if op not in spec.ops:
        _err(
            errors,
            f"{path}.op",
            "Operator %(op)r does not apply to %(f)s; use one of: %(ops)s.",
            op=op,
            f=name,
            ops=", ".join(spec.ops),
        )
        return
    if "days" in cond:
        if not spec.period:
            _err(errors, f"{path}.days", "This field takes no period.")
        elif not _is_int(cond["days"]) or not 0 <= cond["days"] <= MAX_DAYS:
            _err(errors, f"{path}.days", "Must be a whole number of days (0 or more).")
    if op in NO_VALUE_OPS:
        return
    if "value" not in cond:
        _err(errors, f"{path}.value", "A value is required.")
        return
    message = _value_problem(name, spec, op, cond["value"])
    if message:
        errors.append({"field": f"{path}.value", "message": message})


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _to_decimal(value) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _to_date(value) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _scalar_problem(spec: FieldSpec, value) -> str | None:
    kind = spec.type
    if kind in ("integer", "age"):
        if not _is_int(value) or (kind == "age" and value < 0):
            return _t("Must be a whole number.")
    elif kind == "number":
        if _to_decimal(value) is None:
            return _t("Must be a number.")
    elif kind in ("date", "datetime"):
        if _to_date(value) is None:
            return _t("Must be a date (YYYY-MM-DD).")
    elif kind == "attribute":
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            return _t("Must be text or a number.")
    elif not isinstance(value, str) or not value.strip():
        return _t("Must be non-empty text.")
    elif spec.options and value not in spec.options:
        return _t("Must be one of: %(o)s.", o=", ".join(spec.options))
    return None


def _value_problem(name: str, spec: FieldSpec, op: str, value) -> str | None:
    if op in DAY_OPS:
        if not _is_int(value) or not 0 <= value <= MAX_DAYS:
            return _t("Must be a whole number of days (0 or more).")
        return None
    if spec.type == "birthday":
        if value == "today":
            return None
        match = _MD.match(value) if isinstance(value, str) else None
        if not match or not _valid_md(int(match[1]), int(match[2])):
            return _t('Must be "today" or a month and day as MM-DD.')
        return None
    if op in LIST_OPS or (name == "channel" and op == "eq"):
        values = [value] if op == "eq" else value
        if not isinstance(values, list) or not values:
            return _t("Must be a non-empty list.")
        item_spec = spec if spec.type != "list" else FieldSpec("text", (), "", "", spec.options)
        if spec.type == "segment":
            item_spec = FieldSpec("text", (), "", "")
        for item in values:
            problem = _scalar_problem(item_spec, item)
            if problem:
                return problem
        return None
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            return _t("Must be a list of two values [from, to].")
        problem = _scalar_problem(spec, value[0]) or _scalar_problem(spec, value[1])
        if problem:
            return problem
        low, high = (_sortable(spec, v) for v in value)
        if low is not None and high is not None and type(low) is type(high) and low > high:
            return _t("The first value must not be greater than the second.")
        return None
    if spec.type == "segment":
        return _scalar_problem(FieldSpec("text", (), "", ""), value)
    return _scalar_problem(spec, value)


def _sortable(spec: FieldSpec, value):
    if spec.type in ("date", "datetime"):
        return _to_date(value)
    if spec.type == "attribute" and isinstance(value, str):
        return value
    return _to_decimal(value)


def _valid_md(month: int, day: int) -> bool:
    try:
        date(2000, month, day)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- compilation

TRUE = pw.SQL("1 = 1")
FALSE = pw.SQL("1 = 0")


def _and(parts: list) -> pw.Expression:
    if not parts:
        return TRUE
    expr = parts[0]
    for part in parts[1:]:
        expr = expr & part
    return expr


def _or(parts: list) -> pw.Expression:
    if not parts:
        return FALSE
    expr = parts[0]
    for part in parts[1:]:
        expr = expr | part
    return expr


def _not(expr) -> pw.Expression:
    """NOT that treats an unknown (NULL) comparison as false, so negation never drops NULLs."""
    return ~pw.fn.COALESCE(expr, FALSE)


def _compare(column, op: str, value):
    """column OP value for the plain comparison operators."""
    if op == "eq":
        return column == value
    if op == "gt":
        return column > value
    if op == "gte":
        return column >= value
    if op == "lt":
        return column < value
    if op == "lte":
        return column <= value
    if op == "between":
        return (column >= value[0]) & (column <= value[1])
    raise AssertionError(op)


def _years_before(day: date, years: int) -> date:
    """The same calendar day `years` earlier; 29 February becomes 1 March."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return date(day.year - years, 3, 1)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


class _Compiler:
    """Compiles one audience for one store at one instant."""

    def __init__(
        self,
        store: Store,
        now: datetime,
        stack: tuple = (),
        origin: str = "",
        conjunctive: bool = True,
    ):
        if now.tzinfo is None:
            raise ValueError("now must be an aware datetime")
        self.store = store
        self.now = now
        self.tz = ZoneInfo(store.timezone or "UTC")
        self.today = now.astimezone(self.tz).date()
        self.stack = stack
        self.origin = origin
        self.conjunctive = conjunctive

    def start_of(self, day: date) -> datetime:
        """The UTC instant at which a local day begins in the store's timezone."""
        return datetime.combine(day, time(0), self.tz).astimezone(UTC)

    # subqueries ---------------------------------------------------------------

    def exists(self, query: pw.Select) -> pw.Expression:
        """The customer has a row in the per-customer subquery.

        Where the condition is only ever ANDed, `id IN (subquery)` lets SQLite and PostgreSQL
        drive the plan from a selective subquery. Under OR / NOT a correlated EXISTS is used:
        PostgreSQL would otherwise test a large IN list without a hash (quadratic).
        """
        if self.conjunctive:
            return Customer.id.in_(query)
        return pw.fn.EXISTS(query.where(query.model.customer == Customer.id))

    def store_scope(self, column) -> list:
        """The store filter for an `id IN (…)` list (a store-wide index range).

        Correlated subqueries leave it out: the customer already fixes the store, and the
        extra term could tempt SQLite into a store-wide index scan per customer.
        """
        return [column == self.store.id] if self.conjunctive else []

    def absent(self, query: pw.Select) -> pw.Expression:
        """The customer has no row in the subquery: NOT EXISTS (an anti-join; never NULL)."""
        return ~pw.fn.EXISTS(query.where(query.model.customer == Customer.id))

    def disjunctive(self, build):
        """Compile the parts of an OR or a NOT (correlated EXISTS inside)."""
        saved, self.conjunctive = self.conjunctive, False
        try:
            return build()
        finally:
            self.conjunctive = saved

    # groups -----------------------------------------------------------------

    def group(self, node: dict | None, path: str) -> pw.Expression:
        if not node:
            return TRUE
        if "any" in node:
            expr = self.disjunctive(
                lambda: _or([self.item(c, f"{path}.any[{i}]") for i, c in enumerate(node["any"])])
            )
        elif "all" in node:
            parts, card_conds = [], []
            for i, c in enumerate(node["all"]):
                if not _is_group(c) and self.is_card_level(c):
                    card_conds.append(c)
                else:
                    parts.append(self.item(c, f"{path}.all[{i}]"))
            if card_conds:
                parts.append(self.cards(card_conds))
            expr = _and(parts)
        else:
            expr = TRUE
        if node.get("except"):
            removed = self.disjunctive(
                lambda: _or(
                    [self.item(c, f"{path}.except[{i}]") for i, c in enumerate(node["except"])]
                )
            )
            expr = expr & _not(removed)
        return expr

    def item(self, node: dict, path: str) -> pw.Expression:
        if _is_group(node):
            return self.group(node, path)
        if self.is_card_level(node):
            return self.cards([node])
        return self.cond(node, path)

    @staticmethod
    def is_card_level(cond: dict) -> bool:
        """Card conditions that must hold on one and the same card."""
        spec = field_spec(cond.get("field"))
        return bool(spec and spec.card and cond.get("op") not in ("has_all", "has_none"))

    # conditions ---------------------------------------------------------------

    def cond(self, cond: dict, path: str) -> pw.Expression:
        name, op, value = cond["field"], cond["op"], cond.get("value")
        if name.startswith("attributes."):
            return self.attribute(name[len("attributes.") :], op, value)
        spec = FIELDS[name]
        if name == "age":
            return self.age(op, value)
        if name == "birthday":
            return self.birthday(op, value)
        if name == "tags":
            return self.tags(op, value)
        if name == "assigned_staff":
            ids = Staff.select(Staff.id).where(
                Staff.email.in_(value if isinstance(value, list) else [value])
            )
            return self.membership(Customer.assigned_staff, op, ids)
        if name == "store":
            ids = Store.select(Store.id).where(
                Store.key.in_(value if isinstance(value, list) else [value])
            )
            return self.membership(Customer.store, op, ids)
        if name == "products_bought":
            return self.products(op, value, cond.get("days"))
        if name == "cards.product":
            return self.card_products(op, value)
        if name == "channel":
            return self.channels(op, value)
        if name == "segment":
            return self.segments(op, value, path)
        if name in ("visit_count", "total_spend") and "days" in cond:
            return self.period_total(name, op, value, cond["days"])
        column = _COLUMNS[name]
        if spec.type == "text":
            return self.text(column, op, value)
        if spec.type in ("number", "integer"):
            return self.number(column, op, value, money=spec.type == "number")
        if spec.type in ("datetime", "date"):
            return self.dates(column, op, value, spec.type == "datetime")
        raise AssertionError(name)

    @staticmethod
    def text(column, op: str, value) -> pw.Expression:
        if op == "eq":
            return column == value
        if op == "ne":
            return column.is_null() | (column != value)
        if op == "in":
            return column.in_(value)
        if op == "not_in":
            return column.is_null() | column.not_in(value)
        if op == "is_set":
            return column.is_null(False) & (column != "")
        if op == "is_not_set":
            return column.is_null() | (column == "")
        raise AssertionError(op)

    @staticmethod
    def membership(column, op: str, ids) -> pw.Expression:
        if op in ("eq", "in"):
            return column.in_(ids)
        if op in ("ne", "not_in"):
            return column.is_null() | column.not_in(ids)
        if op == "is_set":
            return column.is_null(False)
        if op == "is_not_set":
            return column.is_null()
        raise AssertionError(op)

    @staticmethod
    def number(column, op: str, value, money: bool) -> pw.Expression:
        convert = _to_decimal if money else int
        if op == "is_set":
            return column.is_null(False)
        if op == "is_not_set":
            return column.is_null()
        if op == "ne":
            return column.is_null() | (column != convert(value))
        if op == "between":
            return _compare(column, op, [convert(value[0]), convert(value[1])])
        return _compare(column, op, convert(value))

    def dates(self, column, op: str, value, is_datetime: bool) -> pw.Expression:
        """Date operators on a UTC datetime column (local days → UTC) or a local date column."""

        def bound(day: date):
            return self.start_of(day) if is_datetime else day

        def day_range(first: date, last: date):
            return (column >= bound(first)) & (column < bound(last + timedelta(days=1)))

        today = self.today
        if op == "is_set":
            return column.is_null(False)
        if op == "is_not_set":
            return column.is_null()
        if op == "in_last_days":
            upper = (column <= self.now) if is_datetime else (column <= today)
            return (column >= bound(today - timedelta(days=value))) & upper
        if op == "not_in_last_days":
            return column.is_null() | (column < bound(today - timedelta(days=value)))
        if op == "in_next_days":
            return day_range(today, today + timedelta(days=value))
        if op == "this_month":
            first = today.replace(day=1)
            following = (first + timedelta(days=32)).replace(day=1)
            return day_range(first, following - timedelta(days=1))
        if op == "between":
            return day_range(_to_date(value[0]), _to_date(value[1]))
        day = _to_date(value)
        if op == "eq":
            return day_range(day, day)
        if op == "gt":
            return column >= bound(day + timedelta(days=1))
        if op == "gte":
            return column >= bound(day)
        if op == "lt":
            return column < bound(day)
        if op == "lte":
            return column < bound(day + timedelta(days=1))
        raise AssertionError(op)

    def age(self, op: str, value) -> pw.Expression:
        """Age in whole years as birthday ranges: age >= n ⇔ birthday < (tomorrow − n years)."""
        column = Customer.birthday
        tomorrow = self.today + timedelta(days=1)

        def at_least(years: int):
            return column < _years_before(tomorrow, years)

        def at_most(years: int):
            return column >= _years_before(tomorrow, years + 1)

        if op == "is_set":
            return column.is_null(False)
        if op == "is_not_set":
            return column.is_null()
        if op == "eq":
            return at_least(value) & at_most(value)
        if op == "ne":
            return column.is_null() | ~(at_least(value) & at_most(value))
        if op == "gt":
            return at_least(value + 1)
        if op == "gte":
            return at_least(value)
        if op == "lt":
            return FALSE if value <= 0 else at_most(value - 1)
        if op == "lte":
            return at_most(value)
        if op == "between":
            return at_least(value[0]) & at_most(value[1])
        raise AssertionError(op)

    def birthday(self, op: str, value) -> pw.Expression:
        """Next anniversary via birthday_md; 29 February counts on 28 February in other years."""
        column = Customer.birthday_md
        if op == "is_set":
            return Customer.birthday.is_null(False)
        if op == "is_not_set":
            return Customer.birthday.is_null()
        if op == "this_month":
            month = self.today.month
            return column.between(month * 100 + 1, month * 100 + 31)
        if op == "eq" and value != "today":
            month, day = (int(part) for part in value.split("-"))
            return column == month * 100 + day
        days = 0 if op == "eq" else value
        if days >= 365:
            return column.is_null(False)
        first, last = self.today, self.today + timedelta(days=days)

        def md(day: date) -> int:
            return day.month * 100 + day.day

        def upper(day: date) -> int:
            if day.month == 2 and day.day == 28 and not _is_leap(day.year):
                return 229
            return md(day)

        if first.year == last.year:
            return column.between(md(first), upper(last))
        return column.between(md(first), 1231) | column.between(101, upper(last))

    def tags(self, op: str, names) -> pw.Expression:
        def having(tag_names=None):
            query = (
                CustomerTag.select(CustomerTag.customer).join(Tag).where(Tag.store == self.store.id)
            )
            if tag_names is not None:
                query = query.where(Tag.name.in_(tag_names))
            return query

        if op == "has_any":
            return self.exists(having(names))
        if op == "has_all":
            return _and([self.exists(having([name])) for name in dict.fromkeys(names)])
        if op == "has_none":
            return self.absent(having(names))
        if op == "is_set":
            return self.exists(having())
        if op == "is_not_set":
            return self.absent(having())
        raise AssertionError(op)

    def products(self, op: str, skus, days) -> pw.Expression:
        def bought(sku_list):
            query = EventItem.select(EventItem.customer).where(EventItem.sku.in_(sku_list))
            if days is not None:
                query = query.join(Event).where(
                    Event.occurred_at >= self.start_of(self.today - timedelta(days=days)),
                    Event.occurred_at <= self.now,
                )
            return query

        if op == "has_any":
            return self.exists(bought(skus))
        if op == "has_all":
            return _and([self.exists(bought([sku])) for sku in dict.fromkeys(skus)])
        if op == "has_none":
            return self.absent(bought(skus))
        raise AssertionError(op)

    def period_total(self, name: str, op: str, value, days: int) -> pw.Expression:
        """Visits or spend within the last `days` local days, as a per-customer scalar subquery."""
        first = self.today - timedelta(days=days)
        if name == "visit_count":
            total = Visit.select(pw.fn.COUNT(Visit.id)).where(
                Visit.customer == Customer.id,
                Visit.day >= first,
                Visit.day <= self.today,
            )

            def convert(v):
                return int(v)

        else:
            # ROUND and a NUMERIC cast keep the comparison numeric on SQLite too (no affinity).
            total = Event.select(pw.fn.ROUND(pw.fn.COALESCE(pw.fn.SUM(Event.amount), 0), 2)).where(
                Event.customer == Customer.id,
                Event.occurred_at >= self.start_of(first),
                Event.occurred_at <= self.now,
            )

            def convert(v):
                return pw.Cast(pw.Value(str(_to_decimal(v))), "NUMERIC")

        if op == "between":
            return _compare(total, op, [convert(value[0]), convert(value[1])])
        if op == "ne":
            return total != convert(value)
        return _compare(total, op, convert(value))

    def cards(self, conds: list[dict]) -> pw.Expression:
        """One card satisfies every card condition of the group (status 'active' by default)."""
        predicates = self.store_scope(CustomerCard.store)
        if not any(c["field"] == "cards.status" for c in conds):
            predicates.append(CustomerCard.status == "active")
        for cond in conds:
            name, op, value = cond["field"], cond["op"], cond.get("value")
            if name in ("cards.product", "cards.kind"):
                values = value if isinstance(value, list) else [value]
                column = CardProduct.sku if name == "cards.product" else CardProduct.kind
                products = CardProduct.select(CardProduct.id).where(
                    CardProduct.store == self.store.id, column.in_(values)
                )
                inside = op in ("eq", "in", "has_any")
                predicates.append(
                    CustomerCard.product.in_(products)
                    if inside
                    else CustomerCard.product.not_in(products)
                )
            elif name == "cards.status":
                predicates.append(self.text(CustomerCard.status, op, value))
            elif name == "cards.expires_on":
                predicates.append(self.dates(CustomerCard.expires_on, op, value, False))
            else:
                money = name == "cards.balance"
                predicates.append(self.number(_COLUMNS[name], op, value, money=money))
        return self.exists(CustomerCard.select(CustomerCard.customer).where(*predicates))

    def card_products(self, op: str, skus) -> pw.Expression:
        """Customer-level has_all / has_none over active cards' product SKUs."""

        def holding(sku_list, scope):
            return (
                CustomerCard.select(CustomerCard.customer)
                .join(CardProduct)
                .where(
                    *scope,
                    CustomerCard.status == "active",
                    CardProduct.sku.in_(sku_list),
                )
            )

        if op == "has_all":
            scope = self.store_scope(CustomerCard.store)
            return _and([self.exists(holding([sku], scope)) for sku in dict.fromkeys(skus)])
        return self.absent(holding(skus, []))

    def reachable(self, channel: str) -> pw.Expression:
        """Consent granted, the address known and, for phone channels, the number not flagged."""
        address = _ADDRESS[channel]
        consented = Consent.select(Consent.customer).where(
            Consent.channel == channel,
            Consent.granted == True,  # noqa: E712
        )
        expr = address.is_null(False) & (address != "") & self.exists(consented)
        if address is Customer.phone:
            expr = expr & Customer.phone_flagged_at.is_null()
        return expr

    def channels(self, op: str, value) -> pw.Expression:
        channels = [value] if op == "eq" else list(dict.fromkeys(value))
        if op == "has_all" or len(channels) == 1 and op != "has_none":
            parts = [self.reachable(channel) for channel in channels]
        else:
            parts = self.disjunctive(lambda: [self.reachable(channel) for channel in channels])
        if op in ("eq", "has_any"):
            return _or(parts)
        if op == "has_all":
            return _and(parts)
        return ~_or(parts)

    def segments(self, op: str, value, path: str) -> pw.Expression:
        keys = list(dict.fromkeys(value if isinstance(value, list) else [value]))
        if len(keys) == 1 and op in ("eq", "in"):
            return self.segment(keys[0], path)
        expr = self.disjunctive(lambda: _or([self.segment(key, path) for key in keys]))
        return _not(expr) if op in ("ne", "not_in") else expr

    def segment(self, key: str, path: str) -> pw.Expression:
        """A segment's audience compiled now (never a snapshot); cycles are errors."""
        path = self.origin or path
        if key in self.stack:
            chain = " → ".join(self.stack + (key,))
            raise AudienceError(
                [{"field": path, "message": _t("Segment refers to itself: %(c)s.", c=chain)}]
            )
        row = Segment.get_or_none(Segment.store == self.store.id, Segment.key == key)
        if row is None or row.kind == "smart":
            if key not in segments.SMART_SEGMENTS:
                raise AudienceError(
                    [{"field": path, "message": _t("Unknown segment %(k)r.", k=key)}]
                )
            node = segments.smart_audience(self.store, key)
        else:
            node = row.audience or {}
            problems = validate(node)
            if problems:
                raise AudienceError(
                    [{"field": path, "message": _t("Segment %(k)r is invalid.", k=key)}]
                )
        inner = _Compiler(self.store, self.now, self.stack + (key,), path, self.conjunctive)
        return inner.group(node, f"segment:{key}")

    def attribute(self, key: str, op: str, value) -> pw.Expression:
        def having(predicate=None):
            query = CustomerAttribute.select(CustomerAttribute.customer).where(
                CustomerAttribute.key == key
            )
            return query.where(predicate) if predicate is not None else query

        column = CustomerAttribute.value
        if op == "is_set":
            return self.exists(having(column != ""))
        if op == "is_not_set":
            return self.absent(having(column != ""))
        if op in ("eq", "ne"):
            inner = having(column == _as_text(value))
            return self.exists(inner) if op == "eq" else self.absent(inner)
        if op in ("in", "not_in"):
            inner = having(column.in_([_as_text(v) for v in value]))
            return self.exists(inner) if op == "in" else self.absent(inner)
        values = value if op == "between" else [value]
        if all(_is_number(v) for v in values):
            numbers = [pw.Value(float(v)) for v in values]
            target = numbers if op == "between" else numbers[0]
            return self.exists(having(_compare(_numeric(column), op, target)))
        texts = [_as_text(v) for v in values]
        return self.exists(having(_compare(column, op, texts if op == "between" else texts[0])))


def _as_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numeric(column) -> pw.Node:
    """The attribute as a number when it looks like one (-?digits[.digits]), else NULL."""
    if is_postgres():
        return pw.Case(
            None,
            [(pw.Expression(column, "~", r"^-?[0-9]+(\.[0-9]+)?$"), pw.Cast(column, "NUMERIC"))],
            None,
        )
    body = pw.fn.SUBSTR(column, 2)
    looks_numeric = (
        (pw.Expression(column, "GLOB", "[0-9]*") | pw.Expression(column, "GLOB", "-[0-9]*"))
        & pw.Expression(body, "NOT GLOB", "*[^0-9.]*")
        & (pw.fn.LENGTH(column) - pw.fn.LENGTH(pw.fn.REPLACE(column, ".", "")) <= 1)
        & pw.Expression(column, "NOT GLOB", "*.")
    )
    return pw.Case(None, [(looks_numeric, pw.Cast(column, "REAL"))], None)


def _store(store_id: int) -> Store:
    return Store.get_by_id(store_id)


def where(
    store_id: int, audience: dict | None, now: datetime, *, conjunctive: bool = True
) -> pw.Expression:
    """A WHERE expression over Customer for the audience (None or {} = everyone).

    Pass conjunctive=False when the expression will itself be placed under OR / NOT.
    """
    errors = validate(audience)
    if errors:
        raise AudienceError(errors)
    compiler = _Compiler(_store(store_id), now, conjunctive=conjunctive)
    return compiler.group(audience, "audience")


def customer_query(store_id: int, audience: dict | None, now: datetime) -> pw.Select:
    """SELECT customer.id of the store's customers in the audience (usable as a subquery)."""
    return Customer.select(Customer.id).where(
        Customer.store == store_id, where(store_id, audience, now)
    )


def count(store_id: int, audience: dict | None, now: datetime) -> int:
    """How many of the store's customers are in the audience at `now`."""
    return customer_query(store_id, audience, now).count()
