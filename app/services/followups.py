"""Staff follow-up work: today's list, logging outcomes, snoozing, undo, reassigning, leave."""

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import peewee as pw
from peewee import JOIN, fn

from app.db import db
from app.models import (
    AuditLog,
    ContactLog,
    Customer,
    CustomerCard,
    FollowUp,
    FollowUpReason,
    Plan,
    Staff,
    StaffLeave,
    StaffStore,
    Store,
)
from app.models.followups import OUTCOMES
from app.services import schedule

log = logging.getLogger(__name__)

UNDO_SECONDS = 15
CLOSING_OUTCOMES = ("reached", "booked", "declined", "wrong_number", "opted_out")
DEFAULT_WORKING_DAYS = (0, 1, 2, 3, 4, 5)
PAGE_SIZE = 20  # rows per Today group before "Show more" (a phone shows ~6)


class FollowUpError(Exception):
    """A follow-up action that cannot be done; `field` names the form field at fault."""

    def __init__(self, code: str, message: str, field: str = "outcome"):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


# --- time in the store's calendar -------------------------------------------------------------


def _followup_time(store: Store) -> time:
    raw = str(store.setting("followup_hour", "09:00") or "09:00")
    try:
        hour, _, minute = raw.partition(":")
        return time(int(hour), int(minute or 0))
    except ValueError:
        return time(9, 0)


def at_followup_hour(store: Store, day: date) -> datetime:
    """The store's follow-up hour on a local day, as an aware UTC instant."""
    local = datetime.combine(day, _followup_time(store), ZoneInfo(store.timezone))
    return local.astimezone(UTC)


def local_today(store: Store, now: datetime) -> date:
    """The calendar day in the store's timezone at `now`."""
    return now.astimezone(ZoneInfo(store.timezone)).date()


