"""The outbox: claim, send, retry, reconcile; consent, quiet hours, rate limits and quotas.

State machine: queued → sending → sent → delivered → read, or failed / suppressed / withdrawn.
A message is claimed by a committed conditional UPDATE (status queued → sending) before any
provider is called, so two senders can never both send it.

A crash (or a lost answer) between the provider call and our update leaves a message in
`sending`. Just before the provider call a committed `dispatch` history row is written, so
`reconcile` (messages in `sending` longer than the lease) queues again, safely, a message that
was claimed but never handed over. For one that was handed over: where the provider makes a
resend harmless (LINE's X-Line-Retry-Key, our signed webhook's idempotency key, log-only) the
message goes back to the queue and is resent with the same key; for the others (WhatsApp, SMS,
SMTP: no lookup by our reference, no idempotent resend) it is marked failed with an "unknown:"
error and the store's managers get a notice — never re-sent blindly. A later provider status
webhook (WhatsApp echoes our key in biz_opaque_callback_data) still moves it to
sent / delivered / read.
"""

import json
import logging
import random
import time
from collections import Counter
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from zoneinfo import ZoneInfo

from itsdangerous import BadSignature, URLSafeSerializer
from peewee import JOIN, Case, fn

from app.db import db, is_postgres
from app.models import (
    ChannelSetting,
    Consent,
    Customer,
    Message,
    MessageStatusChange,
    Notice,
    Plan,
    Staff,
    StaffStore,
    Store,
)
from app.models.customers import CHANNELS as CONSENT_CHANNELS
from app.services import channels, message_templates, secrets_box
from app.services.channels import PermanentError, TransientError, UnknownOutcome

log = logging.getLogger(__name__)

RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "read": 4}
TIMESTAMP = {
    "sending": "sending_at",
    "sent": "sent_at",
    "delivered": "delivered_at",
    "read": "read_at",
    "failed": "failed_at",
    "suppressed": "closed_at",
    "withdrawn": "closed_at",
}
MAX_ATTEMPTS = 8
BACKOFF_BASE = 30.0  # seconds before the first retry
BACKOFF_CAP = 6 * 3600.0
DEFAULT_LEASE = timedelta(minutes=10)
# Claimed a chunk at a time: parallel senders interleave, and a crash strands few messages.
CLAIM_CHUNK = 200
DEFAULT_ORDER = ["whatsapp", "line", "sms", "email", "webhook", "followup"]
STOP_WORDS = {"stop", "退订", "退訂", "ยกเลิก", "berhenti", "unsubscribe"}
UNKNOWN_PREFIX = "unknown: "


# ---------------------------------------------------------------- channel settings


def channel_setting(store_id: int, channel: str) -> ChannelSetting | None:
    """The store's setting for a channel (e-mail falls back to SMTP_URL from the environment)."""
    setting = ChannelSetting.get_or_none(
        (ChannelSetting.store == store_id) & (ChannelSetting.channel == channel)
    )
    if setting is None and channel == "email" and _smtp_url():
        setting, _ = ChannelSetting.get_or_create(
            store=store_id,
            channel="email",
            defaults={"enabled": True, "config": {}},
        )
    return setting


def _smtp_url() -> str | None:
    try:
        from flask import current_app

        return current_app.config.get("SMTP_URL")
    except RuntimeError:
        import os

        return os.environ.get("SMTP_URL")


def public_url() -> str:
    """The app's public base URL for links in messages and provider callbacks."""
    import os

    try:
        from flask import current_app

        value = current_app.config.get("PUBLIC_URL")
    except RuntimeError:
        value = None
    return (value or os.environ.get("REVISIT_PUBLIC_URL") or "http://localhost:8000").rstrip("/")


def configure_channel(
    store: Store,
    channel: str,
    now: datetime,
    enabled: bool,
    config: dict,
    secrets: dict,
    per_second: int | None = None,
    daily_quota: int | None = None,
) -> ChannelSetting:
    """Save a store's channel settings; blank secret fields keep the stored value."""
    if channel not in channels.CHANNEL_NAMES:
        raise ValueError(f"unknown channel {channel!r}")
    setting = ChannelSetting.get_or_none(
        (ChannelSetting.store == store.id) & (ChannelSetting.channel == channel)
    ) or ChannelSetting(store=store.id, channel=channel)
    stored = secrets_box.decrypt(setting.secret)
    for key, value in (secrets or {}).items():
        if value not in (None, ""):
            stored[key] = value
    setting.secret = secrets_box.encrypt(stored)
    setting.config = {k: v for k, v in (config or {}).items() if v not in (None, "")}
    setting.enabled = bool(enabled)
    if per_second is not None:
        setting.per_second = max(1, int(per_second))
    setting.daily_quota = daily_quota
    setting.updated_at = now
    setting.save()
    return setting


