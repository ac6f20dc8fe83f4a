"""The why-log on a client's profile reads in the staff member's language, whatever the engine
wrote (it stores English as the audit trail)."""

import pytest
from flask_babel import force_locale

from app.models import Consent, WhyLog
from app.services import engine, plans
from app.services.timeline import timeline, why_text
from tests.factories import (
    login,
    make_customer,
    make_staff,
    make_store,
    switch_on_channels,
    utc,
)


@pytest.fixture
def store(app):
    store = make_store("kl", name="Bunga Beauty KL", timezone="Asia/Kuala_Lumpur", locale="ms")
    return switch_on_channels(store, "whatsapp")


def _run_member_day(store, holdout=0):
    plans.create_plan(
        store,
        {
            "template": "member_day",
            "name": "Hari ahli",
            "status": "active",
            "holdout_percent": holdout,
        },
        now=utc(2026, 11, 1),
    )
    engine.run_due(utc(2026, 11, 17, 2))


def test_every_wording_the_engine_writes_has_a_translation(app, store):
    for i in range(60):
        customer = make_customer(store, name=f"Pelanggan {i}")
        if i % 3:
            Consent.create(customer=customer, channel="whatsapp", granted=True)
        elif i % 2:
            Consent.create(customer=customer, channel="whatsapp", granted=False)
    _run_member_day(store, holdout=20)
    kinds = {w.kind for w in WhyLog.select()}
    assert {"created", "skipped", "held_out"} <= kinds
    with app.test_request_context(), force_locale("th"):
        for w in WhyLog.select():
            kind, detail = why_text(w.kind, w.detail)
            assert detail == "" or detail != w.detail, (w.kind, w.detail)
            if w.kind == "created":
                assert kind == "message"  # the member day plan queues messages


def test_profile_shows_the_decisions_in_thai(app, client, store):
    customer = make_customer(store, name="สมหญิง")
    aisyah = make_staff("employee", [store], name="Aisyah", locale="th")
    plan = plans.create_plan(
        store,
        {"template": "member_day", "name": "Hari ahli", "status": "draft"},
        now=utc(2026, 11, 1),
    )
    rows = [
        ("created", "message queued: Hari ahli"),
        ("skipped", "no consent or no address for whatsapp/sms"),
        ("deferred", "over the contact budget (2 messages per 7 days)"),
        ("withdrawn", "booked an appointment (appointment_booked at 2026-11-20T02:00:00+00:00)"),
        ("converted", "came back (visit at 2026-11-21T02:00:00+00:00)"),
    ]
    for i, (kind, detail) in enumerate(rows):
        WhyLog.create(
            customer=customer, plan=plan, kind=kind, detail=detail, at=utc(2026, 11, 10 + i)
        )
    login(client, aisyah)
    html = client.get(f"/customers/{customer.id}").get_data(as_text=True)
    for thai in (
        "ไม่มีความยินยอมหรือช่องทางติดต่อสำหรับ whatsapp/sms",
        "เกินโควตาการติดต่อ (2 ข้อความต่อ 7 วัน)",
        "จองนัดหมายแล้ว",
        "จบแผน: กลับมาใช้บริการแล้ว",
    ):
        assert thai in html
    assert "message queued" not in html and "no consent" not in html
    assert "appointment_booked at" not in html


def test_each_plan_that_made_or_joined_a_follow_up_shows_once_as_created(app, store):
    customer = make_customer(store, name="Siti")
    make_staff("employee", [store], name="Aisyah")
    for name in ("Hari ahli", "Kad hampir tamat"):
        plans.create_plan(
            store,
            {
                "template": "member_day",
                "name": name,
                "status": "active",
                "action": {"kind": "followup"},
            },
            now=utc(2026, 11, 1),
        )
    engine.run_due(utc(2026, 11, 17, 2))
    with app.test_request_context():
        entries, _ = timeline(customer)
    created = [
        e.data["plan"] for e in entries if e.kind == "why" and e.data["decision"] == "created"
    ]
    assert sorted(created) == ["Hari ahli", "Kad hampir tamat"]  # one follow-up, two reasons
    assert [e.kind for e in entries].count("followup") == 1


@pytest.mark.parametrize(
    "stored",
    [
        "no message channel is set up for this store",
        "no channel in the store's fallback order is switched on",
        "channel line is not set up for this store",
        "reachable only on a channel this store has not set up (sms)",
    ],
)
def test_skips_for_a_channel_the_store_has_not_set_up_read_in_each_language(app, stored):
    for locale in ("zh_Hans", "zh_Hant", "th", "ms"):
        with app.test_request_context(), force_locale(locale):
            kind, detail = why_text("skipped", stored)
        assert kind == "skipped" and detail and detail != stored, (locale, stored)
        for channel in ("line", "sms"):
            assert (channel in detail) == (channel in stored), (locale, detail)
