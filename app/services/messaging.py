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
import os
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
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
from app.services import channels, message_templates, notices, secrets_box
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
# Messages per second or minute; a store's own setting wins over the channel's default.
RATE_UNITS = {"second": 1, "minute": 60}
DEFAULT_RATE = (3, "second")
CHANNEL_DEFAULT_RATES = {
    "whatsapp": (80, "second"),  # Cloud API default throughput per business number
    "sms": (1, "second"),  # a long code (10DLC / international) sends about one a second
}
MAX_RATE = 100_000
UNLIMITED = 0  # rate_limit 0: no limit (a store's own sink; benchmarks)
# Meta's pair rate limit: one message to the same WhatsApp user every 6 seconds (131056).
RECIPIENT_INTERVAL = {"whatsapp": timedelta(seconds=6)}
KEEP = object()
# Provider calls of idempotent channels (LINE, webhook, log-only) made at once per batch.
SEND_THREADS = 8
_executor: ThreadPoolExecutor | None = None
_executor_pid = 0
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
        return os.environ.get("SMTP_URL")


def public_url() -> str:
    """The app's public base URL for links in messages and provider callbacks."""
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
    rate=KEEP,
) -> ChannelSetting:
    """Save a store's channel settings; blank secret fields keep the stored value.

    `rate` is (count, "second" | "minute"), or (None, unit) for the channel's default;
    `per_second=N` is short for rate=(N, "second"). Leaving both out keeps the stored rate.
    """
    if channel not in channels.CHANNEL_NAMES:
        raise ValueError(f"unknown channel {channel!r}")
    if per_second is not None:
        rate = (per_second, "second")
    if rate is not KEEP:
        rate = validate_rate(*rate)
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
    if rate is not KEEP:
        setting.rate_limit, setting.rate_unit = rate
    setting.daily_quota = daily_quota
    setting.updated_at = now
    setting.save()
    if setting.enabled:
        # A warning that the channel is missing no longer applies.
        resolve_notices(store.id, _not_configured_notice(channel), now)
    return setting


def _not_configured_notice(channel: str) -> str:
    return notices.not_configured(channel)


def validate_rate(count, unit: str = "second") -> tuple[int | None, str]:
    """(count or None, unit) checked: a whole number from 0 (no limit) to MAX_RATE per unit."""
    if unit not in RATE_UNITS:
        raise ValueError(f"rate unit must be second or minute, not {unit!r}")
    if count is None or count == "":
        return None, unit
    if isinstance(count, bool) or int(count) != count or not 0 <= int(count) <= MAX_RATE:
        raise ValueError(f"rate must be a whole number from 0 to {MAX_RATE}")
    return int(count), unit


def channel_limits_from_form(form) -> tuple[tuple[int | None, str], int | None, dict]:
    """The rate and daily quota typed into a channel form, and the errors per field.

    A blank rate means the channel's default; 0 is refused here (no limit is for own sinks).
    """
    from flask_babel import lazy_gettext as _l

    from app.services.settings import form_int

    errors: dict = {}
    unit = str(form.get("rate_unit") or "second").strip()
    if unit not in RATE_UNITS:
        errors["rate_unit"] = _l("Choose per second or per minute.")
        unit = "second"
    values = {"rate_limit": form.get("rate_limit", form.get("per_second", ""))}
    values["daily_quota"] = form.get("daily_quota", "")
    count = form_int(values, "rate_limit", errors, 1, MAX_RATE, blank_ok=True)
    quota = form_int(values, "daily_quota", errors, 1, 10_000_000, blank_ok=True)
    return (count, unit), quota, errors


def default_rate(channel: str) -> tuple[int, str]:
    """The channel's rate when the store has not set one (WhatsApp 80/s, SMS 1/s, else 3/s)."""
    return CHANNEL_DEFAULT_RATES.get(channel, DEFAULT_RATE)


def effective_rate(setting: ChannelSetting | None, channel: str) -> tuple[int, str]:
    """(count, unit) in force: the store's own setting, else the channel's default."""
    if setting is not None and setting.rate_limit is not None:
        return setting.rate_limit, setting.rate_unit or "second"
    return default_rate(channel)