def masked_secrets(setting: ChannelSetting) -> dict:
    """The stored credentials with all but their last 4 characters hidden."""
    return {k: secrets_box.mask(v) for k, v in secrets_box.decrypt(setting.secret).items()}


def adapter_for(setting: ChannelSetting) -> channels.Adapter:
    """The provider adapter built from a channel setting."""
    cls = channels.get_adapter(setting.channel)
    return cls(setting.config or {}, secrets_box.decrypt(setting.secret))


# ---------------------------------------------------------------- consent and channel choice


def has_consent(customer: Customer, channel: str) -> bool:
    """Whether the customer may be messaged on this channel right now."""
    query = Consent.select().where(Consent.customer == customer.id, Consent.granted == True)  # noqa: E712
    if channel in CONSENT_CHANNELS:
        if channel in ("whatsapp", "sms") and customer.phone_flagged_at is not None:
            return False
        return query.where(Consent.channel == channel).exists()
    # A webhook or the demo log reaches the customer through some channel they agreed to.
    return query.exists()


def _reachable(customer: Customer, store: Store, channel: str) -> bool:
    if channel == "followup":
        return True
    setting = channel_setting(store.id, channel)
    if setting is None or not setting.enabled:
        return False
    if not channels.get_adapter(channel).address(customer):
        return False
    return has_consent(customer, channel)


def choose_channel(customer: Customer, store: Store, preferred: str | None = None) -> str | None:
    """The first reachable channel: preferred first, then the store's `channel_order`.

    Answers "followup" when no message channel is reachable and the order includes it,
    None when nothing is.
    """
    order = list(store.setting("channel_order", DEFAULT_ORDER) or DEFAULT_ORDER)
    if preferred and preferred != "auto":
        order = [preferred] + [c for c in order if c != preferred]
    messaging_order = [c for c in order if c != "followup"]
    for channel in messaging_order:
        if channel in channels.CHANNEL_NAMES and _reachable(customer, store, channel):
            return channel
    return "followup" if "followup" in order else None


def record_choice(message: Message, order: list[str] | None, now: datetime) -> None:
    """Record why a message went out on its channel (the choice is part of its history)."""
    MessageStatusChange.create(
        message=message.id,
        status=message.status,
        detail={"chosen_channel": message.channel, "order": order or []},
        at=now,
    )


# ---------------------------------------------------------------- transitions


def _move(
    message_id: int,
    to_status: str,
    now: datetime,
    from_statuses: tuple,
    detail: dict | None = None,
    **fields,
) -> bool:
    """One conditional transition with its timestamp and history row; False if it lost."""
    values = dict(fields)
    values["status"] = to_status
    stamp = TIMESTAMP.get(to_status)
    if stamp:
        values[stamp] = now
    if to_status in ("delivered", "read"):
        values["sent_at"] = fn.COALESCE(Message.sent_at, now)
    if to_status == "read":
        values["delivered_at"] = fn.COALESCE(Message.delivered_at, now)
    with db.atomic():
        rows = (
            Message.update(**values)
            .where(Message.id == message_id, Message.status.in_(from_statuses))
            .execute()
        )
        if rows:
            MessageStatusChange.create(message=message_id, status=to_status, detail=detail, at=now)
    return bool(rows)


def claim(message_id: int, now: datetime) -> bool:
    """Claim one queued message for sending (a committed conditional UPDATE)."""
    with db.atomic():
        rows = (
            Message.update(status="sending", sending_at=now, attempts=Message.attempts + 1)
            .where(Message.id == message_id, Message.status == "queued")
            .execute()
        )
        if rows:
            MessageStatusChange.create(message=message_id, status="sending", at=now)
    return bool(rows)


def _backoff(attempts: int, retry_after: float | None) -> float:
    delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, attempts - 1))
    delay = random.uniform(delay / 2, delay)
    if retry_after:
        delay = max(delay, retry_after)
    return delay


# ---------------------------------------------------------------- sending one message


