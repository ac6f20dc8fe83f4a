"""Due occurrences → follow-ups and messages, exactly once by unique keys; withdrawals; fatigue.

Every run finds its work in the database (plans' next_run_at, pending occurrences, deferred
decisions, enrollments' next_step_at), so a lost job or a crashed run is repaired by the next
tick. A decision row per plan × step × customer × dedupe key (UNIQUE) is inserted set-based
with ON CONFLICT DO NOTHING; follow-ups and messages are made only from decisions still
`pending`, inside the same transaction that moves them on, so a rerun adds nothing.
"""

import contextlib
import hashlib
import logging
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from itertools import product
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import peewee as pw

from app.db import JSONField, UTCDateTimeField, db, is_postgres, yield_to_writers
from app.models import (
    CardLedger,
    CardProduct,
    Consent,
    Customer,
    CustomerCard,
    Decision,
    Enrollment,
    Event,
    EventItem,
    FollowUp,
    FollowUpReason,
    Message,
    MessageStatusChange,
    Occurrence,
    Plan,
    PlanVersion,
    Staff,
    Store,
    Visit,
    WhyLog,
)
from app.services import assignment, loyalty, messaging, schedule, scripts, templates

log = logging.getLogger(__name__)

BATCH = 2000  # contacts per SQLite transaction (~50–100 ms of the write lock)
WRITER_PATIENCE = 2.0  # seconds a SQLite run waits between batches for staff writes to finish
BATCH_POSTGRES = 50000  # PostgreSQL writers do not queue behind each other: fewer, larger batches
# PostgreSQL: batches of one big occurrence run on this many connections at once.
PARALLEL = max(1, min(4, os.cpu_count() or 1))
PARALLEL_FROM = 5000  # candidates; a smaller occurrence is not worth more connections
OCCURRENCE_LOCK = 0x5256  # advisory-lock class of an occurrence run ("RV")
MAX_MISSED = 400
_ADDRESS = {"whatsapp": "phone", "sms": "phone", "line": "line_id", "email": "email"}
REPEAT_HORIZON_DAYS = 730


# ---------------------------------------------------------------- helpers


def _tx(joined: bool = False):
    """A write transaction; on SQLite taken IMMEDIATE so writers queue instead of failing.

    `joined`: the caller already holds the engine's transaction; no savepoint is taken (on
    PostgreSQL a foreign-key check per row inside a savepoint makes a new multixact each time,
    which turns a 50,000-row insert from seconds into minutes)."""
    if joined:
        return contextlib.nullcontext()
    if is_postgres():
        return _PostgresTx()
    return db.atomic(lock_type="IMMEDIATE")


class _PostgresTx:
    """A transaction that does not wait for its WAL flush: everything the engine writes is
    derived and unique-keyed, so a commit lost in a crash is simply made again by the next tick."""

    def __enter__(self):
        self.atomic = db.atomic()
        self.atomic.__enter__()
        db.execute_sql("SET LOCAL synchronous_commit TO OFF")
        return self

    def __exit__(self, *exc):
        return self.atomic.__exit__(*exc)


def _plus_days(expr, days: int):
    """A datetime expression `days` days later, on SQLite and PostgreSQL."""
    if is_postgres():
        return pw.NodeList((expr, pw.SQL(f"+ INTERVAL '{int(days)} days'")), glue=" ")
    return pw.fn.datetime(expr, f"+{int(days)} days")


def _when(value: datetime):
    """A datetime constant for INSERT … SELECT, stored as the UTC fields store it."""
    return pw.Value(value.astimezone(UTC).replace(tzinfo=None))


def _instant(value) -> datetime:
    """An aggregate's datetime (SQLite answers text) as an aware UTC datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@lru_cache(maxsize=64)
def _offset_changes(tz: str, until_year: int) -> tuple:
    """The zone's UTC offsets since 1970 as ((from instant or None, seconds), …), oldest first."""
    zone = ZoneInfo(tz)

    def offset(instant: datetime) -> int:
        return int(instant.astimezone(zone).utcoffset().total_seconds())

    instant = datetime(1970, 1, 1, tzinfo=UTC)
    end = datetime(until_year + 1, 1, 1, tzinfo=UTC)
    current = offset(instant)
    changes = [(None, current)]
    while instant < end:
        nxt = instant + timedelta(days=1)
        if offset(nxt) != current:
            lo, hi = instant, nxt
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                lo, hi = (mid, hi) if offset(mid) == current else (lo, mid)
            current = offset(hi)
            changes.append((hi.replace(microsecond=0), current))
        instant = nxt
    return tuple(changes)


def _local_day(expr, tz: str):
    """The store-local calendar day of a UTC datetime column, in SQL (SQLite: 'YYYY-MM-DD' text)."""
    if is_postgres():
        utc = pw.NodeList((expr, pw.SQL("AT TIME ZONE 'UTC'")), glue=" ", parens=True)
        local = pw.NodeList((utc, pw.SQL("AT TIME ZONE"), pw.Value(tz)), glue=" ", parens=True)
        return pw.Cast(local, "DATE")
    changes = _offset_changes(tz, datetime.now(UTC).year + 5)
    modifier = pw.Value(f"{changes[0][1]:+d} seconds")
    if len(changes) > 1:
        # Latest change first: most dates the engine formats are recent.
        modifier = pw.Case(
            None,
            [
                (
                    expr >= pw.Value(at.replace(tzinfo=None).isoformat(" "), converter=False),
                    f"{off:+d} seconds",
                )
                for at, off in reversed(changes[1:])
            ],
            modifier,
        )
    return pw.fn.date(expr, modifier)


def _local_day_text(expr, tz: str):
    """The store-local day as 'YYYY-MM-DD' text on both backends."""
    day = _local_day(expr, tz)
    return pw.fn.TO_CHAR(day, "YYYY-MM-DD") if is_postgres() else day


def _days_since(expr, tz: str, today: date):
    """Whole local days from the column's local day to `today` (NULL when the column is)."""
    day = _local_day(expr, tz)
    if is_postgres():
        return pw.NodeList((pw.Cast(pw.Value(today.isoformat()), "DATE"), pw.SQL("-"), day))
    return pw.Cast(
        pw.NodeList((pw.fn.julianday(today.isoformat()), pw.SQL("-"), pw.fn.julianday(day))),
        "INTEGER",
    )


def bulk_insert(model, rows: list[dict]) -> None:
    """INSERT many rows with ON CONFLICT DO NOTHING through the driver's executemany.

    peewee's insert_many builds one huge statement value by value, which costs seconds per
    100,000 rows; a prepared statement run by the driver is an order of magnitude faster.
    """
    if not rows:
        return
    names = list(rows[0])
    defaults = {}
    for field in model._meta.sorted_fields:
        if (
            field.name not in names
            and field.default is not None
            and not isinstance(field, pw.AutoField)
        ):
            defaults[field.name] = field.default() if callable(field.default) else field.default
    if defaults:
        rows = [{**defaults, **row} for row in rows]
        names += list(defaults)
    fields = [model._meta.fields[name] for name in names]
    columns = ", ".join(f'"{f.column_name}"' for f in fields)
    mark = "%s" if is_postgres() else "?"
    sql = (
        f'INSERT INTO "{model._meta.table_name}" ({columns}) '
        f"VALUES ({', '.join([mark] * len(fields))}) ON CONFLICT DO NOTHING"
    )
    # Only fields that change a value on the way in need their converter.
    convert = [
        (i, f.db_value)
        for i, f in enumerate(fields)
        if isinstance(f, (UTCDateTimeField, JSONField, pw.DecimalField))
    ]
    values = []
    for row in rows:
        value = [row[name] for name in names]
        for i, conv in convert:
            value[i] = conv(value[i])
        values.append(value)
    cursor = db.cursor()
    cursor.executemany(sql, values)


def _text(expr):
    return pw.Cast(expr, "TEXT")


def _concat(*parts):
    nodes = []
    for i, part in enumerate(parts):
        if i:
            nodes.append(pw.SQL("||"))
        nodes.append(pw.Value(part) if isinstance(part, str) else part)
    return pw.NodeList(nodes, glue=" ", parens=True)


def _hash_pct(customer_id, plan_id: int, salt: int = 0):
    """A stable pseudo-random number 0..9999 per (plan, customer), in portable integer maths."""
    return assignment.mod(customer_id * 2654435761 + (plan_id * 40503 + salt * 7919), 10000)


def store_settings(store: Store) -> dict:
    """The store's engine settings with their defaults."""
    from app.services.stores import DEFAULT_SETTINGS

    merged = dict(DEFAULT_SETTINGS)
    merged.update(store.settings or {})
    return merged


def config(plan: Plan, version: int | None = None) -> SimpleNamespace:
    """The plan as it was at `version` (an occurrence keeps the version it was created with)."""
    fields = {
        name: getattr(plan, name)
        for name in (
            "id",
            "store_id",
            "name",
            "template",
            "type",
            "params",
            "schedule",
            "trigger",
            "audience",
            "action",
            "steps",
            "backfill",
            "holdout_percent",
            "priority",
            "window_days",
            "activated_at",
            "version",
        )
    }
    if version and version != plan.version:
        snap = (
            PlanVersion.select(PlanVersion.snapshot)
            .where((PlanVersion.plan == plan.id) & (PlanVersion.version == version))
            .scalar()
        )
        if snap:
            for key in fields:
                if key in snap and key not in ("id", "store_id", "activated_at"):
                    fields[key] = snap[key]
    fields["params"] = fields["params"] or {}
    fields["action"] = fields["action"] or {}
    fields["holdout_percent"] = float(fields["holdout_percent"] or 0)
    return SimpleNamespace(**fields)


def _audience_where(store_id: int, audience: dict | None, now: datetime, conjunctive: bool = True):
    """The plan's audience as a WHERE expression over Customer (everyone when empty)."""
    if not audience:
        return pw.SQL("1 = 1")
    from app.services import audience as audience_service

    return audience_service.where(store_id, audience, now, conjunctive=conjunctive)


def _template(cfg) -> templates.Template | None:
    return templates.TEMPLATES.get(cfg.template or "")