ORDER_CHOICES = ("whatsapp", "line", "sms", "email", "webhook", "log_only", "followup")


def set_channel_order(store: Store, order: list[str], staff, now: datetime) -> dict:
    """Save the store's fallback order (blanks skipped); answers the errors, empty when saved."""
    from flask_babel import lazy_gettext as _l

    from app.services import audit

    chosen = [c for c in (str(x or "").strip() for x in order) if c]
    if any(c not in ORDER_CHOICES for c in chosen):
        return {"channel_order": _l("Choose channels from the list.")}
    if len(set(chosen)) != len(chosen):
        return {"channel_order": _l("Each channel can appear only once.")}
    if not chosen:
        return {"channel_order": _l("Choose at least one channel.")}
    before = list(store.setting("channel_order", DEFAULT_ORDER) or DEFAULT_ORDER)
    if chosen != before:
        store.settings = {**(store.settings or {}), "channel_order": chosen}
        with db.atomic():
            store.save()
            audit.record(
                staff, store, "channel.order", "store", store.id, {"order": [before, chosen]}, now
            )
    return {}


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


def enabled_channels(store_id: int) -> list[str]:
    """The channels the store has set up and switched on (e-mail also through SMTP_URL)."""
    rows = dict(
        ChannelSetting.select(ChannelSetting.channel, ChannelSetting.enabled)
        .where(ChannelSetting.store == store_id)
        .tuples()
    )
    enabled = [c for c in channels.CHANNEL_NAMES if rows.get(c)]
    if "email" not in rows and _smtp_url():
        enabled.append("email")
    return enabled


def sending_order(
    store: Store, named: str | None, enabled: list[str], fallback: bool = False
) -> list[str]:
    """The channels a message may go out on, in order: the named channel (then, with
    `fallback`, the store's fallback order), else the store's fallback order — only those
    switched on. The log-only channel stands in while no real channel is on, and is never
    the default once one is."""
    order = [
        c
        for c in (store.setting("channel_order", DEFAULT_ORDER) or DEFAULT_ORDER)
        if c in channels.CHANNEL_NAMES
    ]
    named = named if named and named != "auto" else None
    if named:
        order = [named] + ([c for c in order if c != named] if fallback else [])
    usable = [c for c in order if c in enabled]
    if any(c != "log_only" for c in enabled):
        return [c for c in usable if c != "log_only" or c == named]
    if "log_only" in enabled and "log_only" not in usable and (fallback or not named):
        usable.append("log_only")
    return usable


def no_channel_reason(named: str | None, enabled: list[str]) -> str:
    """Why a message has no channel to go out on (English: the why-log's wording)."""
    if named and named != "auto":
        return f"channel {named} is not set up for this store"
    if enabled:
        return "no channel in the store's fallback order is switched on"
    return "no message channel is set up for this store"


def choose_channel(customer: Customer, store: Store, preferred: str | None = None) -> str | None:
    """The first reachable channel: preferred first, then the store's `channel_order`.

    Answers "followup" when no message channel is reachable and the order includes it,
    None when nothing is.
    """
    enabled = enabled_channels(store.id)
    for channel in sending_order(store, preferred, enabled, fallback=True):
        if _reachable(customer, store, channel):
            return channel
    order = store.setting("channel_order", DEFAULT_ORDER) or DEFAULT_ORDER
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


def _mark_dispatched(pairs: list[tuple[int, str]], now: datetime) -> None:
    """The committed 'about to call the provider' markers (message id, channel), in one commit.

    Hand-written SQL: it is on the hot path.
    """
    p = db.param
    at = _naive(now)
    rows = [(message_id, "dispatch", json.dumps({"channel": ch}), at) for message_id, ch in pairs]
    with db.atomic():
        db.cursor().executemany(
            f"INSERT INTO {_table(MessageStatusChange)} (message_id, status, detail, at) "
            f"VALUES ({p}, {p}, {p}, {p})",
            rows,
        )