def _outgoing(message: Message, customer: Customer, store: Store, to: str) -> channels.Outgoing:
    template = {}
    if message.plan_id:
        template = message_templates.outgoing_template(message, customer, store)
    unsubscribe = ""
    if message.channel == "email":
        unsubscribe = f"{public_url()}/u/{unsubscribe_token(customer.id, 'email')}"
    callback = ""
    if message.channel == "sms":
        callback = f"{public_url()}/hooks/twilio/{store.key}/status"
    elif message.channel == "webhook":
        callback = f"{public_url()}/hooks/webhook/{store.key}"
    return channels.Outgoing(
        message_id=message.id,
        idempotency_key=message.idempotency_key,
        to=to,
        body=message.body,
        subject=message.subject or "",
        customer_name=customer.name,
        locale=customer.locale or store.locale or "en",
        unsubscribe_url=unsubscribe,
        status_callback_url=callback,
        template=template,
    )


class _Batch:
    """What a run of deliveries shares: stores, settings, adapters and consents, loaded once."""

    def __init__(self, ids: list[int]):
        self.messages = {m.id: m for m in Message.select().where(Message.id.in_(ids))}
        customer_ids = list({m.customer_id for m in self.messages.values()})
        self.customers = {c.id: c for c in Customer.select().where(Customer.id.in_(customer_ids))}
        self.consents = {
            (c.customer_id, c.channel)
            for c in Consent.select(Consent.customer, Consent.channel).where(
                Consent.customer.in_(customer_ids),
                Consent.granted == True,  # noqa: E712
            )
        }
        self.reachable = {customer_id for customer_id, _channel in self.consents}
        self.stores: dict[int, Store] = {}
        self.settings: dict[tuple[int, str], tuple] = {}

    def store(self, store_id: int) -> Store:
        if store_id not in self.stores:
            self.stores[store_id] = Store.get_by_id(store_id)
        return self.stores[store_id]

    def setting(self, store_id: int, channel: str) -> tuple:
        key = (store_id, channel)
        if key not in self.settings:
            setting = channel_setting(store_id, channel)
            usable = setting is not None and setting.enabled
            self.settings[key] = (setting, adapter_for(setting) if usable else None)
        return self.settings[key]

    def consented(self, customer: Customer, channel: str) -> bool:
        if channel in CONSENT_CHANNELS:
            if channel in ("whatsapp", "sms") and customer.phone_flagged_at is not None:
                return False
            return (customer.id, channel) in self.consents
        return customer.id in self.reachable


def _table(model) -> str:
    return f'"{model._meta.table_name}"'


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def _mark_dispatched(message_id: int, channel: str, now: datetime) -> None:
    """The committed 'about to call the provider' marker, recording the channel used.

    Hand-written SQL: it runs once per message on the hot path.
    """
    p = db.param
    db.execute_sql(
        f"INSERT INTO {_table(MessageStatusChange)} (message_id, status, detail, at) "
        f"VALUES ({p}, {p}, {p}, {p})",
        (message_id, "dispatch", json.dumps({"channel": channel}), _naive(now)),
    )


def _mark_sent(message_id: int, now: datetime, provider_id: str, to: str, detail) -> bool:
    """sending → sent with its history row, in one transaction; False if a webhook was first."""
    p = db.param
    with db.atomic():
        cursor = db.execute_sql(
            f"UPDATE {_table(Message)} SET status = 'sent', sent_at = {p}, "
            f"provider_message_id = {p}, to_address = {p}, error = '' "
            f"WHERE id = {p} AND status = 'sending'",
            (_naive(now), provider_id, to[:254], message_id),
        )
        moved = cursor.rowcount
        if moved:
            db.execute_sql(
                f"INSERT INTO {_table(MessageStatusChange)} (message_id, status, detail, at) "
                f"VALUES ({p}, {p}, {p}, {p})",
                (message_id, "sent", MessageStatusChange.detail.db_value(detail), _naive(now)),
            )
    return bool(moved)


