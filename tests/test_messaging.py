"""The outbox: claiming, retries, crashes, consent, quiet hours, rate limits and quotas."""

import threading
from datetime import timedelta

import pytest

from app.db import db
from app.models import (
    ChannelSetting,
    Consent,
    ConsentChange,
    Customer,
    Message,
    MessageStatusChange,
    Notice,
)
from app.services import messaging, secrets_box
from tests.factories import make_staff, make_store, utc
from tests.messaging_helpers import (
    NOW,
    consenting_customer,
    history,
    queue,
    setup_line,
    setup_whatsapp,
)
from tests.stubs import LineStub

# Services read SECRET_KEY from the running app, as in a request or a CLI command.
pytestmark = pytest.mark.usefixtures("in_app_context")


@pytest.fixture
def line():
    stub = LineStub()
    yield stub
    stub.close()


def test_sending_a_queued_message_walks_the_state_machine(app, wa):
    store = make_store()
    setup_whatsapp(store, wa)
    message = queue(consenting_customer(store, phone="+60123456789"))
    result = messaging.send_due(NOW)
    message = Message.get_by_id(message.id)
    assert result["sent"] == 1
    assert message.status == "sent"
    assert message.sending_at == NOW and message.sent_at == NOW
    assert message.provider_message_id.startswith("wamid.")
    assert history(message) == ["sending", "dispatch", "sent"]
    dispatch = message.history.where(MessageStatusChange.status == "dispatch").get()
    assert dispatch.detail == {"channel": "whatsapp"}
    body = wa.sent()[0]
    assert body["to"] == "60123456789"
    assert body["template"]["name"] == "member_day_reminder"
    assert body["template"]["components"][0]["parameters"][0]["text"] == message.body
    assert body["biz_opaque_callback_data"] == message.idempotency_key


def test_second_drain_sends_nothing(app, wa):
    store = make_store()
    setup_whatsapp(store, wa)
    queue(consenting_customer(store))
    messaging.send_due(NOW)
    assert messaging.send_due(NOW + timedelta(minutes=1)).get("sent", 0) == 0
    assert len(wa.requests) == 1


def test_claim_lets_only_one_of_two_concurrent_senders_send(app, wa):
    store = make_store()
    setup_whatsapp(store, wa)
    messages = [queue(consenting_customer(store)) for _ in range(6)]
    barrier = threading.Barrier(2)
    results = []

    def sender():
        with app.app_context(), db.connection_context():
            barrier.wait()
            results.append([messaging.send_message(m.id, NOW) for m in messages])

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent = [outcome for run in results for outcome in run if outcome == "sent"]
    assert len(sent) == 6
    assert len(wa.requests) == 6
    keys = [b["biz_opaque_callback_data"] for b in wa.sent()]
    assert sorted(keys) == sorted(m.idempotency_key for m in messages)


def test_claim_is_a_conditional_update(app):
    store = make_store()
    message = queue(consenting_customer(store))
    assert messaging.claim(message.id, NOW) is True
    assert messaging.claim(message.id, NOW) is False
    assert Message.get_by_id(message.id).attempts == 1


def test_transient_error_retries_with_backoff_then_sends(app, wa):
    store = make_store()
    setup_whatsapp(store, wa)
    message = queue(consenting_customer(store))
    wa.script("500", "429")
    messaging.send_due(NOW)
    first = Message.get_by_id(message.id)
    assert first.status == "queued" and first.attempts == 1
    delay1 = (first.next_attempt_at - NOW).total_seconds()
    assert 15 <= delay1 <= 30
    assert messaging.send_due(NOW + timedelta(seconds=1)).get("sent", 0) == 0
    messaging.send_due(first.next_attempt_at)
    second = Message.get_by_id(message.id)
    assert second.status == "queued" and second.attempts == 2
    delay2 = (second.next_attempt_at - first.next_attempt_at).total_seconds()
    assert 30 <= delay2 <= 60
    messaging.send_due(second.next_attempt_at)
    final = Message.get_by_id(message.id)
    assert final.status == "sent" and final.attempts == 3
    assert len(wa.accepted) == 1
    assert history(final) == [
        "sending",
        "dispatch",
        "queued",
        "sending",
        "dispatch",
        "queued",
        "sending",
        "dispatch",
        "sent",
    ]


