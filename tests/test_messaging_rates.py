"""Sending rates on a fake clock: per channel and store (per second or minute), channel defaults,
and WhatsApp's one message per 6 seconds to the same recipient, shared by every sender."""

from collections import defaultdict
from datetime import timedelta

import pytest

from app.models import ChannelSetting, Message
from app.services import messaging
from tests.factories import login, make_staff, make_store
from tests.messaging_helpers import NOW, consenting_customer, queue, setup_sms
from tests.stubs import TwilioStub

# Services read SECRET_KEY from the running app, as in a request or a CLI command.
pytestmark = pytest.mark.usefixtures("in_app_context")


class FakeClock:
    """monotonic() and sleep() for send_due: sleeping only moves the hands."""

    def __init__(self):
        self.t = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def _whatsapp_with_defaults(store, stub):
    """WhatsApp configured without a rate of its own: the channel default applies."""
    return messaging.configure_channel(
        store,
        "whatsapp",
        NOW,
        enabled=True,
        config={"base_url": stub.base_url, "phone_number_id": "106540352242922", "timeout": 2},
        secrets={"access_token": stub.token, "app_secret": stub.app_secret},
    )


def _window_violations(times, limit: int, window: timedelta) -> int:
    times = sorted(times)
    return sum(1 for i in range(len(times) - limit) if times[i + limit] - times[i] < window)


def _recipient_gaps(messages) -> list[timedelta]:
    by_customer = defaultdict(list)
    for m in messages:
        by_customer[m.customer_id].append(m.sending_at)
    gaps = []
    for times in by_customer.values():
        times.sort()
        gaps += [b - a for a, b in zip(times, times[1:], strict=False)]
    return gaps


def test_channel_defaults_are_whatsapp_80_per_second_sms_1_and_others_3(app):
    store = make_store()
    assert messaging.effective_rate(None, "whatsapp") == (80, "second")
    assert messaging.effective_rate(None, "sms") == (1, "second")
    assert messaging.effective_rate(None, "line") == (3, "second")
    own = messaging.configure_channel(store, "whatsapp", NOW, True, {}, {}, rate=(150, "minute"))
    assert messaging.effective_rate(own, "whatsapp") == (150, "minute")
    back = messaging.configure_channel(store, "whatsapp", NOW, True, {}, {}, rate=(None, "second"))
    assert messaging.effective_rate(back, "whatsapp") == (80, "second")
    kept = messaging.configure_channel(store, "whatsapp", NOW, False, {}, {})
    assert kept.rate_limit is None
    with pytest.raises(ValueError):
        messaging.configure_channel(store, "sms", NOW, True, {}, {}, rate=(5, "hour"))
    with pytest.raises(ValueError):
        messaging.configure_channel(store, "sms", NOW, True, {}, {}, rate=(-1, "second"))


def test_whatsapp_default_rate_and_six_seconds_per_recipient_hold_on_a_fake_clock(app, wa):
    store = make_store()
    _whatsapp_with_defaults(store, wa)
    customers = [consenting_customer(store, phone=f"+601100{i:05d}") for i in range(150)]
    # 150 clients, the first 30 with three messages each: 210 messages in all.
    for c in customers:
        queue(c)
    for c in customers[:30]:
        queue(c, body="second")
        queue(c, body="third")
    clock = FakeClock()
    result = messaging.send_due(NOW, max_seconds=600, clock=clock)
    messages = list(Message.select())
    assert result["sent"] == 210 and {m.status for m in messages} == {"sent"}
    assert _window_violations([m.sending_at for m in messages], 80, timedelta(seconds=1)) == 0
    gaps = _recipient_gaps(messages)
    assert len(gaps) == 60 and min(gaps) >= timedelta(seconds=6)
    # The repeats waited for their recipient (deferred, not failed): about 12 s on the clock.
    assert 12 <= clock.t < 13
    assert len(wa.sent()) == 210


def test_recipient_interval_is_shared_by_separate_senders(app, wa):
    store = make_store()
    _whatsapp_with_defaults(store, wa)
    aisyah = consenting_customer(store, phone="+60123450001")
    first, second = queue(aisyah), queue(aisyah, body="points reminder")
    # Two senders (two workers share only the database), three seconds apart.
    assert messaging.send_due(NOW, max_seconds=0)["sent"] == 1
    other = queue(consenting_customer(store, phone="+60123450002"))
    later = messaging.send_due(NOW + timedelta(seconds=3), max_seconds=0)
    assert later["sent"] == 1 and later["rate_limited"] == 1
    assert Message.get_by_id(other.id).status == "sent"
    waiting = Message.get_by_id(second.id)
    assert waiting.status == "queued" and waiting.attempts == 0 and waiting.error == ""
    assert Message.get_by_id(first.id).status == "sent"
    assert messaging.send_message(second.id, NOW + timedelta(seconds=5)) == "limited"
    assert messaging.send_due(NOW + timedelta(seconds=6), max_seconds=0)["sent"] == 1
    assert Message.get_by_id(second.id).status == "sent"


def test_sms_long_code_default_sends_one_a_second_on_a_fake_clock(app):
    stub = TwilioStub()
    try:
        store = make_store()
        setup_sms(store, stub, per_second=None)
        assert ChannelSetting.get().rate_limit is None
        for i in range(5):
            queue(consenting_customer(store, channels=("sms",), phone=f"+6012000{i:04d}"), "sms")
        clock = FakeClock()
        result = messaging.send_due(NOW, max_seconds=60, clock=clock)
        assert result["sent"] == 5
        times = sorted(m.sending_at for m in Message.select())
        assert all(b - a >= timedelta(seconds=1) for a, b in zip(times, times[1:], strict=False))
        assert 4 <= clock.t < 5
    finally:
        stub.close()