def deliver(message_id: int, now: datetime, batch: "_Batch | None" = None) -> str:
    """Send a message already claimed (status sending); answer the outcome."""
    batch = batch or _Batch([message_id])
    message = batch.messages.get(message_id)
    if message is None or message.status != "sending":
        return "skipped"
    customer = batch.customers[message.customer_id]
    store = batch.store(message.store_id)
    if not batch.consented(customer, message.channel):
        _move(
            message.id,
            "suppressed",
            now,
            ("sending",),
            {"reason": "no consent at send time"},
            error="no consent at send time",
        )
        return "suppressed"
    _setting, adapter = batch.setting(store.id, message.channel)
    if adapter is None:
        reason = f"channel {message.channel} is not configured for this store"
        _move(message.id, "failed", now, ("sending",), {"reason": reason}, error=reason)
        notify_managers(store, f"Messages could not be sent: {reason}.", now)
        return "failed"
    to = message.to_address or adapter.address(customer)
    if not to:
        reason = f"no {message.channel} address"
        _move(message.id, "suppressed", now, ("sending",), {"reason": reason}, error=reason)
        return "suppressed"
    outgoing = _outgoing(message, customer, store, to)
    # Committed before the call: reconcile can tell "never called" from "maybe delivered".
    _mark_dispatched(message.id, message.channel, now)
    try:
        result = adapter.send(outgoing)
    except TransientError as exc:
        return _retry_later(message, now, exc)
    except UnknownOutcome as exc:
        if adapter.idempotent_retry:
            return _retry_later(message, now, exc)
        error = f"{UNKNOWN_PREFIX}{exc}"[:500]
        _move(
            message.id, "failed", now, ("sending",), {"code": exc.code, "error": error}, error=error
        )
        notify_managers(
            store,
            "A message may or may not have reached the client (the provider did not answer); "
            "it was not re-sent. See failed messages marked 'unknown'.",
            now,
        )
        return "unknown"
    except PermanentError as exc:
        error = f"{exc.code}: {exc}"[:500] if exc.code else str(exc)[:500]
        _move(
            message.id,
            "failed",
            now,
            ("sending",),
            {"code": exc.code, "error": str(exc)[:300], "flag": exc.flag},
            error=error,
        )
        _flag_customer(customer, message.channel, exc, now)
        if not exc.flag:
            notify_managers(store, f"{message.channel} rejected a message: {error}", now)
        return "failed"
    if not _mark_sent(message.id, now, result.provider_message_id, to, result.detail or None):
        # A status webhook got here first (it knew our key); keep its status, add the id.
        Message.update(provider_message_id=result.provider_message_id).where(
            Message.id == message.id
        ).execute()
    return "sent"


def _retry_later(message: Message, now: datetime, exc: Exception) -> str:
    attempts = message.attempts
    code = getattr(exc, "code", "")
    if attempts >= MAX_ATTEMPTS:
        error = f"gave up after {attempts} attempts: {exc}"[:500]
        _move(message.id, "failed", now, ("sending",), {"code": code, "error": error}, error=error)
        return "failed"
    delay = _backoff(attempts, getattr(exc, "retry_after", None))
    next_at = now + timedelta(seconds=delay)
    _move(
        message.id,
        "queued",
        now,
        ("sending",),
        {"retry_in": round(delay, 1), "code": code, "error": str(exc)[:300]},
        next_attempt_at=next_at,
        error=f"retrying: {exc}"[:500],
    )
    return "retry"


def _flag_customer(customer: Customer, channel: str, exc: PermanentError, now: datetime) -> None:
    if exc.flag == "phone":
        Customer.update(phone_flagged_at=now).where(Customer.id == customer.id).execute()
        customer.phone_flagged_at = now
        suppress_for_opt_out(customer, now, channel="whatsapp", reason="phone number invalid")
        suppress_for_opt_out(customer, now, channel="sms", reason="phone number invalid")
    elif exc.flag == "consent" and channel in CONSENT_CHANNELS:
        opt_out(customer, channel, f"provider:{exc.code}"[:40], now)


def send_message(message_id: int, now: datetime) -> str:
    """Claim and send one message now (within its channel's rate limit and quota)."""
    message = Message.get_or_none(Message.id == message_id)
    if message is None or message.status != "queued":
        return "skipped"
    store = Store.get_by_id(message.store_id)
    quiet_end = quiet_hours_end(store, now)
    if quiet_end is not None:
        Message.update(next_attempt_at=quiet_end, error="waiting for quiet hours to end").where(
            Message.id == message_id, Message.status == "queued"
        ).execute()
        return "deferred"
    claimed, _wait = _claim_batch(store, message.channel, now, 1, only_id=message_id)
    if not claimed:
        return "limited"
    return deliver(claimed[0], now)


# ---------------------------------------------------------------- quiet hours