def _mark_sent(results: list[tuple[int, str, str, dict | None]], now: datetime) -> set[int]:
    """sending → sent for (id, provider id, address, detail) rows, with their history rows, in
    one transaction; answers the ids moved (a status webhook may have been first for others)."""
    if not results:
        return set()
    p = db.param
    at = _naive(now)
    values = ", ".join(f"({p}, {p}, {p})" for _ in results)
    params: list = [at]
    for message_id, provider_id, to, _detail in results:
        params += [message_id, provider_id, to[:254]]
    table = _table(Message)
    with db.atomic():
        moved = {
            row[0]
            for row in db.execute_sql(
                f"UPDATE {table} SET status = 'sent', sent_at = {p}, "
                "provider_message_id = v.column2, to_address = v.column3, error = '' "
                f"FROM (VALUES {values}) AS v WHERE {table}.id = v.column1 "
                f"AND {table}.status = 'sending' RETURNING {table}.id",
                params,
            ).fetchall()
        }
        history = [
            (message_id, "sent", MessageStatusChange.detail.db_value(detail), at)
            for message_id, _pid, _to, detail in results
            if message_id in moved
        ]
        if history:
            db.cursor().executemany(
                f"INSERT INTO {_table(MessageStatusChange)} (message_id, status, detail, at) "
                f"VALUES ({p}, {p}, {p}, {p})",
                history,
            )
    late = [(pid, mid) for mid, pid, _to, _d in results if mid not in moved]
    for provider_id, message_id in late:
        # A status webhook got here first (it knew our key); keep its status, add the id.
        Message.update(provider_message_id=provider_id).where(Message.id == message_id).execute()
    return moved


def _prepare(message: Message, batch: "_Batch", now: datetime):
    """Checks before the provider call: an outcome string, or (adapter, outgoing) to send."""
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
        notify_managers(store, _not_configured_notice(message.channel), now)
        return "failed"
    to = message.to_address or adapter.address(customer)
    if not to:
        reason = f"no {message.channel} address"
        _move(message.id, "suppressed", now, ("sending",), {"reason": reason}, error=reason)
        return "suppressed"
    return adapter, _outgoing(message, customer, store, to)


def _call(
    message: Message, adapter, out: channels.Outgoing, batch: "_Batch", now: datetime, answer=None
):
    """The provider call (or its `answer` when already made): a SendResult, or the outcome
    string after handling its error."""
    try:
        if answer is None:
            return adapter.send(out)
        if isinstance(answer, Exception):
            raise answer
        return answer
    except TransientError as exc:
        return _retry_later(message, now, exc)
    except UnknownOutcome as exc:
        if adapter.idempotent_retry:
            return _retry_later(message, now, exc)
        error = f"{UNKNOWN_PREFIX}{exc}"[:500]
        _move(
            message.id, "failed", now, ("sending",), {"code": exc.code, "error": error}, error=error
        )
        notify_managers(batch.store(message.store_id), notices.UNKNOWN_PROVIDER, now)
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
        _flag_customer(batch.customers[message.customer_id], message.channel, exc, now)
        if not exc.flag:
            notify_managers(
                batch.store(message.store_id), notices.rejected(message.channel, error), now
            )
        return "failed"


def deliver(message_id: int, now: datetime, batch: "_Batch | None" = None) -> str:
    """Send a message already claimed (status sending); answer the outcome."""
    outcomes = deliver_many([message_id], now, batch)
    return next(iter(outcomes), "skipped")


def deliver_many(ids: list[int], now: datetime, batch: "_Batch | None" = None) -> Counter:
    """Send claimed messages; count the outcomes.

    Where a resend is harmless (idempotent providers) the dispatch markers of the whole batch
    are committed at once and the results recorded in one transaction. Elsewhere each message
    gets its own marker before, and its result right after, its provider call, so a crash can
    leave at most the one message in flight unknown.
    """
    batch = batch or _Batch(ids)
    outcomes: Counter = Counter()
    resendable = []
    for message_id in ids:
        message = batch.messages.get(message_id)
        if message is None or message.status != "sending":
            outcomes["skipped"] += 1
            continue
        prepared = _prepare(message, batch, now)
        if isinstance(prepared, str):
            outcomes[prepared] += 1
            continue
        adapter, out = prepared
        if adapter.idempotent_retry:
            resendable.append((message, adapter, out))
            continue
        _mark_dispatched([(message.id, message.channel)], now)
        result = _call(message, adapter, out, batch, now)
        if isinstance(result, str):
            outcomes[result] += 1
        else:
            _mark_sent(
                [(message.id, result.provider_message_id, out.to, result.detail or None)], now
            )
            outcomes["sent"] += 1
    if resendable:
        _mark_dispatched([(m.id, m.channel) for m, _a, _o in resendable], now)
        sent = []
        answers = _send_concurrently([(adapter, out) for _m, adapter, out in resendable])
        for (message, adapter, out), answer in zip(resendable, answers, strict=True):
            result = _call(message, adapter, out, batch, now, answer)
            if isinstance(result, str):
                outcomes[result] += 1
            else:
                sent.append((message.id, result.provider_message_id, out.to, result.detail or None))
        _mark_sent(sent, now)
        outcomes["sent"] += len(sent)
    return outcomes


