"""Engine guarantees: exactly once, crash re-run, concurrency, withdrawal, back-fill, steps."""

import threading
from datetime import date
from decimal import Decimal

import pytest

from app.db import db
from app.models import (
    Consent,
    Decision,
    Enrollment,
    FollowUp,
    FollowUpReason,
    Message,
    Occurrence,
    SchedulerLock,
    StaffLeave,
    Visit,
    WhyLog,
)
from app.services import engine, plans, scheduler
from tests import factories
from tests.factories import make_card, make_customer, make_staff, utc
from tests.test_scenarios import event, reachable

NOON = utc(2026, 5, 17, 2)  # 10:00 in Kuala Lumpur


def make_store(*args, **kw):
    """A store with its message channels set up (the engine queues messages only on those)."""
    return factories.switch_on_channels(factories.make_store(*args, **kw))


def crowd(store, n, consent=True):
    people = [make_customer(store, name=f"Pelanggan {i}") for i in range(n)]
    if consent:
        Consent.insert_many(
            [{"customer": c.id, "channel": "whatsapp", "granted": True} for c in people]
        ).execute()
    return people


def daily(store, kind="message", **kw):
    data = {
        "name": "Harian",
        "type": "recurring",
        "schedule": {"frequency": "daily", "at": "10:00"},
        "action": {"kind": kind, "script": "Hai {first_name}"},
        "status": "active",
    }
    data.update(kw)
    return plans.create_plan(store, data, now=utc(2026, 5, 16, 12))