def _parse_hhmm(value: str, default: str) -> dtime:
    try:
        hours, minutes = (value or default).split(":")
        return dtime(int(hours), int(minutes))
    except ValueError:
        hours, minutes = default.split(":")
        return dtime(int(hours), int(minutes))


def quiet_hours_end(store: Store, now: datetime) -> datetime | None:
    """When the store's quiet hours end (UTC) if `now` falls inside them, else None."""
    tz = ZoneInfo(store.timezone)
    start = _parse_hhmm(store.quiet_start, "21:00")
    end = _parse_hhmm(store.quiet_end, "09:00")
    if start == end:
        return None
    local = now.astimezone(tz)
    t = local.time().replace(tzinfo=None)
    if start > end:  # spans midnight
        if t >= start:
            end_day = local.date() + timedelta(days=1)
        elif t < end:
            end_day = local.date()
        else:
            return None
    else:
        if not (start <= t < end):
            return None
        end_day = local.date()
    return _local_instant(end_day, end, tz)


def _local_instant(day: date, at: dtime, tz: ZoneInfo) -> datetime:

    candidate = datetime.combine(day, at, tzinfo=tz)
    # A wall time skipped by a DST change does not exist; take the instant just after the gap.
    roundtrip = candidate.astimezone(UTC).astimezone(tz)
    if roundtrip.replace(tzinfo=None) != candidate.replace(tzinfo=None):
        candidate = candidate.replace(fold=1)
    return candidate.astimezone(UTC)


def defer_quiet_hours(now: datetime) -> int:
    """Move due messages of stores now in quiet hours to the end of those hours."""
    store_ids = [row.store_id for row in Message.select(Message.store).where(_due(now)).distinct()]
    moved = 0
    for store in Store.select().where(Store.id.in_(store_ids)):
        end = quiet_hours_end(store, now)
        if end is None:
            continue
        moved += (
            Message.update(next_attempt_at=end, error="waiting for quiet hours to end")
            .where(_due(now), Message.store == store.id)
            .execute()
        )
    return moved


def _due(now: datetime):
    return (Message.status == "queued") & (
        Message.next_attempt_at.is_null() | (Message.next_attempt_at <= now)
    )


# ---------------------------------------------------------------- rate limits and quotas


def _local_day_bounds(store: Store, now: datetime) -> tuple[datetime, datetime]:
    tz = ZoneInfo(store.timezone)
    day = now.astimezone(tz).date()
    return _local_instant(day, dtime(0, 0), tz), _local_instant(
        day + timedelta(days=1), dtime(0, 0), tz
    )


def quota_state(store: Store, channel: str, now: datetime) -> dict | None:
    """Today's use of a channel's daily quota: {quota, used, left}, or None without a quota."""
    setting = ChannelSetting.get_or_none(
        (ChannelSetting.store == store.id) & (ChannelSetting.channel == channel)
    )
    if setting is None or not setting.daily_quota:
        return None
    start, end = _local_day_bounds(store, now)
    used = (
        Message.select()
        .where(
            Message.store == store.id,
            Message.channel == channel,
            Message.sending_at >= start,
            Message.sending_at < end,
        )
        .count()
    )
    return {"quota": setting.daily_quota, "used": used, "left": max(0, setting.daily_quota - used)}


@contextmanager
def _channel_lock(setting: ChannelSetting | None):
    """Serialise claims for one store × channel across every process (row lock / write lock)."""
    if is_postgres():
        with db.atomic():
            if setting is not None and setting.id:
                list(
                    ChannelSetting.select(ChannelSetting.id)
                    .where(ChannelSetting.id == setting.id)
                    .for_update()
                )
            yield
    else:
        with db.atomic(lock_type="IMMEDIATE"):
            yield


