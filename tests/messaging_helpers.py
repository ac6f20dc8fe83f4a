"""Helpers for the messaging tests: stores with channels, consenting customers, queued messages."""

import itertools
import uuid

from app.models import Consent, Message
from app.services import messaging
from tests.factories import make_customer, utc

_n = itertools.count(1)
NOW = utc(2026, 11, 24, 4, 0)  # 12:00 in Kuala Lumpur: outside quiet hours


def consenting_customer(store, channels=("whatsapp",), **kw):
    customer = make_customer(store, **kw)
    for channel in channels:
        Consent.create(customer=customer, channel=channel, granted=True, source="test", at=NOW)
    return customer


def queue(customer, channel="whatsapp", body="Hi, tomorrow is member day", **kw):
    defaults = dict(
        store=customer.store_id,
        customer=customer,
        channel=channel,
        body=body,
        status="queued",
        idempotency_key=str(uuid.uuid4()),
        created_at=NOW,
    )
    defaults.update(kw)
    return Message.create(**defaults)


def setup_whatsapp(store, stub, per_second=50, daily_quota=None, timeout=0.5):
    return messaging.configure_channel(
        store,
        "whatsapp",
        NOW,
        enabled=True,
        config={
            "base_url": stub.base_url,
            "api_version": "21.0",
            "phone_number_id": "106540352242922",
            "template": "member_day_reminder",
            "language": "en",
            "timeout": timeout,
        },
        secrets={"access_token": stub.token, "app_secret": stub.app_secret, "verify_token": "vt"},
        per_second=per_second,
        daily_quota=daily_quota,
    )


def setup_line(store, stub, per_second=50, timeout=0.5):
    return messaging.configure_channel(
        store,
        "line",
        NOW,
        enabled=True,
        config={"base_url": stub.base_url, "timeout": timeout},
        secrets={"channel_access_token": stub.token, "channel_secret": stub.channel_secret},
        per_second=per_second,
    )


def setup_sms(store, stub, per_second=50):
    return messaging.configure_channel(
        store,
        "sms",
        NOW,
        enabled=True,
        config={"base_url": stub.base_url, "from": "+15005550006", "timeout": 2},
        secrets={"account_sid": stub.account_sid, "auth_token": stub.auth_token},
        per_second=per_second,
    )


def setup_webhook(store, receiver, per_second=50):
    return messaging.configure_channel(
        store,
        "webhook",
        NOW,
        enabled=True,
        config={"url": receiver.base_url + "/deliver", "timeout": 0.5},
        secrets={"signing_secret": receiver.secret},
        per_second=per_second,
    )


def setup_email(store, sink, per_second=50):
    return messaging.configure_channel(
        store,
        "email",
        NOW,
        enabled=True,
        config={"from": "hello@bunga.example", "from_name": "Bunga Beauty"},
        secrets={"smtp_url": sink.url},
        per_second=per_second,
    )


def history(message):
    return [h.status for h in message.history.order_by("id")]
