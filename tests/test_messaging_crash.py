"""A sender killed with SIGKILL mid-batch and restarted never delivers a message twice."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta

import pytest

from app.models import Message
from tests.factories import make_store
from tests.messaging_helpers import NOW, consenting_customer, queue, setup_line, setup_whatsapp
from tests.stubs import LineStub, WhatsAppStub

pytestmark = pytest.mark.usefixtures("in_app_context")

SENDER = """
import sys
from datetime import datetime, timedelta
from app import create_app
from app.services import messaging

now = datetime.fromisoformat(sys.argv[1])
app = create_app()
with app.app_context():
    if sys.argv[2] == "restart":
        print(messaging.reconcile(now), flush=True)
    print(messaging.send_due(now), flush=True)
"""


def _sender(app, now, mode):
    env = dict(os.environ, DATABASE_URL=app.config["DATABASE_URL"], SECRET_KEY="test-secret")
    env.pop("REVISIT_NOW", None)
    return subprocess.Popen(
        [sys.executable, "-c", SENDER, now.isoformat(), mode],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_after(proc, stub, accepted: int, deadline: float = 60.0):
    started = time.monotonic()
    while len(stub.accepted) < accepted:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() - started < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_sigkilled_sender_restarted_never_sends_twice(app):
    wa, line = WhatsAppStub(), LineStub()
    try:
        store = make_store()
        setup_whatsapp(store, wa, timeout=5)
        setup_line(store, line, timeout=5)
        wa.delay = line.delay = 0.2
        for i in range(8):
            queue(consenting_customer(store, phone=f"+6011000000{i}"))
            queue(
                consenting_customer(store, channels=("line",), line_id=f"U{i}", phone=None),
                channel="line",
            )
        first = _sender(app, NOW, "first")
        _kill_after(first, wa, 3)
        stuck = Message.select().where(Message.status == "sending").count()
        assert stuck >= 1
        restart = _sender(app, NOW + timedelta(minutes=15), "restart")
        out, err = restart.communicate(timeout=120)
        assert restart.returncode == 0, err
        statuses = Counter(m.status for m in Message.select())
        assert statuses["sending"] == 0 and statuses["queued"] == 0
        wa_keys = Counter(r["biz_opaque_callback_data"] for r in wa.sent())
        assert wa_keys and max(wa_keys.values()) == 1
        line_keys = Counter(r["headers"]["x-line-retry-key"] for r in line.accepted)
        assert line_keys and max(line_keys.values()) == 1
        assert len(line_keys) == 8
        sent_wa = Message.select().where(Message.channel == "whatsapp", Message.status == "sent")
        unknown = Message.select().where(Message.status == "failed")
        assert all(m.error.startswith("unknown: ") for m in unknown)
        assert sent_wa.count() + unknown.count() == 8
        # Only a message in flight at the kill can be unknown; the rest of the batch is sent.
        assert unknown.count() <= 1
        assert len(wa_keys) == 8
    finally:
        wa.close()
        line.close()
