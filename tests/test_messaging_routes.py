"""Inbound webhooks, the unsubscribe link, and the manager's message pages."""

import json
import time
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from app.models import Consent, ConsentChange, Message, MessageStatusChange, Plan
from app.services import messaging
from app.services.channels.webhook import signature
from tests.factories import login, make_staff, make_store
from tests.messaging_helpers import (
    NOW,
    consenting_customer,
    queue,
    setup_line,
    setup_sms,
    setup_webhook,
    setup_whatsapp,
)
from tests.stubs import LineStub, TwilioStub, WebhookReceiver

# Services read SECRET_KEY from the running app, as in a request or a CLI command.
pytestmark = pytest.mark.usefixtures("in_app_context")

STOP_WORDS = ["STOP", "退订", "退訂", "ยกเลิก", "BERHENTI"]


def _sent_whatsapp(store, wa, customer):
    message = queue(customer)
    messaging.send_due(NOW)
    return Message.get_by_id(message.id)


def test_whatsapp_verification_echoes_the_challenge(app, client, wa):
    store = make_store(key="kl")
    setup_whatsapp(store, wa)
    query = {"hub.mode": "subscribe", "hub.verify_token": "vt", "hub.challenge": "1158201444"}
    resp = client.get("/hooks/whatsapp/kl?" + urlencode(query))
    assert resp.status_code == 200 and resp.data == b"1158201444"
    query["hub.verify_token"] = "wrong"
    assert client.get("/hooks/whatsapp/kl?" + urlencode(query)).status_code == 403


def test_whatsapp_status_webhook_moves_forward_only_with_a_good_signature(app, client, wa):
    store = make_store(key="kl")
    setup_whatsapp(store, wa)
    message = _sent_whatsapp(store, wa, consenting_customer(store))
    wamid, key = message.provider_message_id, message.idempotency_key
    raw, headers = wa.status_webhook([(wamid, "delivered", key)])
    bad = dict(headers, **{"X-Hub-Signature-256": "sha256=" + "0" * 64})
    assert client.post("/hooks/whatsapp/kl", data=raw, headers=bad).status_code == 401
    assert Message.get_by_id(message.id).status == "sent"
    forged_raw, forged = wa.sign(json.loads(raw), secret="not-the-app-secret")
    assert client.post("/hooks/whatsapp/kl", data=forged_raw, headers=forged).status_code == 401
    assert client.post("/hooks/whatsapp/kl", data=raw, headers=headers).status_code == 200
    assert Message.get_by_id(message.id).status == "delivered"
    raw, headers = wa.status_webhook([(wamid, "read", key)])
    client.post("/hooks/whatsapp/kl", data=raw, headers=headers)
    assert Message.get_by_id(message.id).status == "read"
    # Late, out-of-order statuses never move it back.
    raw, headers = wa.status_webhook([(wamid, "delivered", key), (wamid, "sent", key)])
    client.post("/hooks/whatsapp/kl", data=raw, headers=headers)
    final = Message.get_by_id(message.id)
    assert final.status == "read" and final.delivered_at and final.read_at
    statuses = [h.status for h in final.history.order_by(MessageStatusChange.id)]
    assert statuses == ["sending", "dispatch", "sent", "delivered", "read"]


def test_whatsapp_failed_status_switches_whatsapp_off(app, client, wa):
    store = make_store(key="kl")
    setup_whatsapp(store, wa)
    customer = consenting_customer(store)
    message = _sent_whatsapp(store, wa, customer)
    raw, headers = wa.status_webhook([(message.provider_message_id, "failed", "")])
    client.post("/hooks/whatsapp/kl", data=raw, headers=headers)
    assert Message.get_by_id(message.id).status == "failed"
    assert not messaging.has_consent(customer, "whatsapp")


@pytest.mark.parametrize("word", STOP_WORDS)
def test_whatsapp_stop_reply_opts_out_at_once(app, client, wa, word):
    store = make_store(key="kl")
    setup_whatsapp(store, wa)
    customer = consenting_customer(store, phone="+60123456789")
    _sent_whatsapp(store, wa, customer)
    waiting = queue(customer, next_attempt_at=NOW + timedelta(days=1))
    raw, headers = wa.reply_webhook("60123456789", f"  {word.lower()} ")
    assert client.post("/hooks/whatsapp/kl", data=raw, headers=headers).status_code == 200
    consent = Consent.get(Consent.customer == customer.id, Consent.channel == "whatsapp")
    assert consent.granted is False and consent.source == "reply:whatsapp"
    assert Message.get_by_id(waiting.id).status == "suppressed"


def test_whatsapp_ordinary_reply_counts_as_a_reply(app, client, wa):
    store = make_store(key="kl")
    setup_whatsapp(store, wa)
    plan = Plan.create(store=store, name="Member day", type="recurring", status="active")
    customer = consenting_customer(store, phone="+60123456789")
    message = queue(customer, plan=plan)
    messaging.send_due(NOW)
    raw, headers = wa.reply_webhook("60123456789", "See you tomorrow!")
    client.post("/hooks/whatsapp/kl", data=raw, headers=headers)
    assert messaging.has_consent(customer, "whatsapp")
    rates = messaging.plan_rates(store)
    assert rates[0]["replied"] == 1 and rates[0]["replied_rate"] == 1.0
    assert MessageStatusChange.get(MessageStatusChange.status == "reply").message_id == message.id