def test_gives_up_after_max_attempts(app, wa):
    store = make_store()
    setup_whatsapp(store, wa)
    message = queue(consenting_customer(store), attempts=messaging.MAX_ATTEMPTS - 1)
    wa.script("500")
    messaging.send_due(NOW)
    failed = Message.get_by_id(message.id)
    assert failed.status == "failed" and failed.failed_at == NOW
    assert "gave up" in failed.error


def test_undeliverable_number_fails_at_once_and_switches_whatsapp_off(app, wa):
    store = make_store()
    setup_whatsapp(store, wa)
    customer = consenting_customer(store)
    message = queue(customer)
    later = queue(customer, idempotency_key="later-one", next_attempt_at=NOW + timedelta(days=1))
    wa.script("error:131026")
    messaging.send_due(NOW)
    failed = Message.get_by_id(message.id)
    assert failed.status == "failed" and failed.attempts == 1
    assert failed.error.startswith("131026")
    consent = Consent.get(Consent.customer == customer.id, Consent.channel == "whatsapp")
    assert consent.granted is False and consent.source == "provider:131026"
    change = ConsentChange.get(ConsentChange.customer == customer.id)
    assert change.granted is False and change.source == "provider:131026"
    assert Message.get_by_id(later.id).status == "suppressed"


def test_template_not_found_fails_without_blaming_the_customer(app, wa):
    store = make_store()
    manager = make_staff("manager", [store])
    setup_whatsapp(store, wa)
    customer = consenting_customer(store)
    message = queue(customer)
    wa.script("error:132001")
    messaging.send_due(NOW)
    assert Message.get_by_id(message.id).status == "failed"
    assert Consent.get(Consent.customer == customer.id).granted is True
    assert Notice.select().where(Notice.staff == manager.id).count() == 1


def test_pair_rate_limit_error_is_retried(app, wa):
    store = make_store()
    setup_whatsapp(store, wa)
    message = queue(consenting_customer(store))
    wa.script("error:131056")
    messaging.send_due(NOW)
    assert Message.get_by_id(message.id).status == "queued"


def test_invalid_phone_flags_the_customer(app):
    from tests.messaging_helpers import setup_sms
    from tests.stubs import TwilioStub

    stub = TwilioStub()
    try:
        store = make_store()
        setup_sms(store, stub)
        customer = consenting_customer(store, channels=("sms", "whatsapp"))
        message = queue(customer, channel="sms")
        other = queue(customer, channel="whatsapp", next_attempt_at=NOW + timedelta(days=1))
        stub.script("error:21211")
        messaging.send_due(NOW)
        assert Message.get_by_id(message.id).status == "failed"
        assert Customer.get_by_id(customer.id).phone_flagged_at == NOW
        assert Message.get_by_id(other.id).status == "suppressed"
        assert messaging.has_consent(Customer.get_by_id(customer.id), "sms") is False
    finally:
        stub.close()


def test_lost_answer_from_whatsapp_is_never_resent_and_alerts_managers(app, wa):
    store = make_store()
    manager = make_staff("manager", [store])
    setup_whatsapp(store, wa, timeout=0.3)
    message = queue(consenting_customer(store))
    wa.script("drop")
    result = messaging.send_due(NOW)
    assert result["unknown"] == 1
    stuck = Message.get_by_id(message.id)
    assert stuck.status == "failed" and stuck.error.startswith("unknown: ")
    messaging.send_due(NOW + timedelta(hours=1))
    messaging.reconcile(NOW + timedelta(hours=1))
    assert len(wa.requests) == 1
    assert Notice.select().where(Notice.staff == manager.id).count() == 1
    # The provider did deliver it: its status webhook settles the unknown.
    assert messaging.apply_status(stuck, "delivered", NOW + timedelta(minutes=2))
    settled = Message.get_by_id(message.id)
    assert settled.status == "delivered" and settled.error == ""


