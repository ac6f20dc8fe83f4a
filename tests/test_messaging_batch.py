"""Batched sending: one claim per batch, idempotent providers called concurrently, each message's
own outcome recorded, and the crash markers still in place."""

from collections import Counter
from datetime import timedelta

import pytest

from app.models import Message, MessageStatusChange
from app.services import messaging
from tests.factories import make_store
from tests.messaging_helpers import NOW, consenting_customer, queue, setup_webhook
from tests.stubs import WebhookReceiver

# Services read SECRET_KEY from the running app, as in a request or a CLI command.
pytestmark = pytest.mark.usefixtures("in_app_context")


@pytest.fixture
def receiver():
    stub = WebhookReceiver()
    yield stub
    stub.close()


def test_a_webhook_batch_records_each_messages_own_outcome(app, receiver):
    store = make_store()
    setting = setup_webhook(store, receiver, per_second=1000)
    setting.config = {**setting.config, "timeout": 5}  # eight calls at once on a busy machine
    setting.save()
    messages = [
        queue(consenting_customer(store, phone=f"+6017000{i:04d}"), channel="webhook")
        for i in range(50)
    ]
    receiver.script("500", "error:invalid_address")
    result = messaging.send_due(NOW, max_seconds=0)
    assert result["claimed"] == 50 and result["sent"] == 48, result
    assert result["retry"] == 1 and result["failed"] == 1
    statuses = Counter(Message.get_by_id(m.id).status for m in messages)
    assert statuses == {"sent": 48, "queued": 1, "failed": 1}
    dispatches = Counter(
        h.message_id
        for h in MessageStatusChange.select().where(MessageStatusChange.status == "dispatch")
    )
    assert len(dispatches) == 50 and max(dispatches.values()) == 1
    sent = Message.select().where(Message.status == "sent")
    assert all(m.provider_message_id == f"ext-{m.idempotency_key}" for m in sent)
    assert all(m.sent_at == NOW and m.to_address.startswith("+6017") for m in sent)
    assert len(receiver.delivered) == 48
    retry = Message.get(Message.status == "queued")
    messaging.send_due(retry.next_attempt_at + timedelta(seconds=1), max_seconds=0)
    assert Message.get_by_id(retry.id).status == "sent"
    assert len(receiver.delivered) == 49 and receiver.bad_signatures == 0


def test_a_status_webhook_that_came_first_keeps_its_status(app, receiver, monkeypatch):
    from app.services.channels.webhook import WebhookAdapter

    store = make_store()
    setup_webhook(store, receiver)
    message = queue(consenting_customer(store), channel="webhook")
    real_send = WebhookAdapter.send

    def send_then_status_arrives(self, out):
        result = real_send(self, out)
        # The receiver reports delivery before our own "sent" is written.
        assert messaging.apply_status(Message.get_by_id(out.message_id), "delivered", NOW)
        return result

    monkeypatch.setattr(WebhookAdapter, "send", send_then_status_arrives)
    assert messaging.send_due(NOW, max_seconds=0)["sent"] == 1
    after = Message.get_by_id(message.id)
    assert after.status == "delivered"
    assert after.provider_message_id == f"ext-{message.idempotency_key}"