@pytest.mark.parametrize("word", STOP_WORDS)
def test_line_stop_reply_opts_out_with_a_good_signature_only(app, client, word):
    stub = LineStub()
    try:
        store = make_store(key="kl")
        setup_line(store, stub)
        customer = consenting_customer(store, channels=("line",), line_id="U4af498")
        event = {
            "type": "message",
            "message": {"type": "text", "id": "1", "text": word},
            "source": {"type": "user", "userId": "U4af498"},
            "timestamp": int(time.time() * 1000),
        }
        raw, headers = stub.webhook([event], secret="wrong")
        assert client.post("/hooks/line/kl", data=raw, headers=headers).status_code == 401
        assert messaging.has_consent(customer, "line")
        raw, headers = stub.webhook([event])
        assert client.post("/hooks/line/kl", data=raw, headers=headers).status_code == 200
        change = ConsentChange.get(ConsentChange.customer == customer.id)
        assert change.granted is False and change.source == "reply:line"
    finally:
        stub.close()


def test_line_unfollow_opts_out(app, client):
    stub = LineStub()
    try:
        store = make_store(key="kl")
        setup_line(store, stub)
        customer = consenting_customer(store, channels=("line",), line_id="U9")
        raw, headers = stub.webhook([{"type": "unfollow", "source": {"userId": "U9"}}])
        client.post("/hooks/line/kl", data=raw, headers=headers)
        assert not messaging.has_consent(customer, "line")
    finally:
        stub.close()


def _twilio_post(client, path, form, token):
    url = f"http://localhost{path}"
    sig = RequestValidator(token).compute_signature(url, form)
    return client.post(path, data=form, headers={"X-Twilio-Signature": sig})


@pytest.mark.parametrize("word", STOP_WORDS)
def test_twilio_inbound_stop_opts_out(app, client, word):
    stub = TwilioStub()
    try:
        store = make_store(key="kl")
        setup_sms(store, stub)
        customer = consenting_customer(store, channels=("sms",), phone="+60123456789")
        form = {"From": "+60123456789", "To": "+15005550006", "Body": word, "MessageSid": "SM1"}
        bad = client.post(
            "/hooks/twilio/kl/inbound", data=form, headers={"X-Twilio-Signature": "nope"}
        )
        assert bad.status_code == 401
        resp = _twilio_post(client, "/hooks/twilio/kl/inbound", form, stub.auth_token)
        assert resp.status_code == 200 and b"<Response>" in resp.data
        assert not messaging.has_consent(customer, "sms")
        assert ConsentChange.get(ConsentChange.customer == customer.id).source == "reply:twilio"
    finally:
        stub.close()


def test_twilio_status_callback_updates_the_message(app, client):
    stub = TwilioStub()
    try:
        store = make_store(key="kl")
        setup_sms(store, stub)
        message = queue(consenting_customer(store, channels=("sms",)), channel="sms")
        messaging.send_due(NOW)
        sid = Message.get_by_id(message.id).provider_message_id
        form = {"MessageSid": sid, "MessageStatus": "delivered", "AccountSid": stub.account_sid}
        bad = client.post("/hooks/twilio/kl/status", data=form, headers={"X-Twilio-Signature": "x"})
        assert bad.status_code == 401
        assert (
            _twilio_post(client, "/hooks/twilio/kl/status", form, stub.auth_token).status_code
            == 204
        )
        assert Message.get_by_id(message.id).status == "delivered"
        form["MessageStatus"] = "sent"
        _twilio_post(client, "/hooks/twilio/kl/status", form, stub.auth_token)
        assert Message.get_by_id(message.id).status == "delivered"
    finally:
        stub.close()


def _signed_webhook(client, secret, payload):
    raw = json.dumps(payload).encode()
    ts = str(int(time.time()))
    return client.post(
        "/hooks/webhook/kl",
        data=raw,
        headers={
            "Content-Type": "application/json",
            "X-Revisit-Timestamp": ts,
            "X-Revisit-Signature": signature(secret, ts, raw),
        },
    )


def test_webhook_channel_callbacks_are_signed(app, client):
    receiver = WebhookReceiver()
    try:
        store = make_store(key="kl")
        setup_webhook(store, receiver)
        customer = consenting_customer(store, channels=("sms",))
        message = queue(customer, channel="webhook")
        messaging.send_due(NOW)
        status = {"type": "status", "id": message.idempotency_key, "status": "delivered"}
        assert _signed_webhook(client, "wrong", status).status_code == 401
        assert _signed_webhook(client, receiver.secret, status).status_code == 200
        assert Message.get_by_id(message.id).status == "delivered"
        reply = {"type": "reply", "customer_id": customer.id, "channel": "sms", "text": "Stop"}
        assert _signed_webhook(client, receiver.secret, reply).status_code == 200
        assert not messaging.has_consent(customer, "sms")
        assert ConsentChange.get(ConsentChange.customer == customer.id).source == "reply:webhook"
    finally:
        receiver.close()


