"""Tags: dimensions and colours, bulk edits on filtered lists, automatic rules, tag health."""

import json
import re
import unicodedata
from datetime import UTC, datetime, timedelta

import peewee as pw
from flask_babel import lazy_gettext as _l
from peewee import fn

from app.db import db
from app.models import Customer, CustomerTag, Staff, Store, Tag, TagRule
from app.services import audience as audience_service
from app.services import audit

COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
UNUSED_DAYS = 30
BROAD_SHARE = 0.4

# Seed 002's examples: "high value" after more than 3 purchases, "at risk" after 60 days
# without a visit (and off again once they come back), "new" removed 60 days after the first visit.
PRESETS = {
    "high_value": {
        "label": _l("More than 3 visits → add “high value”"),
        "tag": "high value",
        "action": "add",
        "audience": {"all": [{"field": "visit_count", "op": "gt", "value": 3}]},
    },
    "at_risk": {
        "label": _l("No visit for 60 days → add “at risk”"),
        "tag": "at risk",
        "action": "add",
        "audience": {"all": [{"field": "last_visit_at", "op": "not_in_last_days", "value": 60}]},
    },
    "at_risk_back": {
        "label": _l("Visited in the last 60 days → remove “at risk”"),
        "tag": "at risk",
        "action": "remove",
        "audience": {"all": [{"field": "last_visit_at", "op": "in_last_days", "value": 60}]},
    },
    "new_expires": {
        "label": _l("First visit more than 60 days ago → remove “new”"),
        "tag": "new",
        "action": "remove",
        "audience": {"all": [{"field": "first_visit_at", "op": "not_in_last_days", "value": 60}]},
    },
}


class TagError(ValueError):
    """Invalid tag input; .errors maps a form field to its message."""

    def __init__(self, errors: dict):
        super().__init__("invalid tag input")
        self.errors = errors


def save_tag(
    store: Store, form: dict, staff: Staff | None, now: datetime, tag: Tag | None = None
) -> Tag:
    """Create or update a tag (name, dimension, colour); audited."""
    name = " ".join(str(form.get("name", "")).split())
    dimension = " ".join(str(form.get("dimension", "")).split())
    colour = str(form.get("colour", "") or "#6b7280").strip()
    errors = {}
    if not name or len(name) > 60:
        errors["name"] = _l("Enter a name of 1 to 60 characters.")
    if len(dimension) > 60:
        errors["dimension"] = _l("Use at most 60 characters.")
    if not COLOUR.match(colour):
        errors["colour"] = _l("Choose a colour like #2563eb.")
    clash = Tag.select().where(Tag.store == store.id, Tag.name == name)
    if tag is not None:
        clash = clash.where(Tag.id != tag.id)
    if name and clash.exists():
        errors["name"] = _l("A tag with this name already exists.")
    if errors:
        raise TagError(errors)
    with db.atomic():
        if tag is None:
            tag = Tag.create(
                store=store.id, name=name, dimension=dimension, colour=colour, created_at=now
            )
            action = "tag.created"
        else:
            tag.name, tag.dimension, tag.colour = name, dimension, colour
            tag.save()
            action = "tag.updated"
        audit.record(
            staff,
            store,
            action,
            "tag",
            tag.id,
            {"name": name, "dimension": dimension, "colour": colour},
            now,
        )
    return tag


def delete_tag(tag: Tag, staff: Staff | None, now: datetime) -> None:
    """Delete a tag, its customers' links and its rules; audited."""
    with db.atomic():
        audit.record(staff, tag.store_id, "tag.deleted", "tag", tag.id, {"name": tag.name}, now)
        tag.delete_instance(recursive=True)


def _tag_rows(subquery, tag_id: int, source: str, now: datetime) -> pw.Select:
    """SELECT customer id, tag, source, added_at for INSERT … SELECT."""
    added = CustomerTag.added_at.db_value(now)
    return subquery.select(
        Customer.id, pw.Value(tag_id), pw.Value(source[:20]), pw.Value(added, converter=False)
    )


def apply_tag(
    store: Store, customers: pw.Select, tag: Tag, action: str, now: datetime, source: str
) -> int:
    """Add (INSERT … SELECT, duplicates ignored) or remove (DELETE … IN) a tag on a customer set."""
    ids = customers.select(Customer.id)
    if action == "add":
        query = CustomerTag.insert_from(
            _tag_rows(customers, tag.id, source, now),
            [CustomerTag.customer, CustomerTag.tag, CustomerTag.source, CustomerTag.added_at],
        ).on_conflict_ignore()
        cursor = db.execute(query)
        return max(cursor.rowcount or 0, 0)
    return (
        CustomerTag.delete()
        .where(CustomerTag.tag == tag.id, CustomerTag.customer.in_(ids))
        .execute()
    )


def simple_audience(tag_names: list[str], source: str) -> dict:
    """An audience from the simple list filters: has any of these tags, came from this source."""
    conds = []
    names = [n for n in tag_names if n]
    if names:
        conds.append({"field": "tags", "op": "has_any", "value": names})
    if source:
        conds.append({"field": "source", "op": "eq", "value": source})
    return {"all": conds}


def bulk_edit(
    store: Store,
    audience: dict | None,
    tag: Tag,
    action: str,
    staff: Staff | None,
    now: datetime,
) -> int:
    """Add or remove a tag on every customer of the store matching the audience; audited."""
    if action not in ("add", "remove"):
        raise TagError({"action": _l("Choose add or remove.")})
    try:
        customers = audience_service.customer_query(store.id, audience, now)
    except audience_service.AudienceError as exc:
        raise TagError({"audience": "; ".join(e["message"] for e in exc.errors)}) from exc
    with db.atomic():
        n = apply_tag(store, customers, tag, action, now, "bulk")
        audit.record(
            staff,
            store,
            f"tag.bulk_{action}",
            "tag",
            tag.id,
            {"audience": audience, "count": n},
            now,
        )
    return n