def day_bounds(store: Store, day: date) -> tuple[datetime, datetime]:
    """Start and end (exclusive) of a local day, as UTC instants."""
    zone = ZoneInfo(store.timezone)
    start = datetime.combine(day, time(0), zone)
    end = datetime.combine(day + timedelta(days=1), time(0), zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def next_working_time(store: Store, after: datetime) -> datetime:
    """The store's follow-up hour on the next working day (not a day off, not a holiday)."""
    working = store.setting("working_days", list(DEFAULT_WORKING_DAYS)) or list(range(7))
    holidays = store.setting("holidays", []) or []
    day = schedule.next_working_day(local_today(store, after), working, holidays)
    return at_followup_hour(store, day)


def snooze_choices(store: Store, now: datetime) -> dict[str, datetime]:
    """The quick snooze targets: later today (+2 h) and tomorrow at the follow-up hour."""
    return {
        "later": now + timedelta(hours=2),
        "tomorrow": at_followup_hour(store, local_today(store, now) + timedelta(days=1)),
    }


# --- Today ------------------------------------------------------------------------------------


GROUPS = ("overdue", "today", "upcoming")


@dataclass
class TodayFilter:
    """What the Today list is narrowed to: whose work, which plan, which client."""

    store: Store
    assignee: Staff | None = None  # None: the store's manager queue (unassigned)
    plan_id: int | None = None
    q: str = ""
    region: str = "MY"


@dataclass
class TodayPage:
    """Rows of one group plus the cursor of the next page (None when there is no more)."""

    rows: list = field(default_factory=list)
    cursor: str | None = None


def _open_query(flt: TodayFilter):
    """Open follow-ups of the list, joined to their customer (search narrows the joined rows)."""
    query = FollowUp.select().join(Customer).switch(FollowUp).where(FollowUp.status == "open")
    if flt.assignee is not None:
        query = query.where(FollowUp.assignee == flt.assignee.id)
    else:
        query = query.where(FollowUp.store == flt.store.id, FollowUp.assignee.is_null())
    if flt.plan_id:
        query = query.where(FollowUp.plan == flt.plan_id)
    q = (flt.q or "").strip()
    if q:
        query = query.where(customer_match(q, flt.region))
    return query


def customer_match(q: str, region: str):
    """A condition on Customer: a phone in any format (normalised with the region), else a
    fragment of the name in any script (ILIKE; a trigram index answers it on PostgreSQL)."""
    from app.services import customers as customer_service

    q = q.strip()
    digits = "".join(ch for ch in q if ch.isdigit())
    if digits and not any(ch.isalpha() for ch in q):
        if len(digits) >= 6:
            try:
                return Customer.phone == customer_service.normalize_phone(q, region)
            except ValueError:
                pass  # not a whole number of this region: search it as a fragment below
        return Customer.phone.contains(digits.lstrip("0") or digits)
    return Customer.name.contains(q)


def group_bounds(store: Store, now: datetime) -> tuple[datetime, datetime]:
    """Overdue is before the local day began; due today runs to its end; upcoming after."""
    return day_bounds(store, local_today(store, now))


def today_counts(flt: TodayFilter, now: datetime) -> dict[str, int]:
    """How many open follow-ups fall in each group (one query)."""
    start, end = group_bounds(flt.store, now)
    s, e = start, end
    overdue = fn.SUM(pw.Case(None, [(FollowUp.due_at < s, 1)], 0))
    today = fn.SUM(pw.Case(None, [((FollowUp.due_at >= s) & (FollowUp.due_at < e), 1)], 0))
    upcoming = fn.SUM(pw.Case(None, [(FollowUp.due_at >= e, 1)], 0))
    row = (
        _open_query(flt)
        .select(overdue.alias("overdue"), today.alias("today"), upcoming.alias("upcoming"))
        .dicts()
        .get()
    )
    return {key: int(row.get(key) or 0) for key in GROUPS}


def _encode_cursor(f: FollowUp) -> str:
    return f"{int(f.due_at.timestamp() * 1_000_000)}_{f.id}"


def _decode_cursor(cursor: str | None) -> tuple[datetime, int] | None:
    if not cursor:
        return None
    try:
        micros, _, ident = cursor.partition("_")
        at = datetime.fromtimestamp(int(micros) / 1_000_000, tz=UTC)
        return at, int(ident)
    except (ValueError, OverflowError):
        return None


# Only what a Today row shows: fewer columns to fetch and to turn into models.
ROW_COLUMNS = (
    FollowUp.id,
    FollowUp.store,
    FollowUp.customer,
    FollowUp.plan,
    FollowUp.assignee,
    FollowUp.status,
    FollowUp.due_at,
    FollowUp.variant,
    FollowUp.attempts,
    Customer.id,
    Customer.name,
    Customer.phone,
    Customer.source,
    Customer.birthday,
    Customer.points,
    Customer.last_visit_at,
    Plan.id,
    Plan.name,
    Plan.template,
    # How many reasons were merged into the row, read with the row (no second query).
    FollowUpReason.select(fn.COUNT(FollowUpReason.id))
    .where(FollowUpReason.followup == FollowUp.id)
    .alias("reason_count"),
)


def today_page(
    flt: TodayFilter,
    group: str,
    now: datetime,
    cursor: str | None = None,
    limit: int = PAGE_SIZE,
    decorate: bool = True,
) -> TodayPage:
    """One page of a group, ordered by due time, continuing after `cursor` (keyset)."""
    start, end = group_bounds(flt.store, now)
    query = _open_query(flt).select(*ROW_COLUMNS).join(Plan, JOIN.LEFT_OUTER)
    if group == "all":
        pass
    elif group == "overdue":
        query = query.where(FollowUp.due_at < start)
    elif group == "today":
        query = query.where(FollowUp.due_at >= start, FollowUp.due_at < end)
    else:
        query = query.where(FollowUp.due_at >= end)
    after = _decode_cursor(cursor)
    if after is not None:
        at, ident = after
        query = query.where(
            (FollowUp.due_at > at) | ((FollowUp.due_at == at) & (FollowUp.id > ident))
        )
    rows = list(query.order_by(FollowUp.due_at, FollowUp.id).limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    if decorate:
        decorate_rows(rows, now)
    return TodayPage(rows=rows, cursor=_encode_cursor(rows[-1]) if more and rows else None)


def decorate_rows(rows: list[FollowUp], now: datetime) -> None:
    """Attach `merged` (extra reasons) and `fact` (the most useful fact) to each row."""
    if not rows:
        return
    missing = [f.id for f in rows if getattr(f, "reason_count", None) is None]
    counts = {f.id: f.reason_count for f in rows if f.id not in missing}
    if missing:
        counts.update(
            FollowUpReason.select(FollowUpReason.followup, fn.COUNT(FollowUpReason.id))
            .where(FollowUpReason.followup.in_(missing))
            .group_by(FollowUpReason.followup)
            .tuples()
        )
    customer_ids = list({f.customer_id for f in rows})
    cards: dict[int, list[CustomerCard]] = {}
    for card in (
        CustomerCard.select(
            CustomerCard.id,
            CustomerCard.customer,
            CustomerCard.balance,
            CustomerCard.remaining_uses,
            CustomerCard.expires_on,
        )
        .where(CustomerCard.customer.in_(customer_ids), CustomerCard.status == "active")
        .order_by(CustomerCard.id)
    ):
        cards.setdefault(card.customer_id, []).append(card)
    for f in rows:
        f.merged = max(0, int(counts.get(f.id, 0)) - 1)
        f.fact = useful_fact(f, cards.get(f.customer_id, []), now)


def useful_fact(f: FollowUp, cards: list[CustomerCard], now: datetime) -> dict:
    """The one fact that matters most for this follow-up, chosen by the plan's template."""
    template = (f.plan.template if f.plan_id and f.plan else "") or ""
    customer = f.customer
    stored = [c for c in cards if c.balance is not None]
    counted = [c for c in cards if c.remaining_uses is not None]
    expiring = sorted((c for c in cards if c.expires_on), key=lambda c: c.expires_on)
    if template == "balance_low" and stored:
        card = min(stored, key=lambda c: c.balance)
        return {"kind": "balance", "value": card.balance, "card": card}
    if template in ("count_card_low", "card_use_reminder") and counted:
        card = min(counted, key=lambda c: c.remaining_uses)
        return {"kind": "uses", "value": card.remaining_uses, "card": card}
    if template == "card_expiry" and expiring:
        return {"kind": "expiry", "value": expiring[0].expires_on, "card": expiring[0]}
    if template == "points_reminder":
        return {"kind": "points", "value": customer.points}
    if template == "birthday" and customer.birthday:
        return {"kind": "birthday", "value": customer.birthday}
    if template == "second_visit" and customer.source:
        return {"kind": "source", "value": customer.source}
    if customer.last_visit_at:
        return {"kind": "days_since", "value": (now - customer.last_visit_at).days}
    return {"kind": "never", "value": None}


def plans_with_open_work(flt: TodayFilter) -> list[Plan]:
    """Plans that have open follow-ups in this list (for the plan filter)."""
    base = TodayFilter(store=flt.store, assignee=flt.assignee)
    ids = _open_query(base).select(FollowUp.plan).where(FollowUp.plan.is_null(False)).distinct()
    return list(Plan.select().where(Plan.id.in_(ids)).order_by(Plan.name))


# --- logging outcomes -------------------------------------------------------------------------


def _audit(staff: Staff | None, store_id: int, action: str, obj: str, oid, detail, now):
    AuditLog.create(
        at=now,
        staff=staff.id if staff else None,
        store=store_id,
        action=action,
        object_type=obj,
        object_id=str(oid),
        detail=detail,
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _set_consent_off(customer: Customer, staff: Staff, now: datetime) -> dict[str, bool | None]:
    """Switch every channel off at once; return what each channel was before."""
    from app.models import Consent
    from app.models.customers import CHANNELS
    from app.services import customers as customer_service

    before = {c.channel: c.granted for c in Consent.select().where(Consent.customer == customer.id)}
    for channel in CHANNELS:
        customer_service.set_consent(
            customer, channel, False, source="staff_opt_out", staff=staff, now=now
        )
    try:
        from app.services import messaging
    except ImportError:
        messaging = None
    if messaging is not None and hasattr(messaging, "suppress_for_opt_out"):
        messaging.suppress_for_opt_out(customer, now)
    return {channel: before.get(channel) for channel in CHANNELS}


def _restore_consent(customer: Customer, before: dict, staff: Staff, now: datetime) -> None:
    from app.models import Consent
    from app.services import customers as customer_service

    for channel, granted in before.items():
        if granted is None:
            Consent.delete().where(
                Consent.customer == customer.id, Consent.channel == channel
            ).execute()
        elif granted:
            customer_service.set_consent(
                customer, channel, True, source="staff_undo", staff=staff, now=now
            )


def _record_booking(followup: FollowUp, staff: Staff, appointment_at: datetime, now: datetime):
    from app.services import events

    data = {
        "external_id": f"ui-followup-{followup.id}-{int(now.timestamp())}",
        "type": "appointment_booked",
        "customer": {"id": followup.customer_id},
        "occurred_at": now.isoformat(),
        "appointment_at": appointment_at.isoformat(),
    }
    event, _created = events.record_event(followup.store, data, now, source="ui", staff=staff)
    return event


def log_outcome(
    followup: FollowUp,
    staff: Staff,
    outcome: str,
    now: datetime,
    channel: str | None = None,
    note: str = "",
    next_at: datetime | None = None,
    appointment_at: datetime | None = None,
) -> ContactLog:
    """Record what happened on a follow-up and apply its consequences (close, reschedule…)."""
    if outcome not in OUTCOMES:
        raise FollowUpError("outcome_unknown", "Choose what happened.", "outcome")
    if followup.status != "open":
        raise FollowUpError("closed", "This follow-up is already closed.", "outcome")
    if next_at is not None and next_at <= now:
        raise FollowUpError("next_in_past", "The next follow-up must be in the future.", "next_at")
    store = Store.get_by_id(followup.store_id)
    customer = Customer.get_by_id(followup.customer_id)
    note = (note or "").strip()[:2000]
    before = {
        "status": followup.status,
        "due_at": _iso(followup.due_at),
        "snoozed_until": _iso(followup.snoozed_until),
        "attempts": followup.attempts,
        "outcome": followup.outcome,
        "note": followup.note,
        "completed_at": _iso(followup.completed_at),
        "phone_flagged_at": _iso(customer.phone_flagged_at),
    }
    effects: dict = {}
    with db.atomic():
        entry = ContactLog.create(
            followup=followup.id,
            customer=customer.id,
            staff=staff.id,
            channel=(channel or "phone")[:16],
            outcome=outcome,
            note=note,
            next_at=next_at,
            at=now,
        )
        close = True
        if outcome == "no_answer":
            followup.attempts += 1
            limit = int(store.setting("no_answer_attempts", 3) or 3)
            if followup.attempts < limit:
                close = False
                followup.due_at = next_at or next_working_time(store, now)
                followup.snoozed_until = None
        if note:
            followup.note = note
        followup.updated_at = now
        if close:
            followup.status = "done"
            followup.outcome = outcome
            followup.open_customer = None
            followup.completed_at = now
        followup.save()
        if outcome == "wrong_number":
            Customer.update(phone_flagged_at=now, updated_at=now).where(
                Customer.id == customer.id
            ).execute()
        if outcome == "opted_out":
            effects["consent"] = _set_consent_off(customer, staff, now)
        if outcome == "booked" and appointment_at is not None:
            event = _record_booking(followup, staff, appointment_at, now)
            effects["appointment_event"] = event.id if event is not None else None
        if close and next_at is not None:
            child = FollowUp.create(
                store=followup.store_id,
                customer=customer.id,
                plan=followup.plan_id,
                occurrence=followup.occurrence_id,
                assignee=staff.id,
                assigned_by_rule="next",
                status="open",
                open_customer=customer.id,
                due_at=next_at,
                script=followup.script,
                variant=followup.variant,
                parent=followup.id,
                created_at=now,
                updated_at=now,
            )
            effects["child"] = child.id
        _audit(
            staff,
            followup.store_id,
            "followup.logged",
            "contact_log",
            entry.id,
            {"followup": followup.id, "before": before, "effects": effects},
            now,
        )
    return entry


def last_log(followup: FollowUp) -> ContactLog | None:
    """The most recent contact log on a follow-up."""
    return (
        ContactLog.select()
        .where(ContactLog.followup == followup.id)
        .order_by(ContactLog.at.desc(), ContactLog.id.desc())
        .first()
    )


def can_undo(followup: FollowUp, staff: Staff, now: datetime) -> bool:
    """True while the last log on this follow-up was made by `staff` within the undo window."""
    entry = last_log(followup)
    return bool(
        entry is not None
        and entry.staff_id == staff.id
        and now - entry.at <= timedelta(seconds=UNDO_SECONDS)
    )


def undo_last_log(followup: FollowUp, staff: Staff, now: datetime) -> dict:
    """Take back the last log within the undo window: reopen and reverse what can be reversed."""
    entry = last_log(followup)
    if entry is None or entry.staff_id != staff.id:
        raise FollowUpError("nothing_to_undo", "There is nothing to undo.")
    if now - entry.at > timedelta(seconds=UNDO_SECONDS):
        raise FollowUpError("undo_too_late", "Too late to undo; log the follow-up again instead.")
    audit = (
        AuditLog.select()
        .where(
            AuditLog.action == "followup.logged",
            AuditLog.object_type == "contact_log",
            AuditLog.object_id == str(entry.id),
        )
        .first()
    )
    detail = (audit.detail if audit else None) or {}
    before = detail.get("before", {})
    effects = detail.get("effects", {})
    customer = Customer.get_by_id(followup.customer_id)
    with db.atomic():
        child_id = effects.get("child")
        if child_id:
            FollowUp.delete().where(
                FollowUp.id == child_id, FollowUp.status == "open", FollowUp.parent == followup.id
            ).execute()
        if entry.outcome == "wrong_number":
            Customer.update(phone_flagged_at=_parse(before.get("phone_flagged_at"))).where(
                Customer.id == customer.id
            ).execute()
        if entry.outcome == "opted_out" and effects.get("consent"):
            _restore_consent(customer, effects["consent"], staff, now)
        clash = (
            FollowUp.select()
            .where(FollowUp.open_customer == customer.id, FollowUp.id != followup.id)
            .exists()
        )
        if clash:
            raise FollowUpError("undo_clash", "The client already has another open follow-up.")
        followup.status = "open"
        followup.open_customer = customer.id
        followup.outcome = before.get("outcome")
        followup.attempts = before.get("attempts", followup.attempts)
        followup.note = before.get("note", followup.note)
        followup.completed_at = _parse(before.get("completed_at"))
        if before.get("due_at"):
            followup.due_at = _parse(before["due_at"])
        followup.snoozed_until = _parse(before.get("snoozed_until"))
        followup.updated_at = now
        followup.save()
        entry.delete_instance()
        _audit(
            staff,
            followup.store_id,
            "followup.undo",
            "followup",
            followup.id,
            {"outcome": entry.outcome, "kept_event": effects.get("appointment_event")},
            now,
        )
    return {"outcome": entry.outcome, "kept_event": effects.get("appointment_event")}


def snooze(followup: FollowUp, until: datetime, now: datetime) -> FollowUp:
    """Put a follow-up off until a later time (it leaves the list until then)."""
    if followup.status != "open":
        raise FollowUpError("closed", "This follow-up is already closed.", "until")
    if until <= now:
        raise FollowUpError("until_in_past", "Choose a time in the future.", "until")
    followup.due_at = until
    followup.snoozed_until = until
    followup.updated_at = now
    followup.save()
    return followup


def reassign(followups, assignee: Staff | None, now: datetime, by: Staff | None) -> int:
    """Give open follow-ups to another staff member (None: the manager queue); returns count."""
    ids = [f.id if isinstance(f, FollowUp) else int(f) for f in followups]
    if not ids:
        return 0
    with db.atomic():
        count = (
            FollowUp.update(
                assignee=assignee.id if assignee else None,
                assigned_by_rule="manual",
                updated_at=now,
            )
            .where(FollowUp.id.in_(ids), FollowUp.status == "open")
            .execute()
        )
        store_id = FollowUp.get_by_id(ids[0]).store_id
        _audit(
            by,
            store_id,
            "followup.reassigned",
            "followup",
            ",".join(map(str, ids))[:64],
            {"ids": ids, "assignee": assignee.id if assignee else None},
            now,
        )
    return count


# --- leave ------------------------------------------------------------------------------------


def add_leave(staff: Staff, starts_on: date, ends_on: date, note: str, now: datetime) -> StaffLeave:
    """Record days off for a staff member and hand over what falls due in them."""
    if ends_on < starts_on:
        raise FollowUpError(
            "leave_order", "The last day must not be before the first day.", "ends_on"
        )
    leave = StaffLeave.create(
        staff=staff.id, starts_on=starts_on, ends_on=ends_on, note=note[:200], created_at=now
    )
    apply_leave(now)
    return leave


def cancel_leave(leave: StaffLeave, now: datetime) -> None:
    """Remove days off; follow-ups handed over for them come back at once."""
    leave.delete_instance()
    apply_leave(now)


def _on_leave(staff_id: int, day: date) -> StaffLeave | None:
    return (
        StaffLeave.select()
        .where(StaffLeave.staff == staff_id, StaffLeave.starts_on <= day, StaffLeave.ends_on >= day)
        .order_by(StaffLeave.ends_on.desc())
        .first()
    )


def _round_robin_targets(store: Store, day: date, exclude: int) -> list[int]:
    away = StaffLeave.select(StaffLeave.staff).where(
        StaffLeave.starts_on <= day, StaffLeave.ends_on >= day
    )
    return [
        s.id
        for s in Staff.select(Staff.id)
        .join(StaffStore)
        .where(
            StaffStore.store == store.id,
            Staff.role == "employee",
            Staff.active == True,  # noqa: E712
            Staff.id != exclude,
            Staff.id.not_in(away),
        )
        .order_by(Staff.id)
    ]


def apply_leave(now: datetime) -> dict[str, int]:
    """Hand work of staff on leave to their store's round-robin, and give it back on return."""
    handed = returned = 0
    utc_day = now.astimezone(UTC).date()
    current = list(
        StaffLeave.select().where(
            StaffLeave.starts_on <= utc_day + timedelta(days=1),
            StaffLeave.ends_on >= utc_day - timedelta(days=1),
        )
    )
    for leave in current:
        stores = Store.select().join(StaffStore).where(StaffStore.staff == leave.staff_id)
        for store in stores:
            day = local_today(store, now)
            if not (leave.starts_on <= day <= leave.ends_on):
                continue
            _, period_end = day_bounds(store, leave.ends_on)
            handed += _hand_over(store, leave.staff_id, day, period_end, now)
    away_rules = (
        FollowUp.select(FollowUp.assigned_by_rule, FollowUp.store)
        .where(FollowUp.status == "open", FollowUp.assigned_by_rule.startswith("leave:"))
        .distinct()
        .tuples()
    )
    for rule, store_id in list(away_rules):
        try:
            staff_id = int(rule.split(":", 1)[1])
        except ValueError:
            continue
        store = Store.get_by_id(store_id)
        staff = Staff.get_or_none(Staff.id == staff_id)
        if staff is not None and (
            not staff.active or _on_leave(staff_id, local_today(store, now)) is not None
        ):
            continue
        returned += (
            FollowUp.update(
                assignee=staff_id if staff is not None else None,
                assigned_by_rule="returned",
                updated_at=now,
            )
            .where(
                FollowUp.status == "open",
                FollowUp.store == store_id,
                FollowUp.assigned_by_rule == rule,
            )
            .execute()
        )
    return {"handed_over": handed, "returned": returned}


def _hand_over(store: Store, staff_id: int, day: date, period_end: datetime, now: datetime) -> int:
    ids = [
        f.id
        for f in FollowUp.select(FollowUp.id)
        .where(
            FollowUp.store == store.id,
            FollowUp.assignee == staff_id,
            FollowUp.status == "open",
            FollowUp.due_at < period_end,
        )
        .order_by(FollowUp.due_at, FollowUp.id)
    ]
    if not ids:
        return 0
    targets = _round_robin_targets(store, day, staff_id)
    rule = f"leave:{staff_id}"
    with db.atomic():
        if not targets:
            FollowUp.update(assignee=None, assigned_by_rule=rule, updated_at=now).where(
                FollowUp.id.in_(ids)
            ).execute()
        else:
            loads = dict(
                FollowUp.select(FollowUp.assignee, fn.COUNT(FollowUp.id))
                .where(FollowUp.status == "open", FollowUp.assignee.in_(targets))
                .group_by(FollowUp.assignee)
                .tuples()
            )
            load = {t: int(loads.get(t, 0)) for t in targets}
            share: dict[int, list[int]] = {t: [] for t in targets}
            for fid in ids:
                target = min(targets, key=lambda t: (load[t], t))
                share[target].append(fid)
                load[target] += 1
            for target, fids in share.items():
                if fids:
                    FollowUp.update(assignee=target, assigned_by_rule=rule, updated_at=now).where(
                        FollowUp.id.in_(fids)
                    ).execute()
        _audit(
            None,
            store.id,
            "followup.leave_handover",
            "staff",
            staff_id,
            {"followups": ids[:500], "to": targets},
            now,
        )
    return len(ids)