def test_unsubscribe_link_confirms_on_post_and_is_idempotent(app, client):
    store = make_store()
    customer = consenting_customer(store, channels=("email", "whatsapp"), email="a@b.test")
    waiting = queue(customer, channel="email")
    token = messaging.unsubscribe_token(customer.id, "email")
    page = client.get(f"/u/{token}")
    assert page.status_code == 200 and b"<form" in page.data
    assert messaging.has_consent(customer, "email")
    for _ in range(2):
        resp = client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
        assert resp.status_code == 200
    assert not messaging.has_consent(customer, "email")
    assert messaging.has_consent(customer, "whatsapp")
    changes = list(ConsentChange.select().where(ConsentChange.customer == customer.id))
    assert [(c.channel, c.granted, c.source) for c in changes] == [
        ("email", False, "unsubscribe_link")
    ]
    assert Message.get_by_id(waiting.id).status == "suppressed"
    assert b"<form" not in client.get(f"/u/{token}").data


def test_tampered_unsubscribe_link_is_404_and_leaks_nothing(app, client):
    store = make_store()
    customer = consenting_customer(store, channels=("email",), name="Siti Aminah")
    token = messaging.unsubscribe_token(customer.id, "email")
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for resp in (client.get(f"/u/{tampered}"), client.post(f"/u/{tampered}")):
        assert resp.status_code == 404
        assert b"Siti" not in resp.data
    assert messaging.has_consent(customer, "email")


def test_message_list_full_page_and_fragment_with_filters(app, client, wa):
    store = make_store()
    manager = make_staff("manager", [store])
    plan = Plan.create(store=store, name="Member day", type="recurring", status="active")
    setup_whatsapp(store, wa)
    a = consenting_customer(store, name="Aisyah")
    b = consenting_customer(store, name="Mei Ling")
    queue(a, plan=plan)
    queue(b, plan=plan, next_attempt_at=NOW + timedelta(days=3))
    messaging.send_due(NOW)
    login(client, manager)
    page = client.get("/messages")
    assert page.status_code == 200 and b"<html" in page.data
    assert b"Aisyah" in page.data and b"Mei Ling" in page.data
    assert b"Member day" in page.data
    frag = client.get("/messages?status=queued", headers={"HX-Request": "true"})
    assert frag.status_code == 200 and b"<html" not in frag.data
    assert b"Mei Ling" in frag.data and b"Aisyah" not in frag.data
    by_customer = client.get(f"/messages?customer={a.id}&channel=whatsapp")
    assert b"Aisyah" in by_customer.data and b"Mei Ling" not in by_customer.data


def test_messages_page_shows_the_quota_banner(app, client, wa):
    store = make_store()
    manager = make_staff("manager", [store])
    setup_whatsapp(store, wa, daily_quota=1)
    queue(consenting_customer(store))
    queue(consenting_customer(store))
    messaging.send_due(NOW)
    login(client, manager)
    from unittest import mock

    with mock.patch("app.clock.now", return_value=NOW):
        page = client.get("/messages")
    assert b"quota is used up" in page.data


def test_channel_settings_never_show_credentials_back(app, client, wa):
    store = make_store()
    manager = make_staff("manager", [store])
    login(client, manager)
    resp = client.post(
        "/messages/channels/whatsapp",
        data={
            "enabled": "1",
            "phone_number_id": "106540352242922",
            "access_token": "EAAG-very-secret-token-9876",
            "app_secret": "app-secret-5555",
            "per_second": "3",
            "daily_quota": "1000",
        },
    )
    assert resp.status_code == 303
    page = client.get("/messages/channels")
    assert page.status_code == 200
    assert b"EAAG-very-secret" not in page.data and b"9876" in page.data
    frag = client.get("/messages/channels", headers={"HX-Request": "true"})
    assert b"<html" not in frag.data and b"app-secret" not in frag.data
    setting = messaging.channel_setting(store.id, "whatsapp")
    assert setting.enabled and setting.daily_quota == 1000
    assert b"EAAG" not in setting.secret.encode()


def test_one_click_unsubscribe_and_webhooks_work_with_csrf_on(csrf_app):
    client = csrf_app.test_client()
    with csrf_app.app_context():
        store = make_store(key="kl")
        stub = LineStub()
        try:
            setup_line(store, stub)
            customer = consenting_customer(
                store, channels=("email", "line"), email="a@b.test", line_id="U1"
            )
            token = messaging.unsubscribe_token(customer.id, "email")
            resp = client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
            assert resp.status_code == 200
            assert not messaging.has_consent(customer, "email")
            event = {"type": "unfollow", "source": {"userId": "U1"}}
            raw, headers = stub.webhook([event])
            assert client.post("/hooks/line/kl", data=raw, headers=headers).status_code == 200
            assert not messaging.has_consent(customer, "line")
        finally:
            stub.close()