def _claim_batch(
    store: Store, channel: str, now: datetime, want: int, only_id: int | None = None
) -> tuple[list[int], float | None]:
    """Claim up to `want` due messages within the rate limit and daily quota.

    Answers the claimed ids and, when the rate limit held some back, the seconds to wait.
    """
    setting = channel_setting(store.id, channel)
    per_second = max(1, setting.per_second if setting is not None else 3)
    exhausted = False
    claimed: list[int] = []
    wait = None
    with _channel_lock(setting):
        recent_times = [
            r.sending_at
            for r in Message.select(Message.sending_at)
            .where(
                Message.store == store.id,
                Message.channel == channel,
                Message.sending_at > now - timedelta(seconds=1),
                Message.sending_at <= now,
            )
            .order_by(Message.sending_at)
        ]
        capacity = per_second - len(recent_times)
        if setting is not None and setting.daily_quota:
            left = quota_state(store, channel, now)["left"]
            exhausted = left <= 0
            capacity = min(capacity, left)
        if not exhausted and capacity <= 0:
            wait = max(0.01, (recent_times[0] + timedelta(seconds=1) - now).total_seconds())
        elif not exhausted:
            query = Message.select(Message.id).where(
                _due(now), Message.store == store.id, Message.channel == channel
            )
            if only_id is not None:
                query = query.where(Message.id == only_id)
            ids = [
                m.id
                for m in query.order_by(Message.created_at, Message.id).limit(min(capacity, want))
            ]
            p = db.param
            claim_sql = (
                f"UPDATE {_table(Message)} SET status = 'sending', sending_at = {p}, "
                f"attempts = attempts + 1 WHERE id = {p} AND status = 'queued'"
            )
            at = _naive(now)
            for message_id in ids:
                if db.execute_sql(claim_sql, (at, message_id)).rowcount:
                    claimed.append(message_id)
            if claimed:
                MessageStatusChange.insert_many(
                    [{"message": i, "status": "sending", "at": now} for i in claimed]
                ).execute()
    if exhausted:
        _quota_exhausted(store, channel, now)
    return claimed, wait


def _quota_exhausted(store: Store, channel: str, now: datetime) -> None:
    """Keep the channel's due messages queued until tomorrow, with the reason, and warn."""
    _start, tomorrow = _local_day_bounds(store, now)
    waiting = (
        Message.update(
            next_attempt_at=tomorrow, error=f"daily quota for {channel} reached; waiting"
        )
        .where(_due(now), Message.store == store.id, Message.channel == channel)
        .execute()
    )
    if waiting:
        notify_managers(
            store,
            f"The daily {channel} quota is used up: {waiting} message(s) wait until tomorrow.",
            now,
            dedupe_prefix=f"The daily {channel} quota is used up",
        )


def notify_managers(
    store: Store, text: str, now: datetime, dedupe_prefix: str | None = None
) -> int:
    """A Notice to the store's managers and the owners, at most once a day per text."""
    managers = list(
        Staff.select(Staff.id)
        .join(StaffStore, JOIN.LEFT_OUTER)
        .where(
            Staff.active == True,  # noqa: E712
            (Staff.role == "owner") | ((Staff.role == "manager") & (StaffStore.store == store.id)),
        )
        .distinct()
    )
    prefix = dedupe_prefix or text
    sent = 0
    for staff in managers:
        exists = (
            Notice.select()
            .where(
                Notice.staff == staff.id,
                Notice.store == store.id,
                Notice.text.startswith(prefix),
                Notice.created_at > now - timedelta(days=1),
            )
            .exists()
        )
        if not exists:
            Notice.create(
                staff=staff.id, store=store.id, text=text, url="/messages", created_at=now
            )
            sent += 1
    return sent


# ---------------------------------------------------------------- the drain


def send_due(now: datetime, limit: int = 10000, max_seconds: float = 50.0) -> dict:
    """Claim and send everything due at `now` within quiet hours, rate limits and quotas.

    When a rate limit holds messages back, waits for the window (real time, added to `now`)
    for at most `max_seconds`; what is left stays queued for the next tick.
    """
    summary: Counter = Counter()
    summary["deferred"] += defer_quiet_hours(now)
    started = time.monotonic()
    stores = {}
    current = now
    while summary["claimed"] < limit:
        groups = list(
            Message.select(Message.store, Message.channel).where(_due(current)).distinct().tuples()
        )
        if not groups:
            break
        waits = []
        progressed = False
        for store_id, channel in groups:
            store = stores.get(store_id) or stores.setdefault(store_id, Store.get_by_id(store_id))
            if quiet_hours_end(store, current) is not None:
                continue
            want = min(CLAIM_CHUNK, limit - summary["claimed"])
            claimed, wait = _claim_batch(store, channel, current, want)
            summary["claimed"] += len(claimed)
            for start in range(0, len(claimed), 500):
                chunk = claimed[start : start + 500]
                batch = _Batch(chunk)
                for message_id in chunk:
                    summary[deliver(message_id, current, batch)] += 1
            progressed = progressed or bool(claimed)
            if wait:
                waits.append(wait)
            if summary["claimed"] >= limit:
                break
        if progressed:
            continue
        if not waits:
            break
        pause = min(waits)
        if time.monotonic() - started + pause > max_seconds:
            summary["rate_limited"] += 1
            break
        time.sleep(pause)
        current = now + timedelta(seconds=time.monotonic() - started)
    return dict(summary)


