"""Each channel adapter against a local server that speaks the provider's protocol."""

import email
import email.policy
import hashlib
import hmac
import json
import time

import pytest

from app.models import Consent, Message
from app.services import messaging
from app.services.channels import Outgoing
from app.services.channels.base import close_connections
from app.services.channels.webhook import signature, verify
from app.services.channels.whatsapp import WhatsAppAdapter
from tests.factories import make_store
from tests.messaging_helpers import (
    NOW,
    consenting_customer,
    queue,
    setup_email,
    setup_line,
    setup_sms,
    setup_webhook,
)
from tests.stubs import LineStub, SmtpSink, TwilioStub, WebhookReceiver

# Services read SECRET_KEY from the running app, as in a request or a CLI command.
pytestmark = pytest.mark.usefixtures("in_app_context")


@pytest.fixture
def sink():
    server = SmtpSink(refuse={"bounce@example.test"})
    yield server
    server.close()


def test_email_goes_over_a_real_smtp_conversation_with_unsubscribe_headers(app, sink):
    store = make_store()
    setup_email(store, sink)
    customer = consenting_customer(store, channels=("email",), email="xiaohong@example.test")
    message = queue(customer, channel="email", subject="Member day", body="Hi 小红\n\nSee you!")
    assert messaging.send_due(NOW)["sent"] == 1
    assert len(sink.messages) == 1
    got = sink.messages[0]
    assert got["to"] == ["xiaohong@example.test"]
    assert got["from"] == "hello@bunga.example"
    parsed = email.message_from_bytes(got["data"], policy=email.policy.default)
    assert parsed["Subject"] == "Member day"
    assert "Bunga Beauty" in parsed["From"]
    unsubscribe = parsed["List-Unsubscribe"]
    assert unsubscribe.startswith("<http") and "/u/" in unsubscribe
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["X-Revisit-Idempotency-Key"] == message.idempotency_key
    text = parsed.get_body(("plain",)).get_content()
    html = parsed.get_body(("html",)).get_content()
    assert "Hi 小红" in text and unsubscribe.strip("<>") in text
    assert "<p>Hi 小红</p>" in html and "Unsubscribe</a>" in html
    sent = Message.get_by_id(message.id)
    assert sent.status == "sent" and sent.provider_message_id == parsed["Message-ID"]
    token = unsubscribe.strip("<>").rsplit("/u/", 1)[1]
    assert messaging.read_unsubscribe_token(token) == (customer.id, "email")


def test_email_refused_by_the_server_fails_and_switches_email_off(app, sink):
    store = make_store()
    setup_email(store, sink)
    customer = consenting_customer(store, channels=("email",), email="bounce@example.test")
    message = queue(customer, channel="email")
    messaging.send_due(NOW)
    assert Message.get_by_id(message.id).status == "failed"
    consent = Consent.get(Consent.customer == customer.id, Consent.channel == "email")
    assert consent.granted is False and consent.source == "provider:550"
    assert sink.messages == []


def test_email_with_no_server_listening_is_retried(app, sink):
    store = make_store()
    messaging.configure_channel(
        store, "email", NOW, True, {"from": "a@b.test"}, {"smtp_url": "smtp://127.0.0.1:9"}
    )
    message = queue(
        consenting_customer(store, channels=("email",), email="x@y.test"), channel="email"
    )
    messaging.send_due(NOW)
    assert Message.get_by_id(message.id).status == "queued"


def test_line_push_carries_the_idempotency_key_as_retry_key(app):
    stub = LineStub()
    try:
        store = make_store()
        setup_line(store, stub)
        message = queue(
            consenting_customer(store, channels=("line",), line_id="U4af4980629"),
            channel="line",
            body="明天是会员日",
        )
        messaging.send_due(NOW)
        request = stub.requests[0]
        assert request["path"] == "/v2/bot/message/push"
        assert request["headers"]["authorization"] == "Bearer line-token"
        assert request["headers"]["x-line-retry-key"] == message.idempotency_key
        body = json.loads(request["raw"])
        assert body == {"to": "U4af4980629", "messages": [{"type": "text", "text": "明天是会员日"}]}
        assert Message.get_by_id(message.id).status == "sent"
    finally:
        stub.close()


def test_line_rejecting_the_user_id_switches_line_off(app):
    stub = LineStub()
    try:
        store = make_store()
        setup_line(store, stub)
        customer = consenting_customer(store, channels=("line",), line_id="Ubad")
        message = queue(customer, channel="line")
        stub.script("error:400")
        messaging.send_due(NOW)
        assert Message.get_by_id(message.id).status == "failed"
        assert not messaging.has_consent(customer, "line")
    finally:
        stub.close()