def test_rate_per_minute_spreads_a_burst_over_minutes(app):
    store = make_store()
    messaging.configure_channel(store, "log_only", NOW, True, {}, {}, rate=(150, "minute"))
    for i in range(400):
        queue(consenting_customer(store, channels=("sms",), phone=f"+6013000{i:04d}"), "log_only")
    clock = FakeClock()
    result = messaging.send_due(NOW, max_seconds=600, clock=clock)
    assert result["sent"] == 400
    times = [m.sending_at for m in Message.select()]
    assert _window_violations(times, 150, timedelta(minutes=1)) == 0
    assert 120 <= clock.t < 121  # 150 now, 150 a minute later, 100 after two minutes


def test_rate_limit_zero_means_no_limit(app):
    store = make_store()
    messaging.configure_channel(store, "log_only", NOW, True, {}, {}, rate=(0, "second"))
    for i in range(300):
        queue(consenting_customer(store, channels=("sms",), phone=f"+6014000{i:04d}"), "log_only")
    clock = FakeClock()
    assert messaging.send_due(NOW, max_seconds=0, clock=clock)["sent"] == 300
    assert clock.slept == []


def test_channel_form_sets_rate_per_minute_and_blank_means_default(app, client):
    store = make_store()
    login(client, make_staff("manager", [store]))
    resp = client.post(
        "/messages/channels/whatsapp",
        data={"enabled": "1", "rate_limit": "180", "rate_unit": "minute", "daily_quota": ""},
    )
    assert resp.status_code == 303
    setting = messaging.channel_setting(store.id, "whatsapp")
    assert (setting.rate_limit, setting.rate_unit, setting.daily_quota) == (180, "minute", None)
    page = client.get("/messages/channels")
    assert b'value="180"' in page.data and b'<option value="minute" selected' in page.data
    client.post("/messages/channels/whatsapp", data={"enabled": "1", "rate_limit": ""})
    setting = messaging.channel_setting(store.id, "whatsapp")
    assert setting.rate_limit is None
    assert messaging.effective_rate(setting, "whatsapp") == (80, "second")
    assert b'placeholder="80"' in client.get("/messages/channels").data


@pytest.mark.parametrize(
    "data, field",
    [
        ({"rate_limit": "0"}, b"err-sms-rate_limit"),
        ({"rate_limit": "fast"}, b"err-sms-rate_limit"),
        ({"rate_limit": "5", "rate_unit": "hour"}, b"per second or per minute"),
        ({"daily_quota": "-3"}, b"Enter a number from 1"),
    ],
)
def test_channel_form_refuses_bad_rates_with_422_and_keeps_the_setting(app, client, data, field):
    store = make_store()
    login(client, make_staff("manager", [store]))
    messaging.configure_channel(store, "sms", NOW, True, {}, {}, rate=(2, "second"))
    resp = client.post("/messages/channels/sms", data={"enabled": "1", **data})
    assert resp.status_code == 422
    assert field in resp.data and b"<html" in resp.data
    frag = client.post(
        "/messages/channels/sms", data={"enabled": "1", **data}, headers={"HX-Request": "true"}
    )
    assert frag.status_code == 422 and b"<html" not in frag.data and field in frag.data
    setting = messaging.channel_setting(store.id, "sms")
    assert (setting.rate_limit, setting.rate_unit) == (2, "second")


def test_manager_sets_the_fallback_order_and_it_decides_the_channel(app, client, wa):
    from app.models import AuditLog, Store

    store = make_store()
    login(client, make_staff("manager", [store]))
    _whatsapp_with_defaults(store, wa)
    messaging.configure_channel(store, "sms", NOW, True, {}, {})
    both = consenting_customer(store, channels=("whatsapp", "sms"))
    assert messaging.choose_channel(both, store) == "whatsapp"
    resp = client.post("/messages/channels/order", data={"order": ["sms", "", "whatsapp"]})
    assert resp.status_code == 303
    store = Store.get_by_id(store.id)
    assert store.setting("channel_order") == ["sms", "whatsapp"]
    assert messaging.choose_channel(both, store) == "sms"
    assert AuditLog.select().where(AuditLog.action == "channel.order").count() == 1
    page = client.get("/messages/channels")
    assert "sms → whatsapp".encode() in page.data
    bad = client.post("/messages/channels/order", data={"order": ["sms", "sms"]})
    assert bad.status_code == 422 and b"err-channel_order" in bad.data
    none = client.post(
        "/messages/channels/order", data={"order": [""]}, headers={"HX-Request": "true"}
    )
    assert none.status_code == 422 and b"<html" not in none.data
    assert Store.get_by_id(store.id).setting("channel_order") == ["sms", "whatsapp"]


def test_log_only_is_never_the_default_once_a_real_channel_is_on(app, wa):
    store = make_store(settings={"channel_order": ["log_only", "whatsapp", "followup"]})
    messaging.configure_channel(store, "log_only", NOW, True, {}, {})
    client = consenting_customer(store, channels=("whatsapp",))
    assert messaging.choose_channel(client, store) == "log_only"  # a demo with nothing real
    _whatsapp_with_defaults(store, wa)
    assert messaging.choose_channel(client, store) == "whatsapp"
    assert messaging.choose_channel(client, store, "log_only") == "log_only"  # chosen on purpose