def reconcile(now: datetime, lease: timedelta = DEFAULT_LEASE) -> dict:
    """Settle messages stuck in `sending` longer than the lease (see the module docstring)."""
    summary: Counter = Counter()
    stuck = Message.select().where(Message.status == "sending", Message.sending_at < now - lease)
    for message in stuck:
        adapter_cls = channels.get_adapter(message.channel)
        last = (
            MessageStatusChange.select(MessageStatusChange.status)
            .where(
                MessageStatusChange.message == message.id,
                MessageStatusChange.status.in_(("sending", "dispatch")),
            )
            .order_by(MessageStatusChange.id.desc())
            .first()
        )
        if last is not None and last.status == "sending":
            # Claimed, but the provider was never called: sending it now cannot double it.
            if _move(
                message.id,
                "queued",
                now,
                ("sending",),
                {"reconciled": "claimed but never handed to the provider"},
                next_attempt_at=now,
                error="resending after an interrupted batch",
            ):
                summary["requeued"] += 1
            continue
        if adapter_cls.idempotent_retry:
            if _move(
                message.id,
                "queued",
                now,
                ("sending",),
                {"reconciled": "resend with the same idempotency key"},
                next_attempt_at=now,
                error="resending after an interrupted send",
            ):
                summary["requeued"] += 1
            continue
        error = f"{UNKNOWN_PREFIX}the sender stopped during the provider call; not re-sent"
        if _move(message.id, "failed", now, ("sending",), {"reconciled": "unknown"}, error=error):
            summary["unknown"] += 1
            notify_managers(
                Store.get_by_id(message.store_id),
                "A message may or may not have reached the client (the sender stopped "
                "mid-send); it was not re-sent. See failed messages marked 'unknown'.",
                now,
            )
    return dict(summary)


# ---------------------------------------------------------------- provider status and replies


def apply_status(
    message: Message, status: str, now: datetime, detail: dict | None = None, error: str = ""
) -> bool:
    """Apply a provider's status; never moves backwards (read > delivered > sent)."""
    if status == "failed":
        allowed = ("sending", "sent")
        return _move(message.id, "failed", now, allowed, detail, error=error[:500] or "failed")
    if status not in RANK or RANK[status] < RANK["sent"]:
        return False
    allowed = tuple(s for s, r in RANK.items() if 1 <= r < RANK[status])
    moved = _move(message.id, status, now, allowed, detail)
    if (
        not moved
        and message.status == "failed"
        and (message.error or "").startswith(UNKNOWN_PREFIX)
    ):
        # The provider did get it after all: an "unknown" failure is settled by its status.
        moved = _move(message.id, status, now, ("failed",), detail, error="")
    return moved


def find_message(store: Store, provider_id: str | None, key: str | None) -> Message | None:
    """A store's message by the provider's id or by our idempotency key."""
    if key:
        found = Message.get_or_none((Message.store == store.id) & (Message.idempotency_key == key))
        if found:
            return found
    if provider_id:
        return Message.get_or_none(
            (Message.store == store.id) & (Message.provider_message_id == provider_id)
        )
    return None


def is_stop_word(text: str | None) -> bool:
    """STOP / 退订 / 退訂 / ยกเลิก / BERHENTI (trimmed, any case)."""
    return (text or "").strip().casefold() in STOP_WORDS


def handle_reply(
    store: Store, channel: str, customer: Customer | None, text: str, provider: str, now: datetime
) -> dict:
    """An inbound reply: count it on the last message, and opt out on a stop word."""
    if customer is None:
        return {"matched": False}
    last = (
        Message.select()
        .where(
            Message.customer == customer.id,
            Message.channel == channel,
            Message.status.in_(("sent", "delivered", "read")),
        )
        .order_by(Message.sent_at.desc())
        .first()
    )
    if last is not None:
        MessageStatusChange.create(
            message=last.id, status="reply", detail={"text": (text or "")[:200]}, at=now
        )
    stopped = False
    if is_stop_word(text):
        opt_out(customer, channel, f"reply:{provider}", now)
        stopped = True
    return {"matched": True, "message": last.id if last else None, "opted_out": stopped}