def test_sms_goes_through_the_official_twilio_client(app):
    stub = TwilioStub()
    try:
        store = make_store(key="kl")
        setup_sms(store, stub)
        customer = consenting_customer(store, channels=("sms",), phone="+60123456789")
        message = queue(customer, channel="sms", body="Member day tomorrow")
        assert messaging.send_due(NOW)["sent"] == 1
        request = stub.accepted[0]
        assert request["form"]["To"] == "+60123456789"
        assert request["form"]["From"] == "+15005550006"
        assert request["form"]["Body"] == "Member day tomorrow"
        assert request["form"]["StatusCallback"].endswith("/hooks/twilio/kl/status")
        assert "twilio-python" in request["headers"]["user-agent"]
        sent = Message.get_by_id(message.id)
        assert sent.provider_message_id == request["sid"]
    finally:
        stub.close()


def test_sms_rate_limited_by_twilio_is_retried(app):
    stub = TwilioStub()
    try:
        store = make_store()
        setup_sms(store, stub)
        message = queue(consenting_customer(store, channels=("sms",)), channel="sms")
        stub.script("429")
        messaging.send_due(NOW)
        assert Message.get_by_id(message.id).status == "queued"
        stub.script("ok")
        messaging.send_due(Message.get_by_id(message.id).next_attempt_at)
        assert Message.get_by_id(message.id).status == "sent"
    finally:
        stub.close()


def test_webhook_is_signed_with_timestamp_and_retried_without_duplicates(app):
    receiver = WebhookReceiver()
    try:
        store = make_store()
        setup_webhook(store, receiver)
        message = queue(consenting_customer(store), channel="webhook", body="hello")
        receiver.script("500", "timeout")
        receiver.timeout_sleep = 0.8
        messaging.send_due(NOW)
        assert Message.get_by_id(message.id).status == "queued"
        messaging.send_due(Message.get_by_id(message.id).next_attempt_at)
        assert Message.get_by_id(message.id).status == "queued"
        messaging.send_due(Message.get_by_id(message.id).next_attempt_at)
        assert Message.get_by_id(message.id).status == "sent"
        assert receiver.bad_signatures == 0
        assert len(receiver.requests) == 3
        assert list(receiver.delivered) == [message.idempotency_key]
        assert receiver.delivered[message.idempotency_key]["body"] == "hello"
    finally:
        receiver.close()


def test_webhook_signature_scheme():
    body = b'{"a":1}'
    sig = signature("s3cret", "1700000000", body)
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sig == "sha256=" + expected
    assert verify("s3cret", "1700000000", body, sig, now=1700000100)
    assert not verify("s3cret", "1700000000", body, sig, now=1700009999)
    assert not verify("other", "1700000000", body, sig, now=1700000100)
    assert not verify("s3cret", "1700000000", b'{"a":2}', sig, now=1700000100)


def _wa_adapter(stub):
    config = {"base_url": stub.base_url, "phone_number_id": "106540352242922", "timeout": 2}
    return WhatsAppAdapter(config, {"access_token": stub.token})


def _outgoing(to: str) -> Outgoing:
    return Outgoing(message_id=1, idempotency_key=f"key-{to}", to=to, body="Hi")


def test_provider_calls_reuse_one_kept_alive_connection(app):
    from tests.stubs import WhatsAppStub

    stub = WhatsAppStub()
    try:
        adapter = _wa_adapter(stub)
        for i in range(5):
            adapter.send(_outgoing(f"+6012345678{i}"))
        assert len(stub.accepted) == 5
        assert len({r["peer"] for r in stub.requests}) == 1
    finally:
        close_connections()
        stub.close()


def test_a_connection_the_provider_closed_while_idle_is_replaced_not_failed(app):
    from tests.stubs import WhatsAppStub

    class Closing(WhatsAppStub):
        idle_timeout = 0.2

    stub = Closing()
    try:
        adapter = _wa_adapter(stub)
        adapter.send(_outgoing("+60123456780"))
        time.sleep(0.6)  # the server has closed the idle connection by now
        result = adapter.send(_outgoing("+60123456781"))
        assert result.provider_message_id
        assert len(stub.accepted) == 2
        assert len({r["peer"] for r in stub.requests}) == 2
    finally:
        close_connections()
        stub.close()


def test_a_forked_sender_opens_its_own_connections(app):
    import os

    from app.services.channels import base
    from tests.stubs import WhatsAppStub

    stub = WhatsAppStub()
    try:
        adapter = _wa_adapter(stub)
        adapter.send(_outgoing("+60123456780"))
        parent = base._pool.conns[("http", "127.0.0.1", stub.server.server_address[1])]
        pid = os.fork()
        if pid == 0:  # the child sends over a connection of its own, then leaves at once
            try:
                adapter.send(_outgoing("+60123456781"))
                mine = base._pool.conns[("http", "127.0.0.1", stub.server.server_address[1])]
                os._exit(0 if mine is not parent else 1)
            except BaseException:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        adapter.send(_outgoing("+60123456782"))  # the parent's connection still works
        assert len(stub.accepted) == 3
        assert len({r["peer"] for r in stub.requests}) == 2
    finally:
        close_connections()
        stub.close()
