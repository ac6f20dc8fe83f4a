"""The tick runs every piece of due work: plans, leave hand-over, the outbox."""

from datetime import date, datetime

import pytest

from app.models import FollowUp, Message, StaffLeave
from app.services import scheduler
from tests import test_engine
from tests.factories import make_customer, make_staff, make_store, utc


def test_tick_hands_over_follow_ups_of_staff_on_leave(app):
    store = make_store()
    aisyah = make_staff("employee", [store], name="Aisyah")
    mei = make_staff("employee", [store], name="Mei")
    customer = make_customer(store)
    followup = FollowUp.create(
        store=store,
        customer=customer,
        assignee=aisyah,
        due_at=utc(2026, 11, 25, 2, 0),
        open_customer=customer.id,
        script="Hi",
    )
    StaffLeave.create(staff=aisyah, starts_on=date(2026, 11, 24), ends_on=date(2026, 11, 26))
    summary = scheduler.tick(now=utc(2026, 11, 24, 1, 0))
    assert not summary.locked
    assert FollowUp.get_by_id(followup.id).assignee_id == mei.id
    scheduler.tick(now=utc(2026, 11, 27, 1, 0))
    assert FollowUp.get_by_id(followup.id).assignee_id == aisyah.id


def test_a_second_tick_for_the_same_instant_changes_nothing(app):
    store = make_store()
    make_staff("employee", [store])
    make_customer(store)
    first = scheduler.tick(now=utc(2026, 6, 17, 2, 0))
    second = scheduler.tick(now=utc(2026, 6, 17, 2, 0))
    assert (second.followups, second.messages, second.sent) == (0, 0, 0)
    assert first.line(utc(2026, 6, 17, 2, 0)).startswith("tick at 2026-06-17T02:00:00+00:00: ")


def test_a_tick_while_another_holds_the_lease_is_skipped(app):
    assert scheduler.acquire(scheduler.LOCK_NAME, "other-worker")
    try:
        summary = scheduler.tick(now=utc(2026, 6, 17, 2, 0))
        assert summary.locked
        assert "skipped" in summary.line(utc(2026, 6, 17, 2, 0))
    finally:
        scheduler.release(scheduler.LOCK_NAME, "other-worker")


def test_an_event_reruns_tag_rules_for_that_customer_at_once(app):
    from app.models import CustomerTag, Tag, TagRule
    from app.services import events

    store = make_store()
    customer = make_customer(store)
    other = make_customer(store, total_spend=900)
    tag = Tag.create(store=store, name="Big spender")
    TagRule.create(
        store=store,
        tag=tag,
        action="add",
        audience={"all": [{"field": "total_spend", "op": "gte", "value": 500}]},
    )
    events.record_event(
        store,
        {
            "external_id": "pos-1",
            "type": "purchase",
            "customer": {"id": customer.id},
            "occurred_at": "2026-11-20T11:00:00",
            "amount": "650.00",
        },
        now=utc(2026, 11, 20, 4, 0),
    )
    tagged = {ct.customer_id for ct in CustomerTag.select().where(CustomerTag.tag == tag)}
    # Only the customer of the event is re-evaluated; the nightly run handles everyone else.
    assert tagged == {customer.id}
    assert other.id not in tagged


def test_huey_runs_the_same_tick_every_minute_and_never_twice_at_once(app, monkeypatch):
    from huey.exceptions import TaskLockedException

    from app.tasks import jobs

    store = test_engine.make_store()  # with its message channels set up
    test_engine.crowd(store, 1)
    test_engine.daily(store)
    periodic = jobs.tick.s()
    assert all(periodic.validate_datetime(datetime(2026, 5, 17, 2, m)) for m in range(60))
    monkeypatch.setenv("REVISIT_NOW", test_engine.NOON.isoformat())
    with jobs.huey.lock_task("revisit-tick"):
        with pytest.raises(TaskLockedException):
            jobs.tick.call_local()
    assert Message.select().count() == 0
    assert "messages 1" in jobs.tick.call_local()
    assert Message.select().count() == 1
