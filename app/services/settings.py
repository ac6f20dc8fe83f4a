"""Settings a manager or owner changes without a developer: store profile, contact rules, staff."""

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo, available_timezones

from flask_babel import lazy_gettext as _l

from app.db import db
from app.models import ChannelSetting, FollowUp, Staff, StaffSession, StaffStore, Store
from app.services import audit
from app.services import followups as followup_service

CURRENCIES = ("MYR", "SGD", "THB", "IDR", "PHP", "VND", "CNY", "HKD", "TWD", "USD", "EUR", "GBP")
REGIONS = ("MY", "SG", "TH", "ID", "PH", "VN", "CN", "HK", "TW", "US", "GB")
LOCALES = ("en", "ms", "zh", "th")
HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class SettingsError(ValueError):
    """Invalid settings; .errors maps a form field to its message."""

    def __init__(self, errors: dict):
        super().__init__("invalid settings")
        self.errors = errors


def form_int(form: dict, name: str, errors: dict, low: int, high: int, blank_ok: bool = False):
    raw = str(form.get(name, "")).strip()
    if raw == "" and blank_ok:
        return None
    try:
        value = int(raw)
    except ValueError:
        errors[name] = _l("Enter a whole number.")
        return None
    if not low <= value <= high:
        errors[name] = _l("Enter a number from %(low)s to %(high)s.", low=low, high=high)
        return None
    return value


def store_form(store: Store) -> dict:
    """The current values of every editable store setting, as form strings."""
    s = store.settings or {}
    return {
        "name": store.name,
        "timezone": store.timezone,
        "region": store.region,
        "currency": store.currency,
        "locale": store.locale,
        "member_day": "" if store.member_day is None else str(store.member_day),
        "quiet_start": store.quiet_start,
        "quiet_end": store.quiet_end,
        "fatigue_messages": str(store.setting("fatigue_messages", 2)),
        "fatigue_followups": str(store.setting("fatigue_followups", 1)),
        "fatigue_days": str(store.setting("fatigue_days", 7)),
        "no_answer_attempts": str(store.setting("no_answer_attempts", 3)),
        "working_days": [int(d) for d in s.get("working_days", [0, 1, 2, 3, 4, 5])],
        "holidays": "\n".join(s.get("holidays", [])),
        "default_holdout": str(store.setting("default_holdout", 0)),
    }


def update_store(store: Store, form: dict, staff: Staff | None, now: datetime) -> dict:
    """Validate and apply store settings; audit what changed; answer the changes."""
    errors: dict = {}
    name = str(form.get("name", "")).strip()
    if not name or len(name) > 200:
        errors["name"] = _l("Enter a name of 1 to 200 characters.")
    tz = str(form.get("timezone", "")).strip()
    if tz not in available_timezones():
        errors["timezone"] = _l("Choose a timezone from the list, e.g. Asia/Kuala_Lumpur.")
    region = str(form.get("region", "")).strip().upper()
    if region not in REGIONS:
        errors["region"] = _l("Choose a region from the list.")
    currency = str(form.get("currency", "")).strip().upper()
    if currency not in CURRENCIES:
        errors["currency"] = _l("Choose a currency from the list.")
    locale = str(form.get("locale", "")).strip()
    if locale not in LOCALES:
        errors["locale"] = _l("Choose a language from the list.")
    member_day = form_int(form, "member_day", errors, 1, 31, blank_ok=True)
    quiet = {}
    for key in ("quiet_start", "quiet_end"):
        value = str(form.get(key, "")).strip()
        if not HHMM.match(value):
            errors[key] = _l("Enter a time as HH:MM, e.g. 21:00.")
        quiet[key] = value
    numbers = {
        "fatigue_messages": form_int(form, "fatigue_messages", errors, 0, 50),
        "fatigue_followups": form_int(form, "fatigue_followups", errors, 0, 50),
        "fatigue_days": form_int(form, "fatigue_days", errors, 1, 90),
        "no_answer_attempts": form_int(form, "no_answer_attempts", errors, 1, 10),
        "default_holdout": form_int(form, "default_holdout", errors, 0, 50),
    }
    days = _list(form, "working_days")
    days = sorted({int(d) for d in days if str(d).isdigit() and 0 <= int(d) <= 6})
    if not days:
        errors["working_days"] = _l("Choose at least one working day.")
    holidays = []
    for line in str(form.get("holidays", "")).split():
        try:
            holidays.append(date.fromisoformat(line.strip().rstrip(",")).isoformat())
        except ValueError:
            errors["holidays"] = _l(
                "“%(value)s” is not a date (use YYYY-MM-DD, one a line).", value=line
            )
            break
    if errors:
        raise SettingsError(errors)
    ZoneInfo(tz)
    before = store_form(store)
    store.name, store.timezone, store.region = name, tz, region
    store.currency, store.locale, store.member_day = currency, locale, member_day
    store.quiet_start, store.quiet_end = quiet["quiet_start"], quiet["quiet_end"]
    merged = dict(store.settings or {})
    merged.update(numbers)
    merged["working_days"] = days
    merged["holidays"] = sorted(set(holidays))
    store.settings = merged
    after = store_form(store)
    changes = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
    with db.atomic():
        store.save()
        if changes:
            audit.record(staff, store, "settings.updated", "setting", store.id, changes, now)
    return changes