def test_crashed_run_rerun_produces_exactly_the_full_set(app, monkeypatch):
    store = make_store()
    crowd(store, 25)
    daily(store)
    monkeypatch.setattr(engine, "BATCH", 4)
    monkeypatch.setattr(engine, "BATCH_POSTGRES", 4)
    real = engine.process_pending
    calls = {"n": 0}

    def crash_after_first_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("worker killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "process_pending", crash_after_first_batch)
    with pytest.raises(RuntimeError):
        engine.run_due(NOON)
    assert 0 < Message.select().count() < 25
    assert Occurrence.get().status == "running"
    monkeypatch.setattr(engine, "process_pending", real)
    engine.run_due(NOON)
    assert Message.select().count() == 25
    assert Decision.select().count() == 25
    assert WhyLog.select().where(WhyLog.kind == "created").count() == 25
    assert Occurrence.get().status == "done"


def test_rerunning_an_occurrence_adds_nothing(app):
    store = make_store()
    crowd(store, 10)
    daily(store)
    engine.run_due(NOON)
    occurrence = Occurrence.get()
    assert engine.run_occurrence(occurrence, NOON) == 0
    assert Message.select().count() == 10


def test_concurrent_ticks_create_no_duplicates(app):
    store = make_store()
    make_staff(stores=[store])
    crowd(store, 60)
    daily(store, kind="followup")
    daily(store, name="Mesej")
    errors = []
    barrier = threading.Barrier(2)

    def worker():
        try:
            with db.connection_context():
                barrier.wait()
                engine.run_due(NOON)
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert FollowUp.select().count() == 60
    assert Message.select().count() == 60
    assert Decision.select().count() == 120
    assert FollowUpReason.select().count() == 60  # the follow-ups' "created" why-log entries
    assert WhyLog.select().where(WhyLog.kind == "created").count() == 60  # the messages


def test_tick_holds_a_lease_that_expires_by_itself(app):
    store = make_store()
    crowd(store, 3)
    daily(store)
    assert scheduler.acquire(scheduler.LOCK_NAME, "someone-else")
    assert scheduler.tick(NOON).locked
    assert Message.select().count() == 0
    SchedulerLock.update(expires_at=utc(2000, 1, 1)).execute()  # the holder was killed
    summary = scheduler.tick(NOON)
    assert not summary.locked and summary.messages == 3
    assert "messages 3" in summary.line(NOON)
    assert not SchedulerLock.select().where(SchedulerLock.name == scheduler.LOCK_NAME).exists()


def test_queued_message_is_withdrawn_when_customer_comes_back(app):
    store = make_store()
    siti = reachable(make_customer(store, name="Siti Aminah"))
    make_card(siti, kind="count", remaining_uses=1)
    plans.create_plan(
        store,
        {
            "template": "count_card_low",
            "name": "Low",
            "action": {"kind": "message"},
            "status": "active",
        },
        now=utc(2026, 5, 16, 12),
    )
    engine.run_due(utc(2026, 5, 17, 1))
    assert Message.get().status == "queued"
    event(store, siti, "appointment_booked", utc(2026, 5, 17, 3), "b1")
    message = Message.get()
    assert message.status == "withdrawn" and "booked" in message.error
    assert Decision.get().outcome == "withdrawn"


def test_open_followup_is_withdrawn_when_customer_visits(app):
    store = make_store()
    make_staff(stores=[store])
    siti = make_customer(store, name="Siti Aminah")
    daily(store, kind="followup")
    engine.run_due(NOON)
    event(store, siti, "visit", utc(2026, 5, 17, 5), "v1")
    followup = FollowUp.get()
    assert followup.status == "withdrawn" and followup.open_customer is None
    assert "came back" in followup.withdrawn_reason


def test_card_expiry_reminder_is_withdrawn_when_that_card_is_used_but_not_another(app):
    store = make_store()
    siti = reachable(make_customer(store, name="Siti Aminah"))
    expiring = make_card(siti, kind="count", remaining_uses=5, expires_on=date(2026, 6, 10))
    other = make_card(siti, kind="count", remaining_uses=5, expires_on=date(2027, 1, 1))
    plans.create_plan(
        store,
        {"template": "card_expiry", "name": "Expiry", "status": "active"},
        now=utc(2026, 5, 16, 12),
    )
    engine.run_due(NOON)
    event(store, siti, "card_used", utc(2026, 5, 17, 4), "u1", card={"id": other.id, "uses": 1})
    assert Message.get().status == "queued"
    event(store, siti, "card_used", utc(2026, 5, 17, 5), "u2", card={"id": expiring.id, "uses": 1})
    assert Message.get().status == "withdrawn"


def test_backfill_off_contacts_only_customers_who_newly_qualify(app):
    store = make_store()
    already = reachable(make_customer(store, name="Already Low"))
    later = reachable(make_customer(store, name="Later Low"))
    make_card(already, kind="stored_value", balance=Decimal("100"))
    card = make_card(later, kind="stored_value", balance=Decimal("900"))
    plan = plans.create_plan(
        store,
        {
            "template": "balance_low",
            "name": "Low",
            "action": {"kind": "message"},
            "backfill": False,
            "status": "draft",
        },
        now=utc(2026, 5, 16),
    )
    assert plans.qualifying_now(plan, utc(2026, 5, 16)) == 1
    plans.set_status(plan, "active", utc(2026, 5, 16, 12))
    event(
        store, later, "card_used", utc(2026, 5, 16, 13), "u1", card={"id": card.id, "amount": "500"}
    )
    engine.run_due(utc(2026, 5, 17, 1))
    assert [m.customer_id for m in Message.select()] == [later.id]
    skipped = Decision.get(Decision.customer == already.id)
    assert skipped.outcome == "skipped" and "back-fill" in skipped.reason


def test_backfill_on_includes_new_customers_whose_first_visit_was_before_activation(app):
    store = make_store()
    make_staff(stores=[store])
    old = make_customer(store, name="Early Bird")
    event(store, old, "visit", utc(2026, 5, 1, 3), "v-old")
    plan = plans.create_plan(
        store,
        {"template": "second_visit", "name": "Second", "status": "draft"},
        now=utc(2026, 5, 16),
    )
    assert plans.qualifying_now(plan, utc(2026, 5, 16, 12)) == 1
    plans.set_status(plan, "active", utc(2026, 5, 16, 12), backfill=True)
    engine.run_due(utc(2026, 5, 16, 12))
    assert FollowUp.get().customer_id == old.id


def test_editing_an_active_plan_makes_a_new_version_and_old_occurrences_keep_theirs(app):
    store = make_store()
    crowd(store, 2)
    plan = daily(store)
    engine.run_due(NOON)
    plan = plans.update_plan(
        plan, {"action": {"script": "Baru {first_name}"}}, now=utc(2026, 5, 17, 3)
    )
    assert plan.version == 2
    assert Occurrence.get().version == 1
    engine.run_due(utc(2026, 5, 18, 2))
    bodies = sorted({m.body.split()[0] for m in Message.select()})
    assert bodies == ["Baru", "Hai"]


def test_ab_variants_split_stably_and_are_stored(app):
    store = make_store()
    crowd(store, 40)
    daily(
        store,
        action={
            "kind": "message",
            "scripts": [{"variant": "A", "text": "A {name}"}, {"variant": "B", "text": "B {name}"}],
        },
    )
    engine.run_due(NOON)
    variants = {m.variant for m in Message.select()}
    assert variants == {"A", "B"}
    assert all(m.body.startswith(m.variant) for m in Message.select())


def test_step_branches_pick_a_script_by_audience(app, monkeypatch):
    from app.services import audience

    store = make_store()
    women = make_customer(store, name="Aminah", gender="female")
    men = make_customer(store, name="Ali", gender="male")
    reachable(women)
    reachable(men)
    branches = [
        {
            "audience": {"all": [{"field": "gender", "op": "eq", "value": "female"}]},
            "script": "RM30 {first_name}",
        }
    ]
    daily(store, action={"kind": "message", "script": "RM15 {first_name}", "branches": branches})
    assert audience.validate(branches[0]["audience"]) == []
    engine.run_due(NOON)
    assert Message.get(Message.customer == women.id).body == "RM30 Aminah"
    assert Message.get(Message.customer == men.id).body == "RM15 Ali"


def test_followups_go_to_who_served_last_then_round_robin_skipping_staff_on_leave(app):
    store = make_store()
    anna = make_staff(stores=[store], name="Anna")
    ben = make_staff(stores=[store], name="Ben")
    served = make_customer(store, name="Served")
    others = [make_customer(store, name=f"Other {i}") for i in range(4)]
    Visit.create(
        customer=served, store=store, day=date(2026, 5, 1), first_at=utc(2026, 5, 1, 3), staff=ben
    )
    StaffLeave.create(staff=anna, starts_on=date(2026, 5, 17), ends_on=date(2026, 5, 20))
    daily(store, kind="followup")
    engine.run_due(NOON)
    assert FollowUp.get(FollowUp.customer == served.id).assigned_by_rule == "last_served"
    rest = FollowUp.select().where(FollowUp.customer.in_([c.id for c in others]))
    assert {f.assignee_id for f in rest} == {ben.id}
    assert {f.assigned_by_rule for f in rest} == {"round_robin"}


def test_followup_with_no_staff_goes_to_manager_queue_due_at_occurrence_plus_hours(app):
    store = make_store()
    make_customer(store, name="Solo")
    daily(store, kind="followup", action={"kind": "followup", "script": "x", "due_in_hours": 4})
    engine.run_due(NOON)
    followup = FollowUp.get()
    assert followup.assignee_id is None and followup.assigned_by_rule == "manager_queue"
    assert followup.due_at == utc(2026, 5, 17, 6)


def test_customer_leaving_the_audience_ends_the_enrollment(app):
    from app.models import CustomerAttribute

    store = make_store()
    bob = reachable(make_customer(store, name="Bob Tan"))
    CustomerAttribute.create(customer=bob, key="car_type", value="suv")
    plans.create_plan(
        store,
        {
            "template": "service_interval",
            "name": "SUV",
            "status": "active",
            "audience": {"all": [{"field": "attributes.car_type", "op": "eq", "value": "suv"}]},
        },
        now=utc(2025, 12, 1),
    )
    event(store, bob, "service_completed", utc(2026, 1, 5, 2), "b1")
    engine.run_due(utc(2026, 6, 27, 2))
    assert Enrollment.get().status == "active"
    CustomerAttribute.update(value="sedan").execute()
    engine.run_due(utc(2026, 7, 19, 2))
    assert Enrollment.get().status == "left"
    assert Message.select().count() == 1


def _two_step_broadcast(store, plan_type, schedule):
    women = {"all": [{"field": "gender", "op": "eq", "value": "female"}]}
    return plans.create_plan(
        store,
        {
            "name": "Servis dan promo",
            "type": plan_type,
            "schedule": schedule,
            "action": {"kind": "message", "script": "Peringatan {first_name}"},
            "steps": [
                {"after_days": 0},
                {
                    "after_days": 22,
                    "script": "RM15 {first_name}",
                    "branches": [{"audience": women, "script": "RM30 {first_name}"}],
                },
            ],
            "status": "active",
        },
        now=utc(2026, 5, 20),
    )


@pytest.mark.parametrize(
    "plan_type,schedule",
    [
        ("one_off", {"at": "2026-06-01T10:00:00"}),
        ("recurring", {"frequency": "monthly", "day_of_month": 1, "at": "10:00"}),
    ],
)
def test_later_step_branches_by_audience_and_skips_whoever_came_back(app, plan_type, schedule):
    store = make_store()
    siti = reachable(make_customer(store, name="Siti Aminah", gender="female"))
    bob = reachable(make_customer(store, name="Bob Tan", gender="male"))
    aminah = reachable(make_customer(store, name="Aminah", gender="female"))
    plan = _two_step_broadcast(store, plan_type, schedule)
    engine.run_due(utc(2026, 6, 1, 2))  # 10:00 in Kuala Lumpur
    assert Message.select().count() == 3
    assert {e.next_step_at for e in Enrollment.select()} == {utc(2026, 6, 23, 2)}
    event(store, aminah, "visit", utc(2026, 6, 10, 3), "v1")
    engine.run_due(utc(2026, 6, 23, 1, 59))
    assert Message.select().count() == 3
    engine.run_due(utc(2026, 6, 23, 2))
    step2 = {m.customer_id: m.body for m in Message.select().where(Message.body.startswith("RM"))}
    assert step2 == {siti.id: "RM30 Siti", bob.id: "RM15 Bob"}
    status = {
        e.customer_id: e.status for e in Enrollment.select().where(Enrollment.plan == plan.id)
    }
    assert status == {siti.id: "done", bob.id: "done", aminah.id: "converted"}