def save_rule(
    store: Store, form: dict, staff: Staff | None, now: datetime, rule: TagRule | None = None
) -> TagRule:
    """Create or update a tag rule from a preset or an audience; audited."""
    preset = PRESETS.get(str(form.get("preset", "")))
    errors = {}
    if preset:
        tag = Tag.get_or_none(Tag.store == store.id, Tag.name == preset["tag"]) or Tag.create(
            store=store.id, name=preset["tag"], created_at=now
        )
        action, aud = preset["action"], preset["audience"]
    else:
        tag = Tag.get_or_none(Tag.store == store.id, Tag.id == _int(form.get("tag")))
        if tag is None:
            errors["tag"] = _l("Choose a tag.")
        action = str(form.get("action", ""))
        if action not in ("add", "remove"):
            errors["action"] = _l("Choose add or remove.")
        aud = form.get("audience")
        if isinstance(aud, str):
            try:
                aud = json.loads(aud) if aud.strip() else None
            except ValueError:
                aud = None
                errors["audience"] = _l("The conditions are not valid JSON.")
        if not aud and "audience" not in errors:
            errors["audience"] = _l("Give at least one condition.")
        elif aud:
            problems = audience_service.validate(aud)
            if problems:
                errors["audience"] = "; ".join(p["message"] for p in problems)
    if errors:
        raise TagError(errors)
    with db.atomic():
        if rule is None:
            rule = TagRule.create(
                store=store.id, tag=tag.id, action=action, audience=aud, created_at=now
            )
            what = "tag_rule.created"
        else:
            rule.tag, rule.action, rule.audience = tag.id, action, aud
            rule.save()
            what = "tag_rule.updated"
        audit.record(
            staff,
            store,
            what,
            "tag_rule",
            rule.id,
            {"tag": tag.name, "action": action, "audience": aud},
            now,
        )
    return rule


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _run(rule: TagRule, now: datetime, customer_id: int | None = None) -> int:
    customers = audience_service.customer_query(rule.store_id, rule.audience, now)
    if customer_id is not None:
        customers = customers.where(Customer.id == customer_id)
    return apply_tag(rule.store, customers, rule.tag, rule.action, now, "rule")


def run_rules(store: Store, now: datetime) -> dict[int, int]:
    """Run every active rule of the store set-based; answer rows changed per rule id."""
    out = {}
    for rule in TagRule.select().where(TagRule.store == store.id, TagRule.active == True):  # noqa: E712
        with db.atomic():
            out[rule.id] = _run(rule, now)
            TagRule.update(last_run_at=now).where(TagRule.id == rule.id).execute()
    return out


def run_rules_for_customer(customer: Customer, now: datetime) -> int:
    """Run the store's active rules for one customer (after an event); answer rows changed."""
    changed = 0
    for rule in TagRule.select().where(
        TagRule.store == customer.store_id,
        TagRule.active == True,  # noqa: E712
    ):
        changed += _run(rule, now, customer.id)
    return changed


def normalised(name: str) -> str:
    """Case-folded, accents and punctuation and spaces removed (for near-duplicate checks)."""
    text = unicodedata.normalize("NFKD", name.casefold())
    return "".join(ch for ch in text if ch.isalnum())


def within_one_edit(a: str, b: str) -> bool:
    """True when a and b differ by at most one insertion, deletion or substitution."""
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = j = edits = 0
    while i < len(a) and j < len(b):
        if a[i] == b[j]:
            i += 1
            j += 1
            continue
        edits += 1
        if edits > 1:
            return False
        if len(a) == len(b):
            i += 1
        j += 1
    return edits + (len(b) - j) + (len(a) - i) <= 1


def health(store: Store, now: datetime) -> dict:
    """Tags nobody gained in 30 days (or with no customers), tags on >40%, near-duplicates."""
    since = now - timedelta(days=UNUSED_DAYS)
    total = Customer.select().where(Customer.store == store.id).count()
    rows = list(
        Tag.select(
            Tag.id,
            Tag.name,
            Tag.colour,
            Tag.dimension,
            fn.COUNT(CustomerTag.id).alias("n"),
            fn.MAX(CustomerTag.added_at).alias("last_added"),
        )
        .join(CustomerTag, pw.JOIN.LEFT_OUTER, on=(CustomerTag.tag == Tag.id))
        .where(Tag.store == store.id)
        .group_by(Tag.id, Tag.name, Tag.colour, Tag.dimension)
        .order_by(Tag.name)
        .dicts()
    )
    for row in rows:
        last = row["last_added"]
        if isinstance(last, str):
            last = datetime.fromisoformat(last)
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=UTC)
        row["last_added"] = last
        row["share"] = (row["n"] / total) if total else 0
    unused = [r for r in rows if r["n"] == 0 or r["last_added"] is None or r["last_added"] < since]
    broad = [r for r in rows if total and r["share"] > BROAD_SHARE]
    dupes = []
    for i, a in enumerate(rows):
        for b in rows[i + 1 :]:
            na, nb = normalised(a["name"]), normalised(b["name"])
            if na == nb or within_one_edit(na, nb):
                dupes.append((a, b))
    return {"tags": rows, "total": total, "unused": unused, "broad": broad, "duplicates": dupes}