def _send_concurrently(calls: list[tuple]) -> list:
    """adapter.send(out) for each pair on SEND_THREADS threads: each SendResult or exception.

    Only provider calls run on the threads (each keeps its own connection); every database
    write stays on the caller's thread.
    """

    def send(pair):
        adapter, out = pair
        try:
            return adapter.send(out)
        except (TransientError, UnknownOutcome, PermanentError) as exc:
            return exc

    if len(calls) < 2 or SEND_THREADS < 2:
        return [send(pair) for pair in calls]
    global _executor, _executor_pid
    if _executor is None or _executor_pid != os.getpid():  # threads do not survive a fork
        _executor = ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="outbox-send")
        _executor_pid = os.getpid()
    return list(_executor.map(send, calls))


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


def _claim_ids(ids: list[int], now: datetime) -> list[int]:
    """Claim these queued messages in one conditional UPDATE … RETURNING, with history rows."""
    if not ids:
        return []
    p = db.param
    at = _naive(now)
    placeholders = ", ".join([p] * len(ids))
    rows = db.execute_sql(
        f"UPDATE {_table(Message)} SET status = 'sending', sending_at = {p}, "
        f"attempts = attempts + 1 WHERE id IN ({placeholders}) AND status = 'queued' "
        "RETURNING id",
        [at, *ids],
    ).fetchall()
    claimed = sorted(row[0] for row in rows)
    if claimed:
        db.cursor().executemany(
            f"INSERT INTO {_table(MessageStatusChange)} (message_id, status, at) "
            f"VALUES ({p}, {p}, {p})",
            [(message_id, "sending", at) for message_id in claimed],
        )
    return claimed


def _sends_since(store: Store, channel: str, since: datetime, now: datetime):
    return (
        (Message.store == store.id)
        & (Message.channel == channel)
        & (Message.sending_at > since)
        & (Message.sending_at <= now)
    )


def _claim_batch(
    store: Store, channel: str, now: datetime, want: int, only_id: int | None = None
) -> tuple[list[int], float | None]:
    """Claim up to `want` due messages within the rate limit, the per-recipient interval and
    the daily quota, in one transaction under the store × channel lock.

    Answers the claimed ids and, when a limit held some back, the seconds to wait.
    """
    setting = channel_setting(store.id, channel)
    limit, unit = effective_rate(setting, channel)
    window = timedelta(seconds=RATE_UNITS.get(unit, 1))
    gap = RECIPIENT_INTERVAL.get(channel)
    exhausted = False
    claimed: list[int] = []
    wait = None
    with _channel_lock(setting):
        capacity = want
        if limit != UNLIMITED:
            used, oldest = (
                Message.select(fn.COUNT(Message.id), fn.MIN(Message.sending_at))
                .where(_sends_since(store, channel, now - window, now))
                .tuples()
                .get()
            )
            capacity = min(want, limit - used)
            if capacity <= 0:
                wait = (Message.sending_at.python_value(oldest) + window - now).total_seconds()
        if setting is not None and setting.daily_quota:
            left = quota_state(store, channel, now)["left"]
            exhausted = left <= 0
            capacity = min(capacity, left)
        if not exhausted and capacity > 0:
            query = Message.select(Message.id, Message.customer).where(
                _due(now), Message.store == store.id, Message.channel == channel
            )
            if only_id is not None:
                query = query.where(Message.id == only_id)
            busy = None
            if gap is not None:
                busy = Message.select(Message.customer).where(
                    _sends_since(store, channel, now - gap, now)
                )
                query = query.where(Message.customer.not_in(busy))
            ids, customers = [], set()
            for message_id, customer_id in query.order_by(Message.id).limit(capacity).tuples():
                if gap is None or customer_id not in customers:
                    ids.append(message_id)
                    customers.add(customer_id)
            claimed = _claim_ids(ids, now)
            if not claimed and busy is not None:
                wait = _recipient_wait(store, channel, now, gap, only_id)
    if exhausted:
        _quota_exhausted(store, channel, now)
    return claimed, (max(0.01, wait) if wait is not None else None)