def test_timeout_on_line_is_resent_with_the_same_retry_key_and_not_delivered_twice(app, line):
    store = make_store()
    setup_line(store, line, timeout=0.3)
    line.timeout_sleep = 0.8
    message = queue(consenting_customer(store, channels=("line",), line_id="U1234"), channel="line")
    line.script("timeout")
    messaging.send_due(NOW)
    retrying = Message.get_by_id(message.id)
    assert retrying.status == "queued"
    messaging.send_due(retrying.next_attempt_at)
    sent = Message.get_by_id(message.id)
    assert sent.status == "sent"
    keys = [r["headers"]["x-line-retry-key"] for r in line.requests]
    assert len(keys) == 2 and keys[0] == keys[1] == message.idempotency_key
    assert len(line.accepted) == 1


def test_claimed_but_never_dispatched_is_requeued_by_reconcile(app, wa):
    store = make_store()
    setup_whatsapp(store, wa)
    message = queue(consenting_customer(store))
    # A worker claimed it and died before calling the provider.
    assert messaging.claim(message.id, NOW)
    assert messaging.reconcile(NOW + timedelta(minutes=5)) == {}
    assert messaging.reconcile(NOW + timedelta(minutes=11)) == {"requeued": 1}
    messaging.send_due(NOW + timedelta(minutes=11))
    assert Message.get_by_id(message.id).status == "sent"
    assert len(wa.requests) == 1


def test_crash_during_the_provider_call_is_reconciled_without_a_second_send(app, wa, line):
    store = make_store()
    manager = make_staff("manager", [store])
    setup_whatsapp(store, wa)
    setup_line(store, line)
    wa_msg = queue(consenting_customer(store))
    line_msg = queue(consenting_customer(store, channels=("line",), line_id="U77"), channel="line")
    # The provider accepted both; the worker died before it recorded the answers.
    for message in (wa_msg, line_msg):
        assert messaging.claim(message.id, NOW)
        MessageStatusChange.create(message=message.id, status="dispatch", at=NOW)
        adapter = messaging.adapter_for(messaging.channel_setting(store.id, message.channel))
        to = adapter.address(message.customer)
        adapter.send(messaging._outgoing(message, message.customer, store, to))
    result = messaging.reconcile(NOW + timedelta(minutes=11))
    assert result == {"unknown": 1, "requeued": 1}
    unknown = Message.get_by_id(wa_msg.id)
    assert unknown.status == "failed" and unknown.error.startswith("unknown: ")
    assert Notice.select().where(Notice.staff == manager.id).count() == 1
    messaging.send_due(NOW + timedelta(minutes=11))
    assert Message.get_by_id(line_msg.id).status == "sent"
    assert len(wa.requests) == 1 and len(line.accepted) == 1
    assert len(line.requests) == 2  # the resend was answered 409: already accepted


def test_consent_withdrawn_after_queueing_suppresses_at_send_time(app, wa):
    store = make_store()
    setup_whatsapp(store, wa)
    customer = consenting_customer(store)
    message = queue(customer)
    Consent.update(granted=False).where(Consent.customer == customer.id).execute()
    assert messaging.send_due(NOW)["suppressed"] == 1
    suppressed = Message.get_by_id(message.id)
    assert suppressed.status == "suppressed" and suppressed.closed_at == NOW
    assert "consent" in suppressed.error
    assert wa.requests == []


def test_suppress_for_opt_out_turns_queued_messages_suppressed(app):
    store = make_store()
    customer = consenting_customer(store, channels=("whatsapp", "sms"))
    a = queue(customer)
    b = queue(customer, channel="sms")
    sent = queue(customer, status="sent")
    assert messaging.suppress_for_opt_out(customer, NOW, channel="sms") == 1
    assert Message.get_by_id(b.id).status == "suppressed"
    assert Message.get_by_id(a.id).status == "queued"
    assert messaging.suppress_for_opt_out(customer, NOW) == 1
    assert Message.get_by_id(a.id).status == "suppressed"
    assert Message.get_by_id(sent.id).status == "sent"


@pytest.mark.parametrize(
    "text", ["STOP", " stop ", "退订", "退訂", "ยกเลิก", "BERHENTI", "Berhenti"]
)
def test_stop_words_in_every_language(text):
    assert messaging.is_stop_word(text)


