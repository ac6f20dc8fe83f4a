"""Messages are queued only on channels the store has set up and switched on; the plan's other
clients are skipped with the reason, never left to fail in the outbox."""

from datetime import timedelta

from app.models import ChannelSetting, Consent, Decision, Message, Notice, Store, WhyLog
from app.services import engine, messaging, plans, scheduler
from tests.factories import login, make_customer, make_staff, make_store, switch_on_channels, utc
from tests.messaging_helpers import queue
from tests.test_engine import daily

NOON = utc(2026, 5, 17, 2)  # 10:00 in Kuala Lumpur, outside quiet hours


def daily_message(store, **action):
    return daily(store, action={"kind": "message", "script": "Hai {first_name}", **action})


def customer(store, name, *channels, **kw):
    person = make_customer(store, name=name, **kw)
    for channel in channels:
        Consent.create(customer=person, channel=channel, granted=True)
    return person


def reason_of(person) -> str:
    return Decision.get(Decision.customer == person.id).reason


def test_message_plan_skips_customer_reachable_only_on_a_channel_the_store_has_not_set_up(app):
    store = switch_on_channels(make_store(), "whatsapp")
    aminah = customer(store, "Aminah", "whatsapp")
    siti = customer(store, "Siti", "sms")
    nobody = customer(store, "Ali")
    daily_message(store)
    engine.run_due(NOON)
    assert [(m.customer_id, m.channel) for m in Message.select()] == [(aminah.id, "whatsapp")]
    wording = "reachable only on a channel this store has not set up (sms)"
    assert reason_of(siti) == wording
    assert WhyLog.get((WhyLog.customer == siti.id) & (WhyLog.kind == "skipped")).detail == wording
    assert reason_of(nobody) == "no consent or no address for whatsapp"


def test_message_plan_naming_a_channel_the_store_has_not_set_up_skips_everyone_and_says_so(app):
    store = switch_on_channels(make_store(), "whatsapp")
    somchai = customer(store, "Somchai", "line", "whatsapp", line_id="U123")
    daily_message(store, channel="line")
    engine.run_due(NOON)
    assert Message.select().count() == 0
    decision = Decision.get(Decision.customer == somchai.id)
    assert decision.outcome == "skipped"
    assert decision.reason == "channel line is not set up for this store"


def test_switched_off_channel_is_never_used_for_a_message(app):
    store = switch_on_channels(make_store(), "sms")
    ChannelSetting.create(store=store, channel="whatsapp", enabled=False)
    both = customer(store, "Mei", "whatsapp", "sms")
    daily_message(store)
    engine.run_due(NOON)
    assert Message.get(Message.customer == both.id).channel == "sms"


def test_best_channel_follows_the_store_fallback_order(app):
    store = switch_on_channels(
        make_store(settings={"channel_order": ["sms", "whatsapp", "followup"]}), "whatsapp", "sms"
    )
    both = customer(store, "Mei", "whatsapp", "sms")
    daily_message(store)
    engine.run_due(NOON)
    assert Message.get(Message.customer == both.id).channel == "sms"


def test_store_with_no_channel_set_up_queues_no_message_and_warns_nobody(app):
    store = make_store()
    manager = make_staff("manager", [store])
    aminah = customer(store, "Aminah", "whatsapp")
    daily_message(store)
    scheduler.tick(NOON)
    assert Message.select().count() == 0
    assert reason_of(aminah) == "no message channel is set up for this store"
    assert Notice.select().where(Notice.staff == manager.id).count() == 0


def test_log_only_channel_sends_until_a_real_channel_is_switched_on(app):
    store = make_store()
    messaging.configure_channel(store, "log_only", NOON, True, {}, {})
    aminah = customer(store, "Aminah", "whatsapp")
    daily_message(store)
    scheduler.tick(NOON)
    first = Message.get()
    assert (first.channel, first.status) == ("log_only", "sent")
    switch_on_channels(store, "whatsapp")
    engine.run_due(NOON + timedelta(days=1))
    latest = Message.select().where(Message.customer == aminah.id).order_by(Message.id.desc())
    assert latest.first().channel == "whatsapp"


def test_plan_pages_warn_when_the_plan_channel_is_not_set_up(app, client):
    store = switch_on_channels(make_store(), "whatsapp")
    manager = make_staff("manager", [store])
    login(client, manager)
    plan = plans.create_plan(
        store,
        {
            "name": "LINE reminder",
            "type": "recurring",
            "schedule": {"frequency": "daily", "at": "10:00"},
            "action": {"kind": "message", "script": "Hi {first_name}", "channel": "line"},
        },
        now=NOON,
    )
    for url in (f"/plans/{plan.id}/activate", f"/plans/{plan.id}"):
        page = client.get(url)
        assert page.status_code == 200
        assert b"channel-warning" in page.data and b"has not set up" in page.data, url
    form = client.get(f"/plans/{plan.id}/edit").get_data(as_text=True)
    assert "LINE (not set up)" in form and "WhatsApp (not set up)" not in form
    switch_on_channels(store, "line")
    assert b"channel-warning" not in client.get(f"/plans/{plan.id}/activate").data


def test_plan_page_warns_when_the_store_has_no_channel_at_all(app, client):
    store = make_store()
    manager = make_staff("manager", [store])
    login(client, manager)
    plan = daily_message(store)
    page = client.get(f"/plans/{plan.id}", headers={"HX-Request": "true"})
    assert page.status_code == 200 and b"<html" not in page.data
    assert b"has no message channel set up" in page.data


def test_failed_send_warning_shows_once_per_channel_and_goes_once_the_channel_is_set_up(
    app, client
):
    store = make_store(name="Bunga KL")
    other = make_store(name="Happy Paws")
    owner = make_staff("owner", [store, other])
    for day in range(3):  # a queued message whose channel was switched off, three days running
        at = NOON + timedelta(days=day)
        queue(customer(store, "Aminah", "whatsapp"), next_attempt_at=at)
        messaging.send_due(at)
    notices = Notice.select().where(Notice.staff == owner.id, Notice.read_at.is_null())
    assert notices.count() == 1
    login(client, owner)
    page = client.get("/plans").get_data(as_text=True)
    assert page.count("the whatsapp channel is not set up for this store") == 1
    assert "<strong>Bunga KL</strong>: " in page  # the owner sees which store it is about
    messaging.configure_channel(Store.get_by_id(store.id), "whatsapp", NOON, True, {}, {})
    assert notices.count() == 0
    assert "is not set up for this store" not in client.get("/plans").get_data(as_text=True)