def update_prices(store: Store, form: dict, staff: Staff | None, now: datetime) -> dict:
    """Set each channel's price per message (form keys price_<channel>); audited."""
    errors, prices = {}, {}
    for ch in ChannelSetting.select().where(ChannelSetting.store == store.id):
        raw = str(form.get(f"price_{ch.channel}", "")).strip()
        if raw == "":
            continue
        try:
            value = Decimal(raw)
        except InvalidOperation:
            errors[f"price_{ch.channel}"] = _l("Enter a price such as 0.05.")
            continue
        if value < 0 or value > 1000:
            errors[f"price_{ch.channel}"] = _l("Enter a price from 0 to 1000.")
            continue
        if value != ch.price:
            prices[ch.channel] = (ch, value)
    if errors:
        raise SettingsError(errors)
    changes = {}
    with db.atomic():
        for channel, (ch, value) in prices.items():
            changes[channel] = [str(ch.price), str(value)]
            ChannelSetting.update(price=value, updated_at=now).where(
                ChannelSetting.id == ch.id
            ).execute()
        if changes:
            audit.record(staff, store, "channel.prices", "channel", store.id, changes, now)
    return changes


def deactivate_staff(
    person: Staff, store: Store, target: str, by: Staff | None, now: datetime
) -> int:
    """Switch a login off, end its sessions and hand its open follow-ups to `target`.

    target: "queue" (the manager queue), "round_robin" (the store's other active employees)
    or a staff id as text. Answers how many follow-ups moved.
    """
    ids = [
        f.id
        for f in FollowUp.select(FollowUp.id).where(
            FollowUp.assignee == person.id, FollowUp.status == "open"
        )
    ]
    with db.atomic():
        moved = hand_over(ids, store, target, by, now, exclude=person.id)
        Staff.update(active=False).where(Staff.id == person.id).execute()
        StaffSession.update(revoked_at=now).where(
            StaffSession.staff == person.id, StaffSession.revoked_at.is_null()
        ).execute()
        audit.record(
            by, store, "staff.deactivated", "staff", person.id, {"followups_to": target}, now
        )
    return moved


def store_employees(store: Store, exclude: int | None = None) -> list[Staff]:
    """Active employees and managers of a store (possible assignees)."""
    query = (
        Staff.select()
        .join(StaffStore)
        .where(
            StaffStore.store == store.id,
            Staff.active == True,  # noqa: E712
            Staff.role.in_(("employee", "manager")),
        )
        .order_by(Staff.name, Staff.id)
    )
    if exclude:
        query = query.where(Staff.id != exclude)
    return list(query)