@pytest.mark.parametrize("text", ["stop please", "ok", "", None, "停止"])
def test_other_replies_are_not_stop_words(text):
    assert not messaging.is_stop_word(text)


def test_quiet_hours_hold_messages_until_morning(app, wa):
    store = make_store(timezone="Asia/Kuala_Lumpur")
    setup_whatsapp(store, wa)
    message = queue(consenting_customer(store))
    night = utc(2026, 11, 24, 14, 30)  # 22:30 in Kuala Lumpur
    assert messaging.send_due(night).get("sent", 0) == 0
    waiting = Message.get_by_id(message.id)
    assert waiting.status == "queued"
    assert waiting.next_attempt_at == utc(2026, 11, 25, 1, 0)  # 09:00 next morning
    assert messaging.send_due(utc(2026, 11, 24, 20, 0)).get("sent", 0) == 0  # 04:00
    assert messaging.send_due(utc(2026, 11, 25, 1, 0))["sent"] == 1


def test_quiet_hours_across_midnight_and_dst():
    from app.models import Store

    store = Store(timezone="America/New_York", quiet_start="21:00", quiet_end="09:00")
    # 22:00 EST on 7 March 2026; clocks go forward at 02:00 on 8 March.
    end = messaging.quiet_hours_end(store, utc(2026, 3, 8, 3, 0))
    assert end == utc(2026, 3, 8, 13, 0)  # 09:00 EDT
    # 01:30 EDT on 1 November 2026 (first of the two) — fall back at 02:00.
    end = messaging.quiet_hours_end(store, utc(2026, 11, 1, 5, 30))
    assert end == utc(2026, 11, 1, 14, 0)  # 09:00 EST
    assert messaging.quiet_hours_end(store, utc(2026, 11, 1, 16, 0)) is None  # 11:00
    day = Store(timezone="Asia/Bangkok", quiet_start="12:00", quiet_end="14:00")
    assert messaging.quiet_hours_end(day, utc(2026, 11, 24, 6, 0)) == utc(2026, 11, 24, 7, 0)
    off = Store(timezone="UTC", quiet_start="00:00", quiet_end="00:00")
    assert messaging.quiet_hours_end(off, utc(2026, 11, 24, 3, 0)) is None


def test_rate_limit_is_shared_by_two_senders(app, wa):
    store = make_store()
    setup_whatsapp(store, wa, per_second=3)
    for _ in range(5):
        queue(consenting_customer(store))
    first = messaging.send_due(NOW, max_seconds=0)
    second = messaging.send_due(NOW + timedelta(milliseconds=500), max_seconds=0)
    assert first["sent"] == 3
    assert second.get("sent", 0) == 0
    third = messaging.send_due(NOW + timedelta(seconds=1), max_seconds=0)
    assert third["sent"] == 2
    times = sorted(m.sending_at for m in Message.select())
    for i in range(len(times) - 3):
        assert times[i + 3] - times[i] >= timedelta(seconds=1)


def test_rate_limited_drain_waits_for_the_window_and_finishes(app, wa):
    store = make_store()
    setup_whatsapp(store, wa, per_second=4)
    for _ in range(6):
        queue(consenting_customer(store))
    result = messaging.send_due(NOW)
    assert result["sent"] == 6
    times = sorted(m.sending_at for m in Message.select())
    for i in range(len(times) - 4):
        assert times[i + 4] - times[i] >= timedelta(seconds=1)


def test_daily_quota_keeps_messages_queued_with_a_reason_and_warns(app, wa):
    store = make_store(timezone="Asia/Kuala_Lumpur")
    manager = make_staff("manager", [store])
    employee = make_staff("employee", [store])
    setup_whatsapp(store, wa, daily_quota=2)
    for _ in range(4):
        queue(consenting_customer(store))
    result = messaging.send_due(NOW)
    assert result["sent"] == 2
    waiting = list(Message.select().where(Message.status == "queued"))
    assert len(waiting) == 2
    assert all("quota" in m.error for m in waiting)
    assert all(m.next_attempt_at == utc(2026, 11, 24, 16, 0) for m in waiting)  # local midnight
    notices = list(Notice.select().where(Notice.staff == manager.id))
    assert len(notices) == 1 and "quota" in notices[0].text
    assert Notice.select().where(Notice.staff == employee.id).count() == 0
    assert messaging.quota_warnings(store, NOW)[0]["waiting"] == 2
    messaging.send_due(NOW + timedelta(minutes=5))
    assert Notice.select().where(Notice.staff == manager.id).count() == 1
    assert messaging.send_due(utc(2026, 11, 25, 2, 0))["sent"] == 2


