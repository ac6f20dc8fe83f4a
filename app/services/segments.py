"""Segments: saved custom audiences and the five smart segments computed from visits and spend."""

import logging
from datetime import datetime

from flask_babel import lazy_gettext as _l

from app.models import Segment, Staff, Store

log = logging.getLogger(__name__)

SMART_SEGMENTS = {
    "new": {
        "name": _l("New customers"),
        "description": _l("Joined recently and visited at most once."),
    },
    "active": {
        "name": _l("Active customers"),
        "description": _l("Visited within the active window."),
    },
    "at_risk": {
        "name": _l("At risk"),
        "description": _l("Last visit between the active window and the dormant threshold."),
    },
    "dormant": {
        "name": _l("Dormant"),
        "description": _l(
            "No visit for longer than the dormant threshold, or never visited since joining."
        ),
    },
    "vip": {
        "name": _l("VIP"),
        "description": _l("Total spend or visit count at or above the VIP thresholds."),
    },
}

SMART_DEFAULTS = {
    "new_days": 30,
    "new_max_visits": 1,
    "active_days": 60,
    "dormant_days": 120,
    "never_visited_days": 30,
    "vip_spend": 3000,
    "vip_visits": 10,
}


class SegmentError(ValueError):
    """A segment that cannot be saved; .errors lists {field, message}."""

    def __init__(self, errors: list[dict]):
        self.errors = errors
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))


def thresholds(store: Store) -> dict:
    """The store's smart-segment thresholds over the defaults."""
    merged = dict(SMART_DEFAULTS)
    merged.update(
        {k: v for k, v in (store.setting("segments", {}) or {}).items() if k in SMART_DEFAULTS}
    )
    return merged


def smart_audience(store: Store, key: str) -> dict:
    """The AUDIENCE a smart segment stands for, with the store's thresholds."""
    t = thresholds(store)
    last_visit = "last_visit_at"
    if key == "new":
        return {
            "all": [
                {"field": "joined_at", "op": "in_last_days", "value": t["new_days"]},
                {"field": "visit_count", "op": "lte", "value": t["new_max_visits"]},
            ]
        }
    if key == "active":
        return {"all": [{"field": last_visit, "op": "in_last_days", "value": t["active_days"]}]}
    if key == "at_risk":
        return {
            "all": [
                {"field": last_visit, "op": "not_in_last_days", "value": t["active_days"]},
                {"field": last_visit, "op": "in_last_days", "value": t["dormant_days"]},
            ]
        }
    if key == "dormant":
        return {
            "any": [
                {
                    "all": [
                        {"field": last_visit, "op": "is_set"},
                        {"field": last_visit, "op": "not_in_last_days", "value": t["dormant_days"]},
                    ]
                },
                {
                    "all": [
                        {"field": last_visit, "op": "is_not_set"},
                        {
                            "field": "joined_at",
                            "op": "not_in_last_days",
                            "value": t["never_visited_days"],
                        },
                    ]
                },
            ]
        }
    if key == "vip":
        return {
            "any": [
                {"field": "total_spend", "op": "gte", "value": t["vip_spend"]},
                {"field": "visit_count", "op": "gte", "value": t["vip_visits"]},
            ]
        }
    raise KeyError(key)


def ensure_smart_segments(store: Store) -> int:
    """Create the Segment rows of the five smart segments when missing; returns how many landed."""
    rows = [
        {
            "store": store.id,
            "key": key,
            "name": str(info["name"]),
            "kind": "smart",
            "audience": None,
        }
        for key, info in SMART_SEGMENTS.items()
    ]
    return (
        Segment.insert_many(rows)
        .on_conflict(conflict_target=[Segment.store, Segment.key], action="IGNORE")
        .as_rowcount()
        .execute()
    )


def referenced_segments(audience) -> set[str]:
    """Every segment key an audience names, at any depth."""
    found: set[str] = set()
    if isinstance(audience, dict):
        if audience.get("field") == "segment":
            value = audience.get("value")
            found.update(
                v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)
            )
        for key in ("all", "any", "except"):
            items = audience.get(key)
            for item in items if isinstance(items, list) else []:
                found |= referenced_segments(item)
    return found


def _cycle(store: Store, key: str, audience: dict) -> list[str] | None:
    """The chain of segment keys leading back to `key`, if saving would create a cycle."""
    saved = {
        s.key: s.audience
        for s in Segment.select(Segment.key, Segment.audience).where(
            Segment.store == store.id, Segment.kind == "custom"
        )
    }
    saved[key] = audience

    def walk(current: str, chain: list[str]) -> list[str] | None:
        for ref in sorted(referenced_segments(saved.get(current))):
            if ref == key:
                return chain + [ref]
            if ref in chain or ref not in saved:
                continue
            found = walk(ref, chain + [ref])
            if found:
                return found
        return None

    return walk(key, [key])


def save_segment(
    store: Store, key: str, name: str, audience: dict, staff: Staff | None = None
) -> Segment:
    """Create or update a custom segment after validating its audience and refusing cycles."""
    from app.services import audience as audience_service

    errors = []
    key = (key or "").strip()
    if not key or len(key) > 60 or not all(ch.isalnum() or ch in "-_" for ch in key):
        errors.append({"field": "key", "message": str(_l("Use letters, digits, '-' or '_'."))})
    elif key in SMART_SEGMENTS:
        errors.append({"field": "key", "message": str(_l("This key belongs to a smart segment."))})
    if not (name or "").strip():
        errors.append({"field": "name", "message": str(_l("A name is required."))})
    errors += audience_service.validate(audience)
    if not errors:
        chain = _cycle(store, key, audience)
        if chain:
            errors.append(
                {
                    "field": "audience",
                    "message": str(
                        _l("Segment would refer to itself: %(c)s.", c=" → ".join(chain))
                    ),
                }
            )
        unknown = sorted(
            ref
            for ref in referenced_segments(audience)
            if ref != key
            and ref not in SMART_SEGMENTS
            and not Segment.select().where(Segment.store == store.id, Segment.key == ref).exists()
        )
        for ref in unknown:
            errors.append(
                {"field": "audience", "message": str(_l("Unknown segment %(k)r.", k=ref))}
            )
    if errors:
        raise SegmentError(errors)
    segment = Segment.get_or_none(Segment.store == store.id, Segment.key == key)
    if segment is None:
        segment = Segment.create(
            store=store,
            key=key,
            name=name.strip(),
            kind="custom",
            audience=audience,
            created_by=staff,
        )
    else:
        segment.name = name.strip()
        segment.audience = audience
        segment.save()
    log.info("segment %s saved for store %s", key, store.key)
    return segment


def segment_counts(store: Store, now: datetime) -> dict[str, int]:
    """How many customers each segment (smart and custom) holds at `now`."""
    from app.services import audience as audience_service

    keys = list(SMART_SEGMENTS)
    keys += [
        s.key
        for s in Segment.select(Segment.key)
        .where(Segment.store == store.id, Segment.kind == "custom")
        .order_by(Segment.key)
    ]
    return {
        key: audience_service.count(
            store.id, {"all": [{"field": "segment", "op": "eq", "value": key}]}, now
        )
        for key in keys
    }