def withdraw_on(cfg) -> tuple:
    """Event types that make this plan's pending contact pointless."""
    if "withdraw_on" in cfg.action:
        return tuple(cfg.action["withdraw_on"] or ())
    tpl = _template(cfg)
    return tpl.withdraw_on if tpl else templates.RETURN_EVENTS


def idempotency_key(plan_id: int, step: int, customer_id: int, dedupe: str) -> str:
    """The outbox key: never the same message twice."""
    raw = f"{plan_id}:{step}:{customer_id}:{dedupe}"
    return hashlib.sha256(raw.encode()).hexdigest()


# ---------------------------------------------------------------- candidates


def _firing_day(occ: Occurrence, tz: str) -> date:
    detail = occ.detail or {}
    if detail.get("day"):
        return date.fromisoformat(detail["day"])
    return schedule.local_date(occ.scheduled_for, tz)


def candidates(cfg, store: Store, occ: Occurrence, now: datetime):
    """SELECT (customer id, dedupe key) of everyone this occurrence is for, set-based."""
    if occ.step > 0:
        return _step_candidates(cfg, store, occ, now)
    tz = store.timezone
    day = _firing_day(occ, tz)
    mode = (occ.detail or {}).get("mode", "normal")
    key = cfg.template or ""
    params = cfg.params
    base = (Customer.store == store.id) & _audience_where(store.id, cfg.audience, now)
    if key == "birthday":
        target = day + timedelta(days=int(params.get("days_before", 0)))
        return Customer.select(Customer.id, pw.Value(f"bday:{target.year}")).where(
            base & Customer.birthday_md.in_(schedule.birthday_mds_on(target))
        )
    if key == "card_expiry":
        until = day + timedelta(days=int(params.get("days_before", 30)))
        dedupe = _concat("card:", _text(CustomerCard.id), ":", _text(CustomerCard.expires_on))
        return (
            Customer.select(Customer.id, dedupe)
            .join(CustomerCard, on=(CustomerCard.customer == Customer.id))
            .where(
                base
                & (CustomerCard.status == "active")
                & (CustomerCard.expires_on >= day)
                & (CustomerCard.expires_on <= until)
            )
        )
    if key in ("count_card_low", "balance_low"):
        if key == "count_card_low":
            limit = int(params.get("remaining_uses_at_most", 2))
            column, after, kind = CustomerCard.remaining_uses, CardLedger.uses_after, "count"
            state = (column <= limit) & (column > 0)
        else:
            limit = params.get("balance_at_most", 500)
            column, after, kind = CustomerCard.balance, CardLedger.balance_after, "stored_value"
            state = column <= limit
        # The last time the card was above the threshold: a new state only after it went back up.
        above = CardLedger.select(pw.fn.MAX(CardLedger.id)).where(
            (CardLedger.card == CustomerCard.id) & (after > limit)
        )
        dedupe = _concat("card:", _text(CustomerCard.id), ":low:", _text(pw.fn.COALESCE(above, 0)))
        return (
            Customer.select(Customer.id, dedupe)
            .join(CustomerCard, on=(CustomerCard.customer == Customer.id))
            .join(CardProduct, on=(CardProduct.id == CustomerCard.product))
            .where(base & (CustomerCard.status == "active") & (CardProduct.kind == kind) & state)
        )
    if key == "service_interval":
        days = int(params.get("days_after_last_visit", 173))
        start, _ = schedule.day_bounds(day - timedelta(days=days + int(cfg.window_days or 30)), tz)
        _, end = schedule.day_bounds(day - timedelta(days=days), tz)
        # The store-local day of the visit: one reminder per last visit, whatever the offset.
        dedupe = _concat("visit:", _local_day_text(Customer.last_visit_at, tz))
        return Customer.select(Customer.id, dedupe).where(
            base & (Customer.last_visit_at >= start) & (Customer.last_visit_at < end)
        )
    if cfg.type == "behaviour" and cfg.trigger:
        return _event_candidates(cfg, store, occ, day, mode, base)
    return Customer.select(Customer.id, pw.Value(occ.key)).where(base)