def test_choose_channel_follows_consent_address_and_store_order(app, wa, line):
    store = make_store(settings={"channel_order": ["whatsapp", "line", "followup"]})
    setup_whatsapp(store, wa)
    setup_line(store, line)
    both = consenting_customer(store, channels=("whatsapp", "line"), line_id="U1")
    line_only = consenting_customer(store, channels=("line",), line_id="U2")
    no_address = consenting_customer(store, channels=("line",))
    none = consenting_customer(store, channels=())
    assert messaging.choose_channel(both, store, None) == "whatsapp"
    assert messaging.choose_channel(both, store, "line") == "line"
    assert messaging.choose_channel(line_only, store, "whatsapp") == "line"
    assert messaging.choose_channel(no_address, store, None) == "followup"
    assert messaging.choose_channel(none, store, None) == "followup"
    strict = make_store(settings={"channel_order": ["whatsapp"]})
    assert messaging.choose_channel(consenting_customer(strict), strict, None) is None


def test_channel_secrets_are_encrypted_and_masked(app, wa):
    store = make_store()
    setting = setup_whatsapp(store, wa)
    raw = ChannelSetting.get_by_id(setting.id).secret
    assert wa.token not in raw and "wa-app-secret" not in raw
    assert secrets_box.decrypt(raw)["access_token"] == wa.token
    assert messaging.masked_secrets(setting)["access_token"].endswith(wa.token[-4:])
    assert wa.token not in messaging.masked_secrets(setting)["access_token"]
    assert secrets_box.decrypt(raw, key="another-key") == {}
    messaging.configure_channel(
        store, "whatsapp", NOW, True, dict(setting.config), {"access_token": ""}
    )
    again = ChannelSetting.get_by_id(setting.id)
    assert secrets_box.decrypt(again.secret)["access_token"] == wa.token


def test_message_for_unconfigured_channel_fails_loudly(app):
    store = make_store()
    manager = make_staff("manager", [store])
    message = queue(consenting_customer(store))
    messaging.send_due(NOW)
    failed = Message.get_by_id(message.id)
    assert failed.status == "failed" and "not configured" in failed.error
    assert Notice.select().where(Notice.staff == manager.id).count() == 1


def test_send_message_job_sends_one_message_now(app, wa):
    from unittest import mock

    from app.tasks import messaging_jobs

    store = make_store()
    setup_whatsapp(store, wa)
    message = queue(consenting_customer(store))
    other = queue(consenting_customer(store))
    with mock.patch("app.clock.now", return_value=NOW):
        assert messaging_jobs.send_message(message.id)() == "sent"
        assert messaging_jobs.send_message(message.id)() == "skipped"
    assert Message.get_by_id(message.id).status == "sent"
    assert Message.get_by_id(other.id).status == "queued"
    assert len(wa.requests) == 1


def test_reconcile_job_settles_stuck_messages(app, line):
    from unittest import mock

    from app.tasks import messaging_jobs

    store = make_store()
    setup_line(store, line)
    message = queue(consenting_customer(store, channels=("line",), line_id="U5"), channel="line")
    messaging.claim(message.id, NOW)
    with mock.patch("app.clock.now", return_value=NOW + timedelta(minutes=30)):
        messaging_jobs.reconcile_outbox()
    assert Message.get_by_id(message.id).status == "queued"


def test_send_message_during_quiet_hours_waits(app, wa):
    store = make_store(timezone="Asia/Kuala_Lumpur")
    setup_whatsapp(store, wa)
    message = queue(consenting_customer(store))
    assert messaging.send_message(message.id, utc(2026, 11, 24, 15, 0)) == "deferred"
    assert Message.get_by_id(message.id).next_attempt_at == utc(2026, 11, 25, 1, 0)
    assert wa.requests == []