def _recipient_wait(
    store: Store, channel: str, now: datetime, gap: timedelta, only_id: int | None
) -> float | None:
    """Seconds until the first due message's recipient may be messaged again, if any waits."""
    due = Message.select(Message.customer).where(
        _due(now), Message.store == store.id, Message.channel == channel
    )
    if only_id is not None:
        due = due.where(Message.id == only_id)
    last = (
        Message.select(fn.MIN(Message.sending_at))
        .where(_sends_since(store, channel, now - gap, now), Message.customer.in_(due))
        .scalar()
    )
    if last is None:
        return None
    return (Message.sending_at.python_value(last) + gap - now).total_seconds()


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
            notices.quota_used_up(channel, waiting),
            now,
            dedupe_prefix=notices.quota_prefix(channel),
        )


def notify_managers(
    store: Store, text: str, now: datetime, dedupe_prefix: str | None = None
) -> int:
    """A Notice to the store's managers and the owners, at most once a day per text, and not
    again while the last one is unread."""
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
                Notice.read_at.is_null() | (Notice.created_at > now - timedelta(days=1)),
            )
            .exists()
        )
        if not exists:
            Notice.create(
                staff=staff.id, store=store.id, text=text, url="/messages", created_at=now
            )
            sent += 1
    return sent


def resolve_notices(store_id: int, prefix: str, now: datetime) -> int:
    """Mark read the store's unread notices about a problem that no longer applies."""
    return (
        Notice.update(read_at=now)
        .where(
            Notice.store == store_id,
            Notice.read_at.is_null(),
            Notice.text.startswith(prefix),
        )
        .execute()
    )


# ---------------------------------------------------------------- the drain


class RealClock:
    """Wall-clock time for the drain; tests pass a fake one with the same two methods."""

    monotonic = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)


def send_due(now: datetime, limit: int = 10000, max_seconds: float = 50.0, clock=RealClock) -> dict:
    """Claim and send everything due at `now` within quiet hours, rate limits and quotas.

    When a limit holds messages back, waits for it (the clock's time, added to `now`) for at
    most `max_seconds`; what is left stays queued for the next tick.
    """
    summary: Counter = Counter()
    summary["deferred"] += defer_quiet_hours(now)
    started = clock.monotonic()
    stores: dict[int, Store] = {}
    current = now
    while summary["claimed"] < limit:
        active = list(
            Message.select(Message.store, Message.channel).where(_due(current)).distinct().tuples()
        )
        waits = []
        progressed = False
        while active and summary["claimed"] < limit:
            # Round-robin over store × channel; a group stays while it still yields messages.
            still = []
            for store_id, channel in active:
                if store_id not in stores:
                    stores[store_id] = Store.get_by_id(store_id)
                store = stores[store_id]
                if quiet_hours_end(store, current) is not None:
                    continue
                want = min(CLAIM_CHUNK, limit - summary["claimed"])
                claimed, wait = _claim_batch(store, channel, current, want)
                if claimed:
                    summary["claimed"] += len(claimed)
                    summary.update(deliver_many(claimed, current))
                    progressed = True
                    still.append((store_id, channel))
                elif wait:
                    waits.append(wait)
                if summary["claimed"] >= limit:
                    break
            active = still
        if progressed:
            continue
        if not waits:
            break
        pause = min(waits)
        if clock.monotonic() - started + pause > max_seconds:
            summary["rate_limited"] += 1
            break
        clock.sleep(pause)
        current = now + timedelta(seconds=clock.monotonic() - started)
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
            notify_managers(Store.get_by_id(message.store_id), notices.UNKNOWN_STOPPED, now)
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