# ---------------------------------------------------------------- opt-out


def opt_out(customer: Customer, channel: str, source: str, now: datetime, staff=None) -> int:
    """Switch one channel's consent off at once and suppress what is queued for it."""
    from app.services import customers as customer_service

    if channel in CONSENT_CHANNELS:
        customer_service.set_consent(customer, channel, False, source=source, now=now, staff=staff)
    return suppress_for_opt_out(customer, now, channel=channel)


def suppress_for_opt_out(
    customer: Customer, now: datetime, channel: str | None = None, reason: str = "opted out"
) -> int:
    """Turn the customer's queued messages (on one channel, or all) into suppressed."""
    where = (Message.customer == customer.id) & (Message.status == "queued")
    if channel:
        where &= Message.channel == channel
    ids = [m.id for m in Message.select(Message.id).where(where)]
    done = 0
    for message_id in ids:
        done += _move(message_id, "suppressed", now, ("queued",), {"reason": reason}, error=reason)
    return done


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(secrets_box.secret_key(), salt="revisit-unsubscribe")


def unsubscribe_token(customer_id: int, channel: str = "email") -> str:
    """A signed token naming the customer and channel for the no-login unsubscribe link."""
    return _serializer().dumps({"c": customer_id, "ch": channel})


def read_unsubscribe_token(token: str) -> tuple[int, str] | None:
    """(customer id, channel) from a token, or None when it was tampered with."""
    try:
        data = _serializer().loads(token)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("c"), int):
        return None
    if data.get("ch") not in CONSENT_CHANNELS:
        return None
    return data["c"], data["ch"]


# ---------------------------------------------------------------- reports


def plan_rates(store: Store, since: datetime | None = None) -> list[dict]:
    """Per plan: messages and their sent / delivered / read / failed / reply counts and rates."""
    replied = (
        MessageStatusChange.select(MessageStatusChange.message)
        .where(MessageStatusChange.status == "reply")
        .distinct()
    )
    where = Message.store == store.id
    if since is not None:
        where &= Message.created_at >= since

    def count_if(cond):
        return fn.SUM(Case(None, [(cond, 1)], 0))

    rows = (
        Message.select(
            Message.plan,
            fn.COUNT(Message.id).alias("total"),
            count_if(Message.sent_at.is_null(False)).alias("sent"),
            count_if(Message.delivered_at.is_null(False)).alias("delivered"),
            count_if(Message.read_at.is_null(False)).alias("read"),
            count_if(Message.status == "failed").alias("failed"),
            count_if(Message.id.in_(replied)).alias("replied"),
        )
        .where(where)
        .group_by(Message.plan)
        .dicts()
    )
    names = {p.id: p.name for p in Plan.select(Plan.id, Plan.name).where(Plan.store == store.id)}
    result = []
    for row in rows:
        total = row["total"] or 0
        sent = int(row["sent"] or 0)
        item = {
            "plan_id": row["plan"],
            "plan": names.get(row["plan"], "—"),
            "total": total,
            "sent": sent,
            "delivered": int(row["delivered"] or 0),
            "read": int(row["read"] or 0),
            "failed": int(row["failed"] or 0),
            "replied": int(row["replied"] or 0),
        }
        base = sent or 1
        for key in ("delivered", "read", "replied"):
            item[f"{key}_rate"] = item[key] / base if sent else 0.0
        item["failed_rate"] = item["failed"] / total if total else 0.0
        item["sent_rate"] = sent / total if total else 0.0
        result.append(item)
    return sorted(result, key=lambda r: r["plan"])


def quota_warnings(store: Store, now: datetime) -> list[dict]:
    """Channels whose daily quota is used up today (the messages page shows a banner)."""
    warnings = []
    for setting in ChannelSetting.select().where(
        ChannelSetting.store == store.id, ChannelSetting.daily_quota.is_null(False)
    ):
        state = quota_state(store, setting.channel, now)
        if state and state["left"] <= 0:
            waiting = (
                Message.select()
                .where(
                    Message.store == store.id,
                    Message.channel == setting.channel,
                    Message.status == "queued",
                )
                .count()
            )
            warnings.append({"channel": setting.channel, **state, "waiting": waiting})
    return warnings