def hand_over(
    ids: list[int], store: Store, target: str, by: Staff | None, now: datetime, exclude=None
) -> int:
    """Reassign follow-ups to one person, the manager queue or round-robin over the store."""
    if not ids:
        return 0
    if target == "queue":
        return _chunked(ids, None, by, now)
    if target == "round_robin":
        people = [s for s in store_employees(store, exclude) if s.role == "employee"]
        if not people:
            raise SettingsError({"target": _l("This store has no other active employee.")})
        moved = 0
        for i, person in enumerate(people):
            moved += _chunked(ids[i :: len(people)], person, by, now)
        return moved
    person = None
    if str(target).isdigit():
        person = next((s for s in store_employees(store, exclude) if s.id == int(target)), None)
    if person is None:
        raise SettingsError({"target": _l("Choose who gets the follow-ups.")})
    return _chunked(ids, person, by, now)


def _chunked(ids: list[int], person: Staff | None, by: Staff | None, now: datetime) -> int:
    moved = 0
    for i in range(0, len(ids), 500):
        moved += followup_service.reassign(ids[i : i + 500], person, now, by)
    return moved


def save_staff(
    form: dict,
    by: Staff,
    allowed_store_ids: list[int],
    now: datetime,
    person: Staff | None = None,
) -> tuple[Staff, str | None]:
    """Create or update a staff member (name, email, role, stores); audited.

    Owners may do anything; a manager only employees, only in the manager's own stores, and
    never creates owners or managers. Answers the staff member and a new password if created.
    """
    from app.services import auth

    errors: dict = {}
    name = " ".join(str(form.get("name", "")).split())
    email = str(form.get("email", "")).strip().lower()
    role = str(form.get("role", "employee"))
    store_ids = sorted({int(s) for s in _list(form, "stores") if str(s).isdigit()})
    if not name or len(name) > 200:
        errors["name"] = _l("Enter a name of 1 to 200 characters.")
    if not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", email):
        errors["email"] = _l("Enter an e-mail address.")
    elif (
        Staff.select()
        .where(Staff.email == email, Staff.id != (person.id if person else 0))
        .exists()
    ):
        errors["email"] = _l("Someone already signs in with this address.")
    allowed_roles = ("employee", "manager", "owner") if by.role == "owner" else ("employee",)
    if role not in allowed_roles:
        errors["role"] = _l("You cannot give this role.")
    if person is not None and by.role != "owner" and person.role != "employee":
        errors["role"] = _l("Only the owner can change a manager or an owner.")
    if role != "owner" and not store_ids:
        errors["stores"] = _l("Choose at least one store.")
    if any(s not in allowed_store_ids for s in store_ids):
        errors["stores"] = _l("You can only choose your own stores.")
    if errors:
        raise SettingsError(errors)
    password = None
    with db.atomic():
        if person is None:
            person, password = auth.create_staff(
                email, name, role, list(Store.select().where(Store.id.in_(store_ids)))
            )
            action = "staff.created"
        else:
            person.name, person.email, person.role = name, email, role
            person.save()
            StaffStore.delete().where(
                StaffStore.staff == person.id,
                StaffStore.store.in_(allowed_store_ids),
                StaffStore.store.not_in(store_ids),
            ).execute()
            for sid in store_ids:
                StaffStore.get_or_create(staff=person.id, store=sid)
            action = "staff.updated"
        for sid in store_ids or allowed_store_ids[:1]:
            audit.record(
                by,
                sid,
                action,
                "staff",
                person.id,
                {"name": name, "email": email, "role": role, "stores": store_ids},
                now,
            )
    return person, password


def _list(form, name: str) -> list:
    if hasattr(form, "getlist"):
        return form.getlist(name)
    value = form.get(name) or []
    return value if isinstance(value, list) else [value]
