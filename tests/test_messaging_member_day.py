"""The member-day push end to end: plan → tick → WhatsApp stub → delivery webhook → no repeat."""

from collections import Counter

import pytest

from app.models import Consent, Message
from app.services import plans, scheduler
from tests.factories import make_customer, make_store, utc
from tests.messaging_helpers import setup_whatsapp

# Services read SECRET_KEY from the running app, as in a request or a CLI command.
pytestmark = pytest.mark.usefixtures("in_app_context")

CREATED = utc(2026, 12, 1, 2, 0)
EVE_10AM = utc(2026, 12, 17, 2, 0)  # 17 December, 10:00 in Kuala Lumpur


def _customer(store, name, phone, whatsapp):
    customer = make_customer(store, name=name, phone=phone)
    if whatsapp is not None:
        Consent.create(customer=customer, channel="whatsapp", granted=whatsapp, source="test")
    return customer


def test_member_day_reminder_reaches_each_opted_in_member_once(app, client, wa):
    store = make_store("kl", name="Bunga Beauty KL", timezone="Asia/Kuala_Lumpur", member_day=18)
    setup_whatsapp(store, wa, per_second=3)
    members = [
        _customer(store, "小红", "+60123456781", True),
        _customer(store, "Siti Aminah", "+60123456782", True),
        _customer(store, "Mei Ling", "+60123456783", True),
        _customer(store, "Priya", "+60123456784", True),
    ]
    _customer(store, "Opted Out", "+60123456785", False)
    _customer(store, "Never Asked", "+60123456786", None)
    plans.create_plan(
        store,
        {
            "template": "member_day",
            "name": "Member day reminder",
            "params": {"day_of_month": 18, "remind_days_before": 1, "at": "10:00"},
            "action": {"kind": "message", "channel": "whatsapp"},
            "status": "active",
        },
        CREATED,
    )

    summary = scheduler.tick(EVE_10AM)

    assert summary.sent == len(members)
    bodies = wa.sent()
    assert Counter(b["to"] for b in bodies) == Counter(m.phone.lstrip("+") for m in members)
    assert all(b["type"] == "template" for b in bodies)
    assert all(b["template"]["name"] == "member_day_reminder" for b in bodies)
    text = {b["to"]: b["template"]["components"][0]["parameters"][0]["text"] for b in bodies}
    assert "小红" in text["60123456781"]
    messages = list(Message.select())
    assert len(messages) == len(members)
    assert {m.status for m in messages} == {"sent"}

    raw, headers = wa.status_webhook(
        [(m.provider_message_id, "delivered", m.idempotency_key) for m in messages]
    )
    assert client.post("/hooks/whatsapp/kl", data=raw, headers=headers).status_code == 200
    assert {m.status for m in Message.select()} == {"delivered"}

    again = scheduler.tick(EVE_10AM)
    assert again.sent == 0 and again.messages == 0
    later = scheduler.tick(utc(2026, 12, 17, 3, 0))
    assert later.sent == 0
    assert len(wa.requests) == len(members)