def _event_candidates(cfg, store: Store, occ: Occurrence, day: date, mode: str, base):
    """Customers whose triggering event's delay ends on `day` (set-based over the events table)."""
    tz = store.timezone
    trigger = cfg.trigger
    types = trigger.get("event") or []
    types = [types] if isinstance(types, str) else list(types)
    delay = int(trigger.get("delay_days", 0))
    every = int(trigger.get("every_days") or 0)
    where = base & (Event.store == store.id) & Event.type.in_(types)
    # History imported with "do not trigger plans" never starts a behaviour plan.
    where &= Event.triggers_plans == True  # noqa: E712
    if mode == "backfill":
        if trigger.get("first_visit_only"):
            # A new customer who has not been back still qualifies: look back the whole window.
            earliest = day - timedelta(days=delay + int(cfg.window_days or 30))
        else:
            earliest = _earliest_backfill_day(cfg, store, occ.scheduled_for, delay)
        window_start, _ = schedule.day_bounds(earliest, tz)
        first_day = date.fromisoformat(occ.detail["first_run_day"])
        window_end, _ = schedule.day_bounds(first_day - timedelta(days=delay), tz)
        where &= (Event.occurred_at >= window_start) & (Event.occurred_at < window_end)
        repeat = None
    elif every:
        # Fires `delay` days after the event, then every `every` days (repeat k = 1, 2, …),
        # while the audience holds and no newer such event restarted the count.
        ranges = []
        for k in range(1, (REPEAT_HORIZON_DAYS - delay) // every + 2):
            lo, hi = schedule.day_bounds(day - timedelta(days=delay + every * (k - 1)), tz)
            ranges.append(((Event.occurred_at >= lo) & (Event.occurred_at < hi), k))
        where &= _any(ranges)
        repeat = pw.Case(None, ranges)
    else:
        lo, hi = schedule.day_bounds(day - timedelta(days=delay), tz)
        where &= (Event.occurred_at >= lo) & (Event.occurred_at < hi)
        repeat = None
    if not cfg.backfill and cfg.activated_at:
        where &= Event.occurred_at >= cfg.activated_at
    if trigger.get("products"):
        where &= pw.fn.EXISTS(
            EventItem.select(EventItem.id).where(
                (EventItem.event == Event.id) & EventItem.sku.in_(list(trigger["products"]))
            )
        )
    query = Customer.select(Customer.id, pw.SQL("NULL")).join(
        Event, on=(Event.customer == Customer.id)
    )
    if trigger.get("first_visit_only"):
        # A new customer: this event's day was the first visit, and they have not been back.
        lo, hi = schedule.day_bounds(day - timedelta(days=delay), tz)
        if mode == "backfill":
            where &= Customer.first_visit_at <= Event.occurred_at
        else:
            where &= (Customer.first_visit_at >= lo) & (Customer.first_visit_at < hi)
        where &= Customer.visit_count <= 1
        return query.select(Customer.id, pw.Value("first")).where(where).distinct()
    if "card_used" in types and (every or cfg.template == "card_use_reminder"):
        Newer = Event.alias("newer")
        newer = Newer.select(Newer.id).where(
            (Newer.card == Event.card)
            & (Newer.type == "card_used")
            & (Newer.occurred_at > Event.occurred_at)
        )
        query = query.join(CustomerCard, on=(CustomerCard.id == Event.card)).join(
            CardProduct, on=(CardProduct.id == CustomerCard.product)
        )
        where &= (
            (CardProduct.kind == "count")
            & (CustomerCard.status == "active")
            & (CustomerCard.remaining_uses > 0)
            & ~pw.fn.EXISTS(newer)
        )
        parts = ["card:", _text(Event.card), ":use:", _text(Event.id)]
        if repeat is not None:
            parts += [":", _text(repeat)]
        return query.select(Customer.id, _concat(*parts)).where(where)
    if repeat is None:
        return query.select(Customer.id, _concat("ev:", _text(Event.id))).where(where)
    Newer = Event.alias("newer")
    newer = Newer.select(Newer.id).where(
        (Newer.customer == Event.customer)
        & Newer.type.in_(types)
        & (Newer.occurred_at > Event.occurred_at)
        & (Newer.triggers_plans == True)  # noqa: E712
    )
    if trigger.get("products"):
        newer = newer.where(
            pw.fn.EXISTS(
                EventItem.select(EventItem.id).where(
                    (EventItem.event == Newer.id) & EventItem.sku.in_(list(trigger["products"]))
                )
            )
        )
    # The first firing keeps the plain event key; each repeat has its own.
    key = _concat(
        "ev:", _text(Event.id), pw.Case(None, [(repeat > 1, _concat(":", _text(repeat)))], "")
    )
    return query.select(Customer.id, key).where(where & ~pw.fn.EXISTS(newer))


def _earliest_backfill_day(cfg, store: Store, switched_on: datetime, delay: int) -> date:
    """The first event day whose firing moment is still ahead or within the store's grace
    period when the plan is switched on: older events would only flood the outbox late."""
    tz = store.timezone
    at = (cfg.trigger or {}).get("at") or "09:00"
    since = switched_on - timedelta(hours=float(store_settings(store)["grace_hours"]))
    firing_day = schedule.local_date(since, tz)
    if schedule.at_local(firing_day, at, tz) < since:
        firing_day += timedelta(days=1)
    return firing_day - timedelta(days=delay)


def _any(ranges):
    expr = None
    for cond, _ in ranges:
        expr = cond if expr is None else (expr | cond)
    return expr


def _step_candidates(cfg, store: Store, occ: Occurrence, now: datetime):
    """Enrolled customers whose next step is due with this occurrence."""
    return (
        Customer.select(Customer.id, Enrollment.key)
        .join(Enrollment, on=(Enrollment.customer == Customer.id))
        .where(
            (Enrollment.plan == cfg.id)
            & (Enrollment.status == "active")
            & (Enrollment.step == occ.step - 1)
            & (Enrollment.next_step_at <= occ.scheduled_for)
            & _audience_where(store.id, cfg.audience, now)
        )
    )


# ---------------------------------------------------------------- actions and branches


def step_action(cfg, step: int) -> dict:
    """The action of a step (step 0 is the plan's own action)."""
    action = dict(cfg.action)
    if step and cfg.steps and step < len(cfg.steps):
        action.update(cfg.steps[step].get("action") or {})
        if cfg.steps[step].get("script"):
            action["script"] = cfg.steps[step]["script"]
            action.pop("scripts", None)
    return action


def _branches(cfg, step: int) -> list:
    if cfg.steps and step < len(cfg.steps):
        return cfg.steps[step].get("branches") or []
    return cfg.action.get("branches") or []


def _variants(action: dict) -> list:
    return [s for s in (action.get("scripts") or []) if s.get("text")]


def _pick_script(script, locale: str, store_locale: str) -> str:
    if isinstance(script, dict):
        for key in (locale, store_locale, (locale or "").split("_")[0], "en"):
            if key and script.get(key):
                return script[key]
        return next(iter(script.values()), "")
    return script or ""


def _script_for(cfg, step: int, action: dict, branch, variant: str, tpl):
    if branch is not None:
        branches = _branches(cfg, step)
        if branch < len(branches) and branches[branch].get("script"):
            return branches[branch]["script"]
    if variant:
        for item in _variants(action):
            if item.get("variant") == variant:
                return item["text"]
    if action.get("script"):
        return action["script"]
    if tpl is not None:
        if step and tpl.step_scripts:
            return tpl.step_scripts[min(step, len(tpl.step_scripts)) - 1]
        return tpl.scripts
    return ""


# ---------------------------------------------------------------- the decision pipeline


def _insert_decisions(
    cfg, store, occ: Occurrence, query, now: datetime, outcome: str = "pending"
) -> list[int]:
    """INSERT … SELECT the occurrence's decisions; existing ones are left alone. → new ids."""
    action = step_action(cfg, occ.step)
    variants = _variants(action)
    # Decorate the candidate SELECT with the decision's constant and computed columns.
    customer_col = Customer.id
    variant = (
        pw.Case(None, [(_hash_pct(customer_col, cfg.id, 1) < 5000, "A")], "B")
        if len(variants) >= 2
        else pw.Value("")
    )
    branches = _branches(cfg, occ.step)
    branch = (
        pw.Case(
            None,
            [
                (_audience_where(store.id, b.get("audience"), now, conjunctive=False), i)
                for i, b in enumerate(branches)
            ],
            None,
        )
        if branches
        else pw.Cast(pw.SQL("NULL"), "INTEGER")
    )
    selected = list(query._returning)
    query._returning = (
        pw.Value(cfg.id),
        pw.Value(occ.id),
        selected[0],
        pw.Value(occ.step),
        selected[1],
        pw.Value(outcome),
        variant,
        branch,
        pw.Value(""),
        _when(now),
        _when(now),
    )
    fields = [
        Decision.plan,
        Decision.occurrence,
        Decision.customer,
        Decision.step,
        Decision.dedupe_key,
        Decision.outcome,
        Decision.variant,
        Decision.branch,
        Decision.reason,
        Decision.created_at,
        Decision.updated_at,
    ]
    sql, params = Decision.insert_from(query, fields).on_conflict_ignore().sql()
    if " RETURNING " not in sql:  # PostgreSQL's INSERT already returns the ids
        sql += f" RETURNING {_col(Decision.id)}"
    return [did for (did,) in db.execute_sql(sql, params)]


def _why(where, kind: str, detail, now: datetime) -> None:
    """One why-log row per decision matching `where`, set-based."""
    detail = pw.Value(detail) if isinstance(detail, str) else detail
    query = Decision.select(
        Decision.customer, Decision.plan, Decision.occurrence, pw.Value(kind), detail, _when(now)
    ).where(where)
    WhyLog.insert_from(
        query,
        [WhyLog.customer, WhyLog.plan, WhyLog.occurrence, WhyLog.kind, WhyLog.detail, WhyLog.at],
    ).as_rowcount().execute()


def _mark(where, outcome: str, kind: str, detail: str, now: datetime, **extra) -> int:
    """Why-log then move the matching pending decisions to `outcome`."""
    _why(where, kind, detail, now)
    values = {"outcome": outcome, "reason": detail[:300], "updated_at": now}
    values.update(extra)
    return Decision.update(**values).where(where).execute()


def _enabled_channels(cfg, store: Store) -> list[str]:
    """The store's switched-on channels, read once per occurrence (kept on its config)."""
    if getattr(cfg, "enabled_channels", None) is None:
        cfg.enabled_channels = messaging.enabled_channels(store.id)
    return cfg.enabled_channels


def _message_channels(cfg, store: Store, action: dict) -> tuple[list[str], str]:
    """The channels this occurrence's messages may go out on, in order — only those the store
    has set up and switched on (read once per occurrence) — or none and the reason why."""
    enabled = _enabled_channels(cfg, store)
    named = action.get("channel")
    usable = messaging.sending_order(store, named, enabled)
    return usable, ("" if usable else messaging.no_channel_reason(named, enabled))


def _reachable_on(channel: str):
    """A Customer-row condition: the customer agreed to the channel and has its address."""
    granted = Consent.select(Consent.id).where(
        (Consent.customer == Customer.id) & (Consent.granted == True)  # noqa: E712
    )
    if channel not in _ADDRESS:
        # The webhook and the demo log reach a customer through any channel they agreed to;
        # their adapters always have an address.
        return pw.fn.EXISTS(granted)
    address = getattr(Customer, _ADDRESS[channel])
    granted = granted.where(Consent.channel == channel)
    return address.is_null(False) & (address != "") & pw.fn.EXISTS(granted)


def _channel_expr(channels: list[str]):
    """The first of `channels` the customer can be reached on, else NULL."""
    return pw.Case(None, [(_reachable_on(channel), channel) for channel in channels], None)


def _skip_reachable_elsewhere(cfg, store: Store, action: dict, unreachable, now) -> int:
    """Skip, naming the channel, the customers of a plan on the store's best channel who can
    be reached only on a channel the store has not set up."""
    if action.get("channel") not in (None, "", "auto"):
        return 0  # the plan chose its channel; another one would not be used anyway
    order = [*(store.setting("channel_order") or messaging.DEFAULT_ORDER), *_ADDRESS]
    enabled = _enabled_channels(cfg, store)
    elsewhere = list(dict.fromkeys(c for c in order if c in _ADDRESS and c not in enabled))
    if not elsewhere:
        return 0
    other = _channel_expr(elsewhere)
    where = unreachable & pw.fn.EXISTS(
        Customer.select(Customer.id).where(
            (Customer.id == Decision.customer) & other.is_null(False)
        )
    )
    detail = Customer.select(
        _concat("reachable only on a channel this store has not set up (", other, ")")
    ).where(Customer.id == Decision.customer)
    _why(where, "skipped", detail, now)
    return Decision.update(outcome="skipped", reason=detail, updated_at=now).where(where).execute()


def _pending(occ: Occurrence, lo=None, hi=None):
    pending = (Decision.occurrence == occ.id) & (Decision.outcome == "pending")
    if lo is not None or hi is not None:
        pending &= _in_range(Decision.customer, lo, hi)
    return pending


def process_pending(
    cfg,
    store: Store,
    occ: Occurrence,
    now: datetime,
    lo=None,
    hi=None,
    screened=None,
    joined: bool = False,
) -> Counter:
    """Turn the occurrence's pending decisions into follow-ups, messages or why-logged skips."""
    pending = _pending(occ, lo, hi)
    if screened is None:
        with _tx():
            _lock_occurrence(occ.id)
            counts = _screen(cfg, store, occ, pending, now)
    else:
        counts = screened
    if (occ.detail or {}).get("mode") == "baseline":
        return counts
    # Scripts are rendered outside the write transaction, so staff writes never queue behind it.
    action = step_action(cfg, occ.step)
    if action.get("kind", "followup") == "message":
        counts["messages"] += _create_messages(cfg, store, occ, action, pending, now)
    else:
        counts["followups"] += _create_followups(cfg, store, occ, action, pending, now, joined)
    return counts


def _screen(cfg, store: Store, occ: Occurrence, pending, now: datetime) -> Counter:
    """Why-log and settle the pending decisions that get no contact: held out, no consent,
    over the contact budget (deferred), or already qualified when switched on."""
    counts: Counter = Counter()
    settings = store_settings(store)
    detail = occ.detail or {}
    if detail.get("mode") == "baseline":
        counts["skipped"] += _mark(
            pending,
            "skipped",
            "skipped",
            "already qualified when the plan was switched on (no back-fill)",
            now,
        )
        return counts
    if cfg.holdout_percent > 0:
        held = pending & (
            _hash_pct(Decision.customer, cfg.id) < int(round(cfg.holdout_percent * 100))
        )
        counts["held_out"] += _mark(
            held, "held_out", "held_out", "held out to measure the plan", now
        )
    action = step_action(cfg, occ.step)
    kind = action.get("kind", "followup")
    days = int(settings["fatigue_days"])
    since = now - timedelta(days=days)
    if kind == "message":
        channels, no_channel = _message_channels(cfg, store, action)
        if not channels:
            counts["skipped"] += _mark(pending, "skipped", "skipped", no_channel, now)
            return counts
        channel = _channel_expr(channels)
        reachable = Customer.select(Customer.id).where(
            (Customer.id == Decision.customer) & channel.is_null(False)
        )
        consents = [c for c in channels if c in _ADDRESS]
        opted = Consent.select(Consent.id).where(
            (Consent.customer == Decision.customer)
            & Consent.channel.in_(consents if len(consents) == len(channels) else list(_ADDRESS))
            & (Consent.granted == False)  # noqa: E712
        )
        unreachable = pending & ~pw.fn.EXISTS(reachable)
        counts["skipped"] += _mark(
            unreachable & pw.fn.EXISTS(opted), "skipped", "skipped", "opted out", now
        )
        counts["skipped"] += _skip_reachable_elsewhere(cfg, store, action, unreachable, now)
        counts["skipped"] += _mark(
            unreachable,
            "skipped",
            "skipped",
            "no consent or no address for " + "/".join(channels),
            now,
        )
        recent = Message.select(Message.id).where(
            (Message.customer == Decision.customer)
            & (Message.created_at > since)
            & Message.status.not_in(("withdrawn", "suppressed"))
        )
        budget = int(settings["fatigue_messages"])
        oldest = Message.select(pw.fn.MIN(Message.created_at)).where(
            (Message.customer == Decision.customer)
            & (Message.created_at > since)
            & Message.status.not_in(("withdrawn", "suppressed"))
        )
    else:
        open_fu = FollowUp.select(FollowUp.id).where(FollowUp.open_customer == Decision.customer)
        recent = FollowUp.select(FollowUp.id).where(
            (FollowUp.customer == Decision.customer)
            & (FollowUp.created_at > since)
            & (FollowUp.status != "withdrawn")
        )
        budget = int(settings["fatigue_followups"])
        oldest = FollowUp.select(pw.fn.MIN(FollowUp.created_at)).where(
            (FollowUp.customer == Decision.customer)
            & (FollowUp.created_at > since)
            & (FollowUp.status != "withdrawn")
        )
    over = pending & (recent.select(pw.fn.COUNT(pw.SQL("*"))) >= budget)
    if kind != "message":
        over &= ~pw.fn.EXISTS(open_fu)  # joining an open follow-up adds no contact
    detail_text = f"over the contact budget ({budget} {kind}s per {days} days)"
    # One pass over the (costly) budget check: the UPDATE names the rows it deferred.
    sql, params = (
        Decision.update(
            outcome="deferred",
            reason=detail_text,
            updated_at=now,
            defer_until=_plus_days(oldest, days),
        )
        .where(over)
        .sql()
    )
    deferred = db.execute_sql(
        f"{sql} RETURNING {_col(Decision.customer)}, {_col(Decision.plan)}, "
        f"{_col(Decision.occurrence)}",
        params,
    ).fetchall()
    bulk_insert(
        WhyLog,
        [
            {
                "customer": customer,
                "plan": plan,
                "occurrence": occurrence,
                "kind": "deferred",
                "detail": detail_text,
                "at": now,
            }
            for customer, plan, occurrence in deferred
        ],
    )
    counts["deferred"] += len(deferred)
    return counts


def _col(field) -> str:
    return f'"{field.column_name}"'


def _rows(cfg, store, occ, pending, extra_columns):
    Card = CustomerCard
    query = (
        Decision.select(
            Decision.id,
            Decision.customer,
            Decision.dedupe_key,
            Decision.branch,
            Decision.variant,
            Customer.name,
            Customer.locale,
            Customer.source,
            Customer.points,
            Customer.visit_count,
            Customer.last_visit_at,
            *extra_columns,
        )
        .join(Customer, on=(Customer.id == Decision.customer))
        .where(pending)
        .order_by(Decision.id)
    )
    rows = [(*r[:10], _instant(r[10]) if r[10] else None, *r[11:]) for r in _fetch(query)]
    card_ids = {int(r[2].split(":")[1]) for r in rows if r[2].startswith("card:")}
    cards = {}
    if card_ids:
        for cid, name, balance, uses, expires in (
            Card.select(
                Card.id, CardProduct.name, Card.balance, Card.remaining_uses, Card.expires_on
            )
            .join(CardProduct, on=(CardProduct.id == Card.product))
            .where(Card.id.in_(list(card_ids)))
            .tuples()
        ):
            cards[cid] = {
                "card_name": name,
                "balance": balance,
                "remaining_uses": uses,
                "expiry_date": expires,
            }
    return rows, cards


def _member_day(cfg, store: Store, occ: Occurrence):
    """The member day a script's {member_day} names (the plan's, else the store's)."""
    if cfg.template == "member_day":
        return _firing_day(occ, store.timezone) + timedelta(
            days=int(cfg.params.get("remind_days_before", 1))
        )
    return store.member_day or None


def _contexts(cfg, store, occ, rows, cards, now, staff_names=None):
    tz = store.timezone
    today = schedule.local_date(now, tz)
    member_day = _member_day(cfg, store, occ)
    tpl = _template(cfg)
    action = step_action(cfg, occ.step)
    out = []
    picked = []
    for row in rows:
        loc = row[6] or store.locale
        text = _pick_script(
            _script_for(cfg, occ.step, action, row[3], row[4], tpl), loc, store.locale
        )
        picked.append((row, loc, text))
    loyal = {}
    if any(_uses_loyalty(text) for _row, _loc, text in picked):
        loyal = loyalty.script_fields(
            store, [(row[1], row[8], loc) for row, loc, _text in picked], now
        )
    for row, loc, script in picked:
        did, cid, dk, branch, variant, name, locale, source, points, visits, last_visit = row[:11]
        last_day = schedule.local_date(last_visit, tz) if last_visit else None
        ctx = {
            "_currency": store.currency,
            "name": name,
            "first_name": scripts.first_name(name),
            "store_name": store.name,
            "source": source or "",
            "points": points,
            "visit_count": visits,
            "last_visit_date": last_day,
            "days_since_visit": (today - last_day).days if last_day else None,
            "member_day": member_day,
        }
        if dk.startswith("card:"):
            ctx.update(cards.get(int(dk.split(":")[1]), {}))
        if staff_names is not None:
            ctx["staff_name"] = staff_names.get(cid)
        ctx.update(loyal.get(cid, {}))
        out.append((row, scripts.render(script, ctx, loc)))
    return out


def _uses_loyalty(script: str) -> bool:
    return any(
        isinstance(part, tuple) and part[0] in scripts.LOYALTY_VARIABLES
        for part in scripts.compile_script(script)
    )


def _reason_text(cfg, row) -> str:
    source = row[7]
    if cfg.template == "second_visit" and source:
        return f"{cfg.name} · {source}"[:300]
    return (cfg.name or "")[:300]


def _create_messages(cfg, store, occ, action, pending, now) -> int:
    channels, _no_channel = _message_channels(cfg, store, action)
    if not channels:
        return 0
    channel = _channel_expr(channels)
    rows, cards = _rows(
        cfg, store, occ, pending, [channel, Customer.phone, Customer.email, Customer.line_id]
    )
    if not rows:
        return 0
    payload = []
    for row, body in _contexts(cfg, store, occ, rows, cards, now):
        did, cid, dk = row[0], row[1], row[2]
        chan = row[11]
        address = {"phone": row[12], "email": row[13], "line_id": row[14]}[
            _ADDRESS.get(chan, "phone")
        ]
        payload.append(
            {
                "store": store.id,
                "customer": cid,
                "plan": cfg.id,
                "occurrence": occ.id,
                "decision": did,
                "channel": chan,
                "to_address": address or "",
                "body": body,
                "variant": row[4],
                "status": "queued",
                "idempotency_key": idempotency_key(cfg.id, occ.step, cid, dk),
                "next_attempt_at": now,
                "created_at": now,
            }
        )
    with _tx():
        _lock_occurrence(occ.id)
        still = _still_pending(pending, rows)
        bulk_insert(Message, [m for m in payload if m["decision"] in still])
        made = pw.fn.EXISTS(Message.select(Message.id).where(Message.decision == Decision.id))
        done = pending & made
        _why(done, "created", _concat("message queued: ", cfg.name or ""), now)
        _enroll(cfg, store, occ, done, now)
        return Decision.update(outcome="message", updated_at=now).where(done).execute()


def _fetch(query) -> list[tuple]:
    """Rows straight from the driver (peewee's per-row conversion is too slow at 100,000)."""
    return db.execute_sql(*query.sql()).fetchall()


def _still_pending(pending, rows) -> set:
    """Ids of the fetched decisions nobody else has settled meanwhile (read under the lock)."""
    ids = [r[0] for r in rows]
    query = Decision.select(Decision.id).where(pending & Decision.id.between(min(ids), max(ids)))
    return {did for (did,) in _fetch(query)}


# Variables the database can fill in itself; a script using any other ({balance},
# {expiry_date}, {card_name}, …) is rendered row by row in Python instead.
_SQL_VARIABLES = frozenset(
    {
        "name",
        "first_name",
        "store_name",
        "source",
        "points",
        "visit_count",
        "days_since_visit",
        "staff_name",
        "member_day",
    }
)


_BLANKS = " \t\n\r\x0b\x0c\xa0\u3000"  # what str.strip()/split() treat as blanks in names


def _literal(text: str):
    return pw.Cast(pw.Value(text, converter=False), "TEXT")


def _script_tokens(cfg, store, occ, action, branch, variant, locale, member_day):
    """The script a row with this branch, variant and locale gets, as literal text and variable
    names (constants already filled in); None when it needs a variable SQL cannot fill."""
    text = _pick_script(
        _script_for(cfg, occ.step, action, branch, variant, _template(cfg)), locale, store.locale
    )
    tokens: list = []
    for part in scripts.compile_script(text):
        if isinstance(part, tuple) and part[0] not in _SQL_VARIABLES:
            return None
        if part == ("store_name",):
            part = scripts.format_value(store.name, locale, store.currency)
        elif part == ("member_day",):
            part = scripts.format_value(member_day, locale, store.currency)
        if isinstance(part, str) and tokens and isinstance(tokens[-1], str):
            tokens[-1] += part
        elif part != "":
            tokens.append(part)
    return tuple(tokens)


def _variable_sql(name: str, col: dict, tz: str, today: date):
    """One script variable as SQL text, formatted as scripts.render formats it."""
    if name == "name":
        return pw.fn.COALESCE(col["name"], "")
    if name == "first_name":
        # scripts.first_name: strip, then the first word when the name has a space.
        raw = pw.fn.COALESCE(col["name"], "")
        trimmed = pw.fn.BTRIM(raw, _BLANKS) if is_postgres() else pw.fn.TRIM(raw, _BLANKS)
        spaced = trimmed
        for blank in _BLANKS[1:]:
            spaced = pw.fn.REPLACE(spaced, blank, " ")
        find = pw.fn.STRPOS if is_postgres() else pw.fn.INSTR
        first_blank = pw.NodeList((find(spaced, " "), pw.SQL("- 1")))
        return pw.Case(
            None, [(find(trimmed, " ") > 0, pw.fn.SUBSTR(trimmed, 1, first_blank))], trimmed
        )
    if name == "days_since_visit":
        return pw.fn.COALESCE(_text(_days_since(col["last_visit"], tz, today)), "")
    if name in ("points", "visit_count"):
        return pw.fn.COALESCE(_text(col[name]), "")
    return pw.fn.COALESCE(col[name], "")


def _script_sql(cfg, store, occ, action, locales: list, col: dict, today: date):
    """The rendered script of every row as one SQL expression (a CASE over branch, variant and
    locale when they pick different scripts), or None when a script needs Python to render."""
    branches = [None, *range(len(_branches(cfg, occ.step)))]
    variants = ["A", "B"] if len(_variants(action)) >= 2 else [""]
    member_day = _member_day(cfg, store, occ)
    groups: dict[tuple, list] = {}
    for branch, variant, locale in product(branches, variants, locales or [store.locale]):
        tokens = _script_tokens(cfg, store, occ, action, branch, variant, locale, member_day)
        if tokens is None:
            return None
        groups.setdefault(tokens, []).append((branch, variant, locale))
    arms = []
    for tokens, combos in groups.items():
        parts = [
            _literal(t) if isinstance(t, str) else _variable_sql(t[0], col, store.timezone, today)
            for t in tokens
        ] or [_literal("")]
        arms.append((combos, _concat(*parts) if len(parts) > 1 else parts[0]))
    if len(arms) == 1:
        return arms[0][1]

    def matches(combo):
        branch, variant, locale = combo
        cond = col["branch"].is_null() if branch is None else (col["branch"] == branch)
        if len(variants) > 1:
            cond &= col["variant"] == variant
        if len(locales) > 1:
            cond &= col["locale"] == locale
        return cond

    whens = []
    for combos, expr in arms[:-1]:
        cond = None
        for combo in combos:
            cond = matches(combo) if cond is None else (cond | matches(combo))
        whens.append((cond, expr))
    return pw.Case(None, whens, arms[-1][1])


def _script_sql_possible(cfg, store, occ, action) -> bool:
    """Whether every script this step can pick uses only variables SQL can fill in."""
    locales = {store.locale, *scripts.LOCALES}
    for value in _all_scripts(cfg, occ.step, action):
        if isinstance(value, dict):
            locales.update(value)
    member_day = _member_day(cfg, store, occ)
    branches = [None, *range(len(_branches(cfg, occ.step)))]
    variants = ["A", "B"] if len(_variants(action)) >= 2 else [""]
    return all(
        _script_tokens(cfg, store, occ, action, b, v, loc, member_day) is not None
        for b, v, loc in product(branches, variants, sorted(locales))
    )


def _all_scripts(cfg, step: int, action: dict) -> list:
    tpl = _template(cfg)
    found = [action.get("script"), *[v.get("text") for v in _variants(action)]]
    found += [b.get("script") for b in _branches(cfg, step)]
    if tpl is not None:
        found += [tpl.scripts, *(tpl.step_scripts or [])]
    return [f for f in found if f]


def _defaults(model, given) -> dict:
    """Python-side defaults of the model's fields not in `given`, as SQL values."""
    out = {}
    for field in model._meta.sorted_fields:
        if field.name in given or isinstance(field, pw.AutoField) or field.default is None:
            continue
        value = field.default() if callable(field.default) else field.default
        out[field.name] = pw.Value(field.db_value(value), converter=False)
    return out


def _insert_followups_sql(cfg, store, occ, action, pending, now, due_at, day) -> int | None:
    """INSERT … SELECT the new follow-ups of the pending decisions whose customer has none open:
    assignee, rule, due time and rendered script all computed by the database. None (nothing
    done) when a script needs Python to render."""
    # A customer with an open follow-up is skipped by the unique open_customer index (ON
    # CONFLICT DO NOTHING), not by a NOT EXISTS: PostgreSQL, seeing a small follow_up table,
    # plans that as a scan of the table this very statement is filling (quadratic).
    fresh = pending
    locale = pw.fn.COALESCE(pw.fn.NULLIF(Customer.locale, ""), store.locale)
    locales = sorted(
        loc
        for (loc,) in _fetch(
            Decision.select(locale)
            .join(Customer, on=(Customer.id == Decision.customer))
            .where(fresh)
            .distinct()
        )
    )
    if not locales:
        return 0
    rule, fixed = assignment.rule_of(action)
    found = assignment.sources(
        Decision.customer, store, day, rule, fixed, assigned_staff=Customer.assigned_staff
    )
    inner = (
        Decision.select(
            Decision.customer.alias("cid"),
            Decision.variant.alias("variant"),
            Decision.branch.alias("branch"),
            Customer.name.alias("name"),
            locale.alias("locale"),
            Customer.source.alias("source"),
            Customer.points.alias("points"),
            Customer.visit_count.alias("visit_count"),
            Customer.last_visit_at.alias("last_visit"),
            *[expr.alias(f"s{i}") for i, (_, expr) in enumerate(found)],
        )
        .join(Customer, on=(Customer.id == Decision.customer))
        .where(fresh)
    )
    # Materialized, so each row's assignment subqueries run once however often they are used.
    x = inner.cte("x", materialized=True)
    assignee, label = assignment.pick(
        [(name, getattr(x.c, f"s{i}")) for i, (name, _) in enumerate(found)]
    )
    col = {
        name: getattr(x.c, name) for name in ("name", "locale", "source", "points", "visit_count")
    }
    col.update(last_visit=x.c.last_visit, branch=x.c.branch, variant=x.c.variant)
    # Whoever the rule picks can take work in the store that day: their names, as constants.
    everyone, _ = assignment.eligible_staff(store, day)
    names = Staff.select(Staff.id, Staff.name).where(Staff.id.in_(everyone)).tuples()
    col["staff_name"] = pw.Case(assignee, list(names), None) if everyone else pw.Value(None)
    today = schedule.local_date(now, store.timezone)
    script = _script_sql(cfg, store, occ, action, locales, col, today)
    if script is None:
        return None
    values = {
        "store": pw.Value(store.id),
        "customer": x.c.cid,
        "plan": pw.Value(cfg.id),
        "occurrence": pw.Value(occ.id),
        "assignee": assignee,
        "assigned_by_rule": label,
        "status": pw.Value("open"),
        "open_customer": x.c.cid,
        "due_at": _when(due_at),
        "script": script,
        "variant": x.c.variant,
        "created_at": _when(now),
        "updated_at": _when(now),
    }
    values.update(_defaults(FollowUp, values))
    query = pw.Select(from_list=[x], columns=list(values.values())).with_cte(x)
    fields = [FollowUp._meta.fields[name] for name in values]
    return FollowUp.insert_from(query, fields).on_conflict_ignore().as_rowcount().execute()


def _create_followups(
    cfg, store, occ, action, pending, now, joined: bool = False, premarked: bool = False
) -> int:
    """Follow-ups for the decisions `pending` selects (`premarked`: already marked `followup`)."""
    open_fu = (
        FollowUp.select(FollowUp.id).where(FollowUp.open_customer == Decision.customer).limit(1)
    )
    day = schedule.local_date(max(now, occ.scheduled_for), store.timezone)
    rule, fixed = assignment.rule_of(action)
    due_at = max(
        occ.scheduled_for,
        now if (occ.detail or {}).get("mode") == "backfill" else occ.scheduled_for,
    )
    due_at = due_at + timedelta(hours=float(action.get("due_in_hours", 8) or 0))
    # New follow-ups are made by the database in one statement; the few decisions that join a
    # customer's open follow-up (and scripts SQL cannot render) go through Python rows.
    in_sql = _script_sql_possible(cfg, store, occ, action)
    python_rows = pending & pw.fn.EXISTS(open_fu) if in_sql else pending
    rows, cards = _rows(cfg, store, occ, python_rows, [open_fu])
    who = (
        assignment.assignees(
            store, Decision.select(Decision.customer).where(python_rows), day, rule, fixed
        )
        if rows
        else {}
    )
    staff_ids = {sid for sid, _ in who.values() if sid}
    names = (
        dict(Staff.select(Staff.id, Staff.name).where(Staff.id.in_(list(staff_ids))).tuples())
        if staff_ids
        else {}
    )
    staff_names = {cid: names.get(sid) for cid, (sid, _) in who.items()}
    rendered = _contexts(cfg, store, occ, rows, cards, now, staff_names)
    new, merged = [], []
    for row, script in rendered:
        cid = row[1]
        if row[11] is None:
            sid, label = who.get(cid, (None, "manager_queue"))
            new.append(
                {
                    "store": store.id,
                    "customer": cid,
                    "plan": cfg.id,
                    "occurrence": occ.id,
                    "assignee": sid,
                    "assigned_by_rule": label,
                    "status": "open",
                    "open_customer": cid,
                    "due_at": due_at,
                    "script": script,
                    "variant": row[4],
                    "created_at": now,
                    "updated_at": now,
                }
            )
        else:
            merged.append((row, script))
    with _tx(joined):
        if not joined:  # a joined caller holds the lock it needs
            _lock_occurrence(occ.id)
        if rendered:
            still = _still_pending(pending, [r for r, _ in rendered])
            kept = {r[1] for r, _ in rendered if r[0] in still}
            new = [f for f in new if f["customer"] in kept]
            merged = [(r, text) for r, text in merged if r[0] in still]
        if in_sql:
            if merged:
                # A follow-up closed since the rows were read: the row gets a new one in SQL.
                open_now = set(
                    FollowUp.select(FollowUp.open_customer)
                    .where(FollowUp.open_customer.in_([r[1] for r, _ in merged]))
                    .tuples()
                )
                merged = [(r, text) for r, text in merged if (r[1],) in open_now]
            if _insert_followups_sql(cfg, store, occ, action, pending, now, due_at, day) is None:
                raise RuntimeError(f"plan {cfg.id}: a script needs Python rendering")
        bulk_insert(FollowUp, new)
        second_visit = cfg.template == "second_visit"
        if second_visit:
            text = pw.Case(
                None,
                [
                    (
                        Customer.source.is_null(False) & (Customer.source != ""),
                        _concat(f"{cfg.name} · ", Customer.source),
                    )
                ],
                cfg.name or "",
            )
        else:
            text = pw.Value((cfg.name or "")[:300])
        reasons = Decision.select(FollowUp.id, Decision.id, text, FollowUp.script, _when(now)).join(
            FollowUp, on=(FollowUp.open_customer == Decision.customer)
        )
        if second_visit:  # the first visit's source: only this text reads the client row
            reasons = reasons.join(Customer, on=(Customer.id == Decision.customer))
        FollowUpReason.insert_from(
            reasons.where(pending),
            [
                FollowUpReason.followup,
                FollowUpReason.decision,
                FollowUpReason.text,
                FollowUpReason.script,
                FollowUpReason.created_at,
            ],
        ).on_conflict_ignore().as_rowcount().execute()
        for row, script in merged:
            # A second reason joins the open follow-up: both scripts are shown.
            FollowUpReason.update(script=script).where(FollowUpReason.decision == row[0]).execute()
            FollowUp.update(
                script=pw.NodeList(
                    (FollowUp.script, pw.SQL("||"), pw.Value("\n\n— " + script)), glue=" "
                ),
                updated_at=now,
            ).where(FollowUp.open_customer == row[1]).execute()
        made = pw.fn.EXISTS(
            FollowUpReason.select(FollowUpReason.id).where(FollowUpReason.decision == Decision.id)
        )
        done = pending & made
        # The reason row is the why-log's "created" entry (timeline._reasons): no row of its own.
        _enroll(cfg, store, occ, done, now)
        if premarked:
            # Anything left without a follow-up goes back to pending for the recovery pass.
            Decision.update(outcome="pending", updated_at=now).where(pending & ~made).execute()
            return Decision.select(pw.fn.COUNT(Decision.id)).where(done).scalar()
        return Decision.update(outcome="followup", updated_at=now).where(done).execute()


def _enroll(cfg, store, occ: Occurrence, done, now: datetime) -> None:
    """Record progress through a multi-step plan for the customers this step reached."""
    steps = cfg.steps or []
    nxt = occ.step + 1
    if len(steps) <= 1:
        return
    if nxt >= len(steps):
        Enrollment.update(step=occ.step, status="done", next_step_at=None, updated_at=now).where(
            (Enrollment.plan == cfg.id)
            & Enrollment.customer.in_(Decision.select(Decision.customer).where(done))
            & (Enrollment.status == "active")
            & (Enrollment.step == occ.step - 1)
        ).execute()
        return
    # A one-off plan's schedule `at` is its instant, not a time of day: its later steps keep
    # the wall time it fired at.
    at = None if cfg.type == "one_off" else (cfg.schedule or {}).get("at")
    at = at or (cfg.trigger or {}).get("at")
    next_at = schedule.add_days_local(
        occ.scheduled_for, int(steps[nxt].get("after_days", 0)), at, store.timezone
    )
    if occ.step == 0:
        query = Decision.select(
            Decision.plan,
            Decision.customer,
            Decision.dedupe_key,
            pw.Value(0),
            pw.Value("active"),
            _when(now),
            _when(next_at),
            _when(now),
        ).where(done)
        Enrollment.insert_from(
            query,
            [
                Enrollment.plan,
                Enrollment.customer,
                Enrollment.key,
                Enrollment.step,
                Enrollment.status,
                Enrollment.started_at,
                Enrollment.next_step_at,
                Enrollment.updated_at,
            ],
        ).on_conflict_ignore().as_rowcount().execute()
    else:
        Enrollment.update(step=occ.step, next_step_at=next_at, updated_at=now).where(
            (Enrollment.plan == cfg.id)
            & Enrollment.customer.in_(Decision.select(Decision.customer).where(done))
            & (Enrollment.status == "active")
            & (Enrollment.step == occ.step - 1)
        ).execute()


# ---------------------------------------------------------------- running occurrences


def _lock_occurrence(occ_id: int) -> None:
    if is_postgres():
        # NO KEY UPDATE: batches of the engine wait for each other, while rows that merely
        # reference the occurrence (their foreign-key checks take KEY SHARE) do not wait.
        db.execute_sql('SELECT id FROM "occurrence" WHERE id = %s FOR NO KEY UPDATE', (occ_id,))


def _candidate_ranges(
    cfg, store: Store, occ: Occurrence, now: datetime, batch: int, parts: int = 1
) -> list:
    """Batches [(lo, hi, ids)] of at most `batch` candidates each, and at least `parts` batches
    when there are that many candidates: customer-id ranges (None: open-ended) and the
    candidates' ids inside each.

    One read finds the candidates' ids, so a batch is a batch of contacts rather than a slice
    of the whole customer table. Each batch checks the audience again for its own customers.
    """
    query = candidates(cfg, store, occ, now)
    query._returning = (Customer.id,)
    ids = sorted({cid for (cid,) in _fetch(query)})
    if len(ids) >= PARALLEL_FROM:
        batch = max(1, min(batch, -(-len(ids) // parts)))
    chunks = [ids[i : i + batch] for i in range(0, len(ids), batch)] or [[]]
    bounds = [chunk[0] for chunk in chunks[1:]]
    los = [None, *bounds]
    his = [b - 1 for b in bounds] + [None]
    return list(zip(los, his, chunks, strict=True))


def _batch_where(lo, hi, ids):
    """The candidate filter of one batch. On SQLite the batch's ids themselves: a range of ids
    would make SQLite walk the audience's own index over the whole audience for every batch."""
    if is_postgres():
        return _in_range(Customer.id, lo, hi)
    # Integers from our own read, written inline: thousands of bound parameters cost more to
    # build than the statement takes to run.
    return pw.Expression(Customer.id, "IN", pw.SQL(f"({','.join(str(int(i)) for i in ids)})"))


def _in_range(column, lo, hi):
    where = pw.SQL("1 = 1")
    if lo is not None:
        where &= column >= lo
    if hi is not None:
        where &= column <= hi
    return where


def run_occurrence(occurrence: Occurrence, now: datetime) -> int:
    """Generate one occurrence's decisions and contacts in batches; safe to rerun. → contacts made."""
    totals: Counter = Counter()
    _run_and_count(occurrence, now, totals)
    occurrence.status = "done"
    return totals["followups"] + totals["messages"]


def _run_and_count(occ: Occurrence, now: datetime, totals: Counter) -> None:
    plan = Plan.get_by_id(occ.plan_id)
    store = Store.get_by_id(plan.store_id)
    cfg = config(plan, occ.version)
    if occ.status in ("done", "missed"):
        # Its decisions were all made; only finish any a dead worker left pending.
        totals.update(process_pending(cfg, store, occ, now))
        return
    Occurrence.update(status="running", started_at=now).where(
        (Occurrence.id == occ.id) & (Occurrence.status.in_(("pending", "running")))
    ).execute()
    batch = BATCH_POSTGRES if is_postgres() else BATCH
    action = step_action(cfg, occ.step)
    # When the database makes the follow-ups itself, a batch is one transaction from decision
    # to follow-up, and its decisions are inserted as `followup` straight away (screening moves
    # the few held out or deferred): no second pass over them, which on PostgreSQL would also
    # re-run the foreign-key checks of rows inserted by the same transaction. Python-rendered
    # contacts are rendered between two transactions, from `pending` decisions.
    in_one = (
        action.get("kind", "followup") != "message"
        and (occ.detail or {}).get("mode") != "baseline"
        and _script_sql_possible(cfg, store, occ, action)
    )
    # Threads have connections of their own: only when no transaction of ours is open here.
    parallel = PARALLEL if in_one and is_postgres() and not db.in_transaction() else 1
    batches = _candidate_ranges(cfg, store, occ, now, batch, parts=parallel)
    if parallel > 1 and len(batches) > 1 and sum(len(b[2]) for b in batches) >= PARALLEL_FROM:
        _run_batches_in_parallel(cfg, store, occ, action, batches, now, totals)
        batches = []
    wrote = False
    patience = WRITER_PATIENCE
    for lo, hi, ids in batches:
        if wrote and not is_postgres():
            # Fold our pages back into the database now, so a staff member's commit is not the
            # one that crosses the WAL auto-checkpoint threshold and pays for our writes; and
            # let a staff member who is waiting to write go first. A request that holds the
            # gate for long (an upload) is waited for once, not before every batch.
            db.execute_sql("PRAGMA wal_checkpoint(PASSIVE)")
            gave_up = yield_to_writers(patience) == "gave_up"
            patience = 0.0 if gave_up else WRITER_PATIENCE
        with _tx():
            _lock_occurrence(occ.id)
            query = candidates(cfg, store, occ, now).where(_batch_where(lo, hi, ids))
            if in_one:
                wrote = _run_batch_in_one(cfg, store, occ, action, query, now, totals, lo, hi)
                continue
            wrote = True
            _insert_decisions(cfg, store, occ, query, now)
            screened = _screen(cfg, store, occ, _pending(occ, lo, hi), now)
        totals.update(process_pending(cfg, store, occ, now, lo, hi, screened=screened))
    made = (
        Decision.select(pw.fn.COUNT(Decision.id))
        .where((Decision.occurrence == occ.id) & Decision.outcome.in_(("followup", "message")))
        .scalar()
    )
    Occurrence.update(status="done", finished_at=now, created_count=made).where(
        Occurrence.id == occ.id
    ).execute()
    totals["occurrences"] += 1


def _run_batch_in_one(
    cfg, store, occ: Occurrence, action: dict, query, now, totals, lo=None, hi=None
) -> bool:
    """One batch inside the caller's transaction: decisions inserted as `followup`, screened,
    and their follow-ups made by the database. The ids just returned, within the batch's own
    customers, are this batch's only new rows (another batch's commits may fall between them)."""
    ids = _insert_decisions(cfg, store, occ, query, now, outcome="followup")
    if not ids:
        return False
    fresh = (
        (Decision.occurrence == occ.id)
        & Decision.id.between(min(ids), max(ids))
        & _in_range(Decision.customer, lo, hi)
        & (Decision.outcome == "followup")
    )
    totals.update(_screen(cfg, store, occ, fresh, now))
    totals["followups"] += _create_followups(
        cfg, store, occ, action, fresh, now, joined=True, premarked=True
    )
    return True


def _run_batches_in_parallel(cfg, store, occ: Occurrence, action: dict, batches, now, totals):
    """PostgreSQL: the batches of one occurrence on several connections at once (their
    customers never overlap). Another worker running the same occurrence waits for the whole
    run on a session advisory lock, as a single run's batches would wait on the row lock."""
    db.execute_sql("SELECT pg_advisory_lock(%s, %s)", (OCCURRENCE_LOCK, occ.id))
    try:

        def run(lo, hi, ids) -> Counter:
            counts: Counter = Counter()
            with db.connection_context(), _tx():
                query = candidates(cfg, store, occ, now).where(_batch_where(lo, hi, ids))
                _run_batch_in_one(cfg, store, occ, action, query, now, counts, lo, hi)
            return counts

        with ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="engine") as pool:
            futures = [pool.submit(run, *batch) for batch in batches]
            try:
                for future in futures:
                    totals.update(future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    finally:
        db.execute_sql("SELECT pg_advisory_unlock(%s, %s)", (OCCURRENCE_LOCK, occ.id))


def firing_rule(cfg) -> tuple[str, str, int, date | None] | None:
    """(rrule, local time, offset days, anchor) of a recurring or behaviour plan."""
    if cfg.type == "recurring" and cfg.schedule:
        anchor = cfg.schedule.get("anchor")
        return (
            cfg.schedule["rrule"],
            cfg.schedule.get("at", "10:00"),
            int(cfg.schedule.get("offset_days", 0)),
            date.fromisoformat(anchor) if anchor else None,
        )
    if cfg.type == "behaviour":
        return schedule.daily_rule(), (cfg.trigger or {}).get("at") or "09:00", 0, None
    return None


def next_firing(cfg, tz: str, after: datetime) -> datetime | None:
    """The plan's next firing strictly after `after` (one-off: its instant if still ahead)."""
    if cfg.type == "one_off":
        at = (cfg.schedule or {}).get("at")
        instant = datetime.fromisoformat(at) if at else None
        return instant if instant and instant > after else None
    rule = firing_rule(cfg)
    if rule is None:
        return None
    rrule, at, offset, anchor = rule
    return schedule.next_run(rrule, at, tz, after, anchor=anchor, offset_days=offset)


def _advance_plan(plan: Plan, now: datetime, totals: Counter) -> None:
    """Create the occurrences a due plan owes (missed beyond the grace period) and move it on."""
    store = Store.get_by_id(plan.store_id)
    cfg = config(plan)
    grace = timedelta(hours=float(store_settings(store)["grace_hours"]))
    firing = plan.next_run_at
    firings = []
    while firing is not None and firing <= now and len(firings) < MAX_MISSED:
        firings.append(firing)
        firing = next_firing(cfg, store.timezone, firing)
    if firing is not None and firing <= now:
        firing = next_firing(cfg, store.timezone, now)
    moved = (
        Plan.update(next_run_at=firing, last_run_at=now)
        .where((Plan.id == plan.id) & (Plan.next_run_at == plan.next_run_at))
        .execute()
    )
    if not moved:
        return  # another worker advanced it; its occurrences exist already
    for instant in firings:
        day = schedule.local_date(instant, store.timezone)
        key = "once" if cfg.type == "one_off" else day.isoformat()
        status = "pending" if now - instant <= grace else "missed"
        inserted = (
            Occurrence.insert(
                plan=plan.id,
                version=plan.version,
                key=key,
                step=0,
                scheduled_for=instant,
                status=status,
                detail={"day": day.isoformat(), "mode": "normal"},
                finished_at=now if status == "missed" else None,
            )
            .on_conflict_ignore()
            .as_rowcount()
            .execute()
        )
        if status == "missed" and inserted:
            totals["missed"] += 1
            log.warning("plan %s occurrence %s missed (scheduler down beyond grace)", plan.id, key)


def _due_enrollment_steps(now: datetime, totals: Counter) -> None:
    """Open step occurrences for enrollments whose next step is due; end converted ones."""
    groups = (
        Enrollment.select(Enrollment.plan, Enrollment.step, Enrollment.next_step_at)
        .join(Plan, on=(Plan.id == Enrollment.plan))
        .where(
            (Enrollment.status == "active")
            & (Enrollment.next_step_at <= now)
            & (Plan.status == "active")
        )
        .group_by(Enrollment.plan, Enrollment.step, Enrollment.next_step_at)
        .order_by(Enrollment.next_step_at, Enrollment.plan)
        .tuples()
    )
    for plan_id, step, first_due in list(groups):
        first_due = _instant(first_due)
        plan = Plan.get_by_id(plan_id)
        store = Store.get_by_id(plan.store_id)
        started = Enrollment.started_at
        back = Visit.select(Visit.id).where(
            (Visit.customer == Enrollment.customer) & (Visit.first_at > started)
        )
        booked = Event.select(Event.id).where(
            (Event.customer == Enrollment.customer)
            & (Event.type == "appointment_booked")
            & (Event.occurred_at > started)
        )
        due = (
            (Enrollment.plan == plan_id)
            & (Enrollment.status == "active")
            & (Enrollment.step == step)
            & (Enrollment.next_step_at <= first_due)
        )
        with _tx():
            # Back (or booked) since the last step: the next step is withdrawn for them.
            sql, params = (
                Enrollment.update(status="converted", next_step_at=None, updated_at=now)
                .where(due & (pw.fn.EXISTS(back) | pw.fn.EXISTS(booked)))
                .sql()
            )
            converted = db.execute_sql(
                f"{sql} RETURNING {_col(Enrollment.customer)}", params
            ).fetchall()
            bulk_insert(
                WhyLog,
                [
                    {
                        "customer": customer,
                        "plan": plan_id,
                        "kind": "withdrawn",
                        "detail": f"step {step + 2} withdrawn: came back or booked since step "
                        f"{step + 1}",
                        "at": now,
                    }
                    for (customer,) in converted
                ],
            )
            totals["converted"] += len(converted)
            totals["withdrawn"] += len(converted)
        due_at = schedule.local_date(first_due, store.timezone)
        key = due_at.isoformat()
        Occurrence.insert(
            plan=plan_id,
            version=plan.version,
            key=key,
            step=step + 1,
            scheduled_for=first_due,
            status="pending",
            detail={"day": key, "mode": "step"},
        ).on_conflict_ignore().execute()
        occ = Occurrence.get(
            (Occurrence.plan == plan_id) & (Occurrence.key == key) & (Occurrence.step == step + 1)
        )
        if occ.status in ("pending", "running"):
            _run_and_count(occ, now, totals)
        reached = Decision.select(Decision.id).where(
            (Decision.plan == plan_id)
            & (Decision.step == step + 1)
            & (Decision.customer == Enrollment.customer)
            & (Decision.dedupe_key == Enrollment.key)
        )
        # Skipped (no consent) or held out at this step: nothing more will come of it.
        ended = reached.where(Decision.outcome.in_(("skipped", "held_out")))
        Enrollment.update(status="done", next_step_at=None, updated_at=now).where(
            due & pw.fn.EXISTS(ended)
        ).execute()
        # Not reached at all: the customer left the audience.
        Enrollment.update(status="left", next_step_at=None, updated_at=now).where(
            due & ~pw.fn.EXISTS(reached)
        ).execute()


def run_due(now: datetime) -> dict:
    """Everything due at `now`, found from the database; a second run for the same instant adds nothing."""
    totals: Counter = Counter()
    due_plans = (
        Plan.select()
        .where((Plan.status == "active") & (Plan.next_run_at <= now))
        .order_by(Plan.priority, Plan.id)
    )
    _sweep_withdrawals(now, totals)
    for plan in list(due_plans):
        _advance_plan(plan, now, totals)
    pending = (
        Occurrence.select(Occurrence)
        .join(Plan, on=(Plan.id == Occurrence.plan))
        .where(
            Occurrence.status.in_(("pending", "running"))
            & (Occurrence.scheduled_for <= now)
            & (Plan.status == "active")
            & (Occurrence.step == 0)
        )
        .order_by(Plan.priority, Occurrence.scheduled_for, Occurrence.id)
    )
    for occ in list(pending):
        _run_and_count(occ, now, totals)
    _due_enrollment_steps(now, totals)
    _retry_deferred(now, totals)
    _recover_pending(now, totals)
    return {
        "occurrences": totals["occurrences"],
        "followups": totals["followups"],
        "messages": totals["messages"],
        "withdrawn": totals["withdrawn"],
        "missed": totals["missed"],
        "deferred": totals["deferred"],
    }


SWEEP_MARK = "engine:withdrawal-sweep"  # SchedulerLock row whose holder is the last event id
SWEEP_LIMIT = 2000


def _sweep_withdrawals(now: datetime, totals: Counter) -> None:
    """React to events recorded since the last tick whose reaction never ran (imported with
    "do not trigger plans", or a request that failed after saving the event): withdrawals
    must not rest on the request that brought the event in. Reacting twice changes nothing."""
    from app.models import SchedulerLock

    mark = SchedulerLock.get_or_none(SchedulerLock.name == SWEEP_MARK)
    newest = Event.select(pw.fn.MAX(Event.id)).scalar() or 0
    if mark is None:
        # First tick: older events were reacted to when they came in.
        SchedulerLock.insert(
            name=SWEEP_MARK, holder=str(newest), expires_at=datetime(9999, 1, 1, tzinfo=UTC)
        ).on_conflict_ignore().execute()
        return
    last = int(mark.holder or 0)
    if newest <= last:
        return
    waiting = (
        (FollowUp.select(FollowUp.id).where(FollowUp.open_customer == Event.customer)),
        Message.select(Message.id).where(
            (Message.customer == Event.customer) & (Message.status == "queued")
        ),
        Decision.select(Decision.id).where(
            (Decision.customer == Event.customer) & (Decision.outcome == "deferred")
        ),
        Enrollment.select(Enrollment.id).where(
            (Enrollment.customer == Event.customer) & (Enrollment.status == "active")
        ),
    )
    upto = min(newest, last + SWEEP_LIMIT)
    found = (
        Event.select()
        .where(
            (Event.id > last)
            & (Event.id <= upto)
            & (Event.occurred_at <= now)
            & (
                pw.fn.EXISTS(waiting[0])
                | pw.fn.EXISTS(waiting[1])
                | pw.fn.EXISTS(waiting[2])
                | pw.fn.EXISTS(waiting[3])
            )
        )
        .order_by(Event.id)
    )
    for event in list(found):
        totals["withdrawn"] += react_to_event(event, now)
    SchedulerLock.update(holder=str(upto)).where(
        (SchedulerLock.name == SWEEP_MARK) & (SchedulerLock.holder == mark.holder)
    ).execute()


def _rare(condition):
    """Tell SQLite's planner a condition holds for few rows: its statistics only know that
    `outcome` has few distinct values, not that `pending` and `deferred` are rare (an idle
    tick otherwise scans every decision ever made)."""
    return condition if is_postgres() else pw.fn.likelihood(condition, pw.SQL("0.001"))


def _recover_pending(now: datetime, totals: Counter) -> None:
    """Decisions left pending by a run that died after screening them are finished now."""
    occ_ids = [
        oid
        for (oid,) in Decision.select(Decision.occurrence)
        .join(Occurrence, on=(Occurrence.id == Decision.occurrence))
        .join(Plan, on=(Plan.id == Decision.plan))
        .where(
            _rare(Decision.outcome == "pending")
            & (Occurrence.status == "done")
            & (Plan.status == "active")
        )
        .group_by(Decision.occurrence)
        .tuples()
    ]
    for occ_id in occ_ids:
        occ = Occurrence.get_by_id(occ_id)
        plan = Plan.get_by_id(occ.plan_id)
        result = process_pending(
            config(plan, occ.version), Store.get_by_id(plan.store_id), occ, now
        )
        totals["followups"] += result["followups"]
        totals["messages"] += result["messages"]


def _retry_deferred(now: datetime, totals: Counter) -> None:
    """Deferred decisions whose budget has freed are tried again (and may be deferred again)."""
    due = _rare(Decision.outcome == "deferred") & (Decision.defer_until <= now)
    occ_ids = [
        oid
        for oid, _ in Decision.select(Decision.occurrence, pw.fn.MIN(Plan.priority))
        .join(Plan, on=(Plan.id == Decision.plan))
        .where(due & (Plan.status == "active"))
        .group_by(Decision.occurrence)
        .order_by(pw.fn.MIN(Plan.priority))
        .tuples()
    ]
    for occ_id in occ_ids:
        occ = Occurrence.get_by_id(occ_id)
        plan = Plan.get_by_id(occ.plan_id)
        store = Store.get_by_id(plan.store_id)
        with _tx():
            _lock_occurrence(occ.id)
            Decision.update(outcome="pending", updated_at=now).where(
                due & (Decision.occurrence == occ_id)
            ).execute()
        result = process_pending(config(plan, occ.version), store, occ, now)
        totals["followups"] += result["followups"]
        totals["messages"] += result["messages"]


# ---------------------------------------------------------------- reacting to events

_WHY = {
    "visit": "came back",
    "service_completed": "came back",
    "purchase": "came back",
    "card_used": "used the card",
    "appointment_booked": "booked an appointment",
    "top_up": "topped up",
}


def _pointless(cfg, dedupe_key: str, event: Event) -> bool:
    if event.type not in withdraw_on(cfg):
        return False
    if dedupe_key == f"ev:{event.id}" or f":use:{event.id}:" in f"{dedupe_key}:":
        return False  # the event that started this contact does not withdraw it
    if event.type in ("card_used", "top_up") and dedupe_key.startswith("card:") and event.card_id:
        return int(dedupe_key.split(":")[1]) == event.card_id
    return True


def react_to_event(event: Event, now: datetime) -> int:
    """Withdraw contacts the event made pointless, and end enrollments it converted.

    → how many contacts (and enrollments' next steps) it withdrew; reacting twice to one event
    withdraws nothing more."""
    store = Store.get_by_id(event.store_id)
    why = f"{_WHY.get(event.type, event.type)} ({event.type} at {event.occurred_at.isoformat()})"
    converted = 0
    with _tx():
        if event.type in (*templates.VISIT_EVENTS, "appointment_booked"):
            active = Enrollment.select(Enrollment.id).where(
                (Enrollment.customer == event.customer_id)
                & (Enrollment.status == "active")
                & (Enrollment.started_at <= event.occurred_at)
            )
            ids = [e.id for e in active]
            converted = len(ids)  # their next steps are withdrawn
            if ids:
                Enrollment.update(status="converted", next_step_at=None, updated_at=now).where(
                    Enrollment.id.in_(ids)
                ).execute()
                for enr in Enrollment.select().where(Enrollment.id.in_(ids)):
                    WhyLog.create(
                        customer=event.customer_id,
                        plan=enr.plan_id,
                        kind="converted",
                        detail=why[:300],
                        at=now,
                    )
        return (
            converted
            + _withdraw_followups(store, event, why, now)
            + _withdraw_messages(event, why, now)
            + _withdraw_deferred(event, why, now)
        )


def _since_day_start(created_at: datetime, store: Store) -> datetime:
    return schedule.day_bounds(schedule.local_date(created_at, store.timezone), store.timezone)[0]


def _withdraw_followups(store: Store, event: Event, why: str, now: datetime) -> int:
    followup = FollowUp.get_or_none(FollowUp.open_customer == event.customer_id)
    if followup is None or event.occurred_at < _since_day_start(followup.created_at, store):
        return 0
    reasons = list(
        FollowUpReason.with_plans()
        .where(FollowUpReason.followup == followup.id)
        .order_by(FollowUpReason.id)
    )
    plans = {
        p.id: config(p)
        for p in Plan.select().where(Plan.id.in_([r.plan_id for r in reasons if r.plan_id]))
    }
    gone = [
        r
        for r in reasons
        if r.plan_id in plans and _pointless(plans[r.plan_id], r.dedupe_key or "", event)
    ]
    if not gone:
        return 0
    for reason in gone:
        if reason.decision_id:
            Decision.update(outcome="withdrawn", reason=why[:300], updated_at=now).where(
                Decision.id == reason.decision_id
            ).execute()
        # The reason row (the timeline's "created" entry) is deleted below: the entry stays.
        WhyLog.create(
            customer=event.customer_id,
            plan=reason.plan_id,
            occurrence=reason.occurrence_id,
            kind="created",
            detail=f"follow-up: {plans[reason.plan_id].name or ''}"[:300],
            at=reason.created_at,
        )
        WhyLog.create(
            customer=event.customer_id,
            plan=reason.plan_id,
            occurrence=reason.occurrence_id,
            kind="withdrawn",
            detail=why[:300],
            at=now,
        )
    FollowUpReason.delete().where(FollowUpReason.id.in_([r.id for r in gone])).execute()
    left = [r for r in reasons if r not in gone]
    if left:
        FollowUp.update(script="\n\n— ".join(r.script for r in left), updated_at=now).where(
            FollowUp.id == followup.id
        ).execute()
    else:
        FollowUp.update(
            status="withdrawn", open_customer=None, withdrawn_reason=why[:200], updated_at=now
        ).where(FollowUp.id == followup.id).execute()
    return len(gone)


def _withdraw_messages(event: Event, why: str, now: datetime) -> int:
    queued = list(
        Message.select(Message, Decision.dedupe_key)
        .join(Decision, pw.JOIN.LEFT_OUTER, on=(Decision.id == Message.decision))
        .where(
            (Message.customer == event.customer_id)
            & (Message.status == "queued")
            & (Message.created_at <= event.occurred_at + timedelta(days=1))
        )
        .objects()
    )
    plans = {
        p.id: config(p)
        for p in Plan.select().where(Plan.id.in_([m.plan_id for m in queued if m.plan_id]))
    }
    count = 0
    for message in queued:
        if message.plan_id not in plans or not _pointless(
            plans[message.plan_id], message.dedupe_key or "", event
        ):
            continue
        if (
            Message.update(status="withdrawn", closed_at=now, error=why[:500])
            .where((Message.id == message.id) & (Message.status == "queued"))
            .execute()
        ):
            count += 1
            MessageStatusChange.create(
                message=message.id, status="withdrawn", detail={"why": why}, at=now
            )
            if message.decision_id:
                Decision.update(outcome="withdrawn", reason=why[:300], updated_at=now).where(
                    Decision.id == message.decision_id
                ).execute()
            WhyLog.create(
                customer=event.customer_id,
                plan=message.plan_id,
                occurrence=message.occurrence_id,
                kind="withdrawn",
                detail=why[:300],
                at=now,
            )
    return count


def _withdraw_deferred(event: Event, why: str, now: datetime) -> int:
    waiting = list(
        Decision.select().where(
            (Decision.customer == event.customer_id)
            & (Decision.outcome.in_(("deferred", "pending")))
            & (Decision.created_at <= event.occurred_at + timedelta(days=1))
        )
    )
    plans = {
        p.id: config(p) for p in Plan.select().where(Plan.id.in_([d.plan_id for d in waiting]))
    }
    count = 0
    for decision in waiting:
        if decision.plan_id in plans and _pointless(
            plans[decision.plan_id], decision.dedupe_key, event
        ):
            count += 1
            Decision.update(outcome="withdrawn", reason=why[:300], updated_at=now).where(
                Decision.id == decision.id
            ).execute()
            WhyLog.create(
                customer=event.customer_id,
                plan=decision.plan_id,
                occurrence=decision.occurrence_id,
                kind="withdrawn",
                detail=why[:300],
                at=now,
            )
    return count
