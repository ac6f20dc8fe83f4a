"""Engine rules: assignee rules, back-fill within grace, local-day dedupe, withdrawal counts,
and follow-up scripts rendered by the database exactly as Python renders them."""

import threading
from datetime import date

import pytest

from app.db import db, is_postgres
from app.models import (
    Decision,
    Enrollment,
    FollowUp,
    FollowUpReason,
    Message,
    Occurrence,
    StaffLeave,
    Visit,
    WhyLog,
)
from app.services import engine, events, plans, scheduler
from tests import factories
from tests.factories import make_customer, make_staff, utc
from tests.test_scenarios import event, reachable

NOON = utc(2026, 5, 17, 2)  # 10:00 in Kuala Lumpur


def make_store(*args, **kw):
    """A store with its message channels set up (the engine queues messages only on those)."""
    return factories.switch_on_channels(factories.make_store(*args, **kw))


def followup_plan(store, **action):
    return plans.create_plan(
        store,
        {
            "name": "Harian",
            "type": "recurring",
            "schedule": {"frequency": "daily", "at": "10:00"},
            "action": {"kind": "followup", "script": "Hai {first_name}", **action},
            "status": "active",
        },
        now=utc(2026, 5, 16, 12),
    )


def served(customer, staff):
    Visit.create(
        customer=customer,
        store=customer.store,
        day=date(2026, 5, 1),
        first_at=utc(2026, 5, 1, 3),
        staff=staff,
    )


def mei_assigned_to_anna_served_by_ben():
    store = make_store()
    anna = make_staff(stores=[store], name="Anna")
    ben = make_staff(stores=[store], name="Ben")
    mei = make_customer(store, name="Mei", assigned_staff=anna)
    served(mei, ben)
    return store, anna, ben, mei


def test_default_rule_prefers_assigned_staff_over_who_served_last(app):
    store, anna, ben, mei = mei_assigned_to_anna_served_by_ben()
    followup_plan(store)
    engine.run_due(NOON)
    followup = FollowUp.get()
    assert (followup.assignee_id, followup.assigned_by_rule) == (anna.id, "assigned")


def test_last_served_rule_gives_the_followup_to_who_served_last(app):
    store, anna, ben, mei = mei_assigned_to_anna_served_by_ben()
    newcomer = make_customer(store, name="Nur", assigned_staff=anna)
    followup_plan(store, assignee_rule="last_served")
    engine.run_due(NOON)
    mine = FollowUp.get(FollowUp.customer == mei.id)
    assert (mine.assignee_id, mine.assigned_by_rule) == (ben.id, "last_served")
    # Nobody served Nur yet: the next source in line, her assigned staff, takes it.
    theirs = FollowUp.get(FollowUp.customer == newcomer.id)
    assert (theirs.assignee_id, theirs.assigned_by_rule) == (anna.id, "assigned")


def test_round_robin_rule_ignores_assigned_staff_and_spreads_the_work(app):
    store = make_store()
    anna = make_staff(stores=[store], name="Anna")
    ben = make_staff(stores=[store], name="Ben")
    people = [make_customer(store, name=f"P {i}", assigned_staff=anna) for i in range(6)]
    followup_plan(store, assignee_rule="round_robin")
    engine.run_due(NOON)
    rows = list(FollowUp.select().where(FollowUp.customer.in_([p.id for p in people])))
    assert {f.assigned_by_rule for f in rows} == {"round_robin"}
    counts = {sid: sum(f.assignee_id == sid for f in rows) for sid in (anna.id, ben.id)}
    assert counts == {anna.id: 3, ben.id: 3}


def test_fixed_staff_rule_gives_every_followup_to_that_person_until_they_are_on_leave(app):
    store = make_store()
    anna = make_staff(stores=[store], name="Anna")
    ben = make_staff(stores=[store], name="Ben", email="ben@example.test")
    first = make_customer(store, name="Mei", assigned_staff=anna)
    followup_plan(store, assignee_rule="staff", assignee="ben@example.test")
    engine.run_due(NOON)
    followup = FollowUp.get(FollowUp.customer == first.id)
    assert (followup.assignee_id, followup.assigned_by_rule) == (ben.id, "staff")
    FollowUp.update(status="done", open_customer=None).execute()
    store.settings = {**(store.settings or {}), "fatigue_followups": 5}
    store.save()
    StaffLeave.create(staff=ben, starts_on=date(2026, 5, 18), ends_on=date(2026, 5, 20))
    engine.run_due(utc(2026, 5, 18, 2))
    later = FollowUp.get((FollowUp.customer == first.id) & (FollowUp.status == "open"))
    assert (later.assignee_id, later.assigned_by_rule) == (anna.id, "assigned")


def test_manager_queue_rule_leaves_followups_unassigned(app):
    store = make_store()
    anna = make_staff(stores=[store], name="Anna")
    make_customer(store, name="Mei", assigned_staff=anna)
    followup_plan(store, assignee_rule="manager_queue")
    engine.run_due(NOON)
    followup = FollowUp.get()
    assert (followup.assignee_id, followup.assigned_by_rule) == (None, "manager_queue")


def test_post_service_backfill_skips_services_whose_checkin_moment_passed_beyond_grace(app):
    store = make_store()  # Kuala Lumpur, grace 24 h
    people = {}
    for name, day in (("Old", 1), ("Late", 12), ("Recent", 13), ("Ahead", 14)):
        people[name] = reachable(make_customer(store, name=name))
        event(store, people[name], "service_completed", utc(2026, 5, day, 3), f"s-{name}")
    plan = plans.create_plan(
        store, {"template": "post_service", "name": "Check-in", "status": "draft"}, now=NOON
    )
    switched_on = utc(2026, 5, 16, 6)  # 14:00: "Recent" (13 May + 3 days, 10:00) is 4 h late
    assert plans.qualifying_now(plan, switched_on) == 1
    plans.set_status(plan, "active", switched_on, backfill=True)
    engine.run_due(switched_on)
    assert [m.customer_id for m in Message.select()] == [people["Recent"].id]
    engine.run_due(utc(2026, 5, 17, 2))  # the first daily run: services of 14 May
    reached = sorted(m.customer_id for m in Message.select())
    assert reached == sorted([people["Recent"].id, people["Ahead"].id])


def service_interval(store):
    return plans.create_plan(
        store,
        {"template": "service_interval", "name": "Servis", "status": "active"},
        now=utc(2025, 12, 1),
    )


def test_service_interval_dedupe_uses_the_store_local_day_of_the_visit(app):
    store = make_store()  # Asia/Kuala_Lumpur, UTC+8
    service_interval(store)
    early = reachable(make_customer(store, name="Early Bird"))
    late = reachable(make_customer(store, name="Night Owl"))
    event(store, early, "service_completed", utc(2026, 1, 4, 23), "e1")  # 07:00 on 5 January
    event(store, late, "service_completed", utc(2026, 1, 5, 15, 30), "l1")  # 23:30 on 5 January
    engine.run_due(utc(2026, 6, 27, 2))  # 5 January + 173 days, 10:00 local
    keys = {d.customer_id: d.dedupe_key for d in Decision.select()}
    assert keys == {early.id: "visit:2026-01-05", late.id: "visit:2026-01-05"}


def imported(store, customer, etype, at, ext):
    """An event recorded like a history import with "do not trigger plans": nothing reacts."""
    body = {"external_id": ext, "type": etype, "customer": {"id": customer.id}}
    body["occurred_at"] = at.isoformat()
    return events.record_event(store, body, now=at, triggers_plans=False)[0]


def test_tick_summary_counts_withdrawals_of_events_that_never_reacted(app):
    store = make_store()
    make_staff(stores=[store], name="Anna")
    mei = make_customer(store, name="Mei")
    followup_plan(store)
    assert scheduler.tick(NOON).withdrawn == 0
    assert FollowUp.get().status == "open"
    # Imported with "do not trigger plans": nothing reacted when it came in.
    imported(store, mei, "visit", utc(2026, 5, 17, 5), "pos-1")
    assert FollowUp.get().status == "open"
    summary = scheduler.tick(utc(2026, 5, 17, 6))
    assert summary.withdrawn == 1
    assert "withdrawn 1" in summary.line(utc(2026, 5, 17, 6))
    assert FollowUp.get().status == "withdrawn"
    assert scheduler.tick(utc(2026, 5, 17, 7)).withdrawn == 0


def test_tick_summary_counts_the_promo_step_withdrawn_for_a_customer_who_booked(app):
    # Only the log-only channel: the first step's messages are out before Bob books.
    store = factories.switch_on_channels(factories.make_store(), "log_only")
    service_interval(store)
    bob = reachable(make_customer(store, name="Bob Tan"))
    siti = reachable(make_customer(store, name="Siti Aminah"))
    event(store, bob, "service_completed", utc(2026, 1, 5, 2), "b1")
    event(store, siti, "service_completed", utc(2026, 1, 5, 3), "s1")
    scheduler.tick(utc(2026, 6, 27, 2))
    # Bob's booking is imported without reacting; the promo step still skips him.
    imported(store, bob, "appointment_booked", utc(2026, 6, 28, 5), "b2")
    summary = scheduler.tick(utc(2026, 7, 19, 2))
    assert summary.withdrawn == 1
    assert Enrollment.get(Enrollment.customer == bob.id).status == "converted"
    assert (
        WhyLog.select()
        .where((WhyLog.customer == bob.id) & WhyLog.kind.in_(("withdrawn", "converted")))
        .exists()
    )
    promos = [m.customer_id for m in Message.select().where(Message.body.contains("miss you"))]
    assert promos == [siti.id]


def _scripts_for(app_store, monkeypatch, in_sql: bool):
    if not in_sql:
        monkeypatch.setattr(engine, "_script_sql_possible", lambda *a, **k: False)
    make_staff(stores=[app_store], name="Anna Lim")  # round-robin has only her to pick
    ben = make_staff(role="manager", stores=[app_store], name="Ben")
    names = [
        "Siti Aminah",
        "小红",
        "  Lee  Wei ",
        "Ah\tMeng",
        "\u3000Ah\tMeng Tan ",
        "",
        "王\u3000小明",
    ]
    for i, name in enumerate(names):
        customer = make_customer(
            app_store,
            name=name,
            source="Dianping" if i % 2 else None,
            locale=("th", None, "zh_Hans", "", "ms", None, "en")[i],
            points=i * 10,
            assigned_staff=ben if i == 2 else None,
        )
        if i != 5:
            event(app_store, customer, "visit", utc(2026, 5, 3 + i, 16 + i), f"v{i}-{in_sql}")
    branches = [
        {
            "audience": {"all": [{"field": "source", "op": "eq", "value": "Dianping"}]},
            "script": {"en": "B {name}|{staff_name}|{days_since_visit}", "th": "TH {first_name}"},
        }
    ]
    script = {
        "en": "Hi {first_name} ({name}) from {source}, {points} pts, {visit_count} visits, "
        "{days_since_visit} days, {staff_name} @ {store_name} {{x}} {unknown} {member_day}",
        "zh_Hans": "{name}您好 {store_name} {member_day}",
    }
    plans.create_plan(
        app_store,
        {
            "name": "Render",
            "type": "recurring",
            "schedule": {"frequency": "daily", "at": "10:00"},
            "action": {"kind": "followup", "script": script, "branches": branches},
            "status": "active",
        },
        now=utc(2026, 5, 16, 12),
    )
    engine.run_due(NOON)
    monkeypatch.undo()
    return [
        (f.customer.name, f.script, f.assigned_by_rule, f.assignee.name if f.assignee else None)
        for f in FollowUp.select().where(FollowUp.store == app_store.id).order_by(FollowUp.customer)
    ]


def test_followup_scripts_rendered_by_the_database_match_python_rendering(app, monkeypatch):
    in_sql = _scripts_for(make_store(name="Kedai Cantik", member_day=18), monkeypatch, in_sql=True)
    in_python = _scripts_for(
        make_store(name="Kedai Cantik", member_day=18), monkeypatch, in_sql=False
    )
    assert len(in_sql) == 7
    assert in_sql == in_python
    assert any(s.startswith("TH Siti") or s.startswith("B ") for _, s, _, _ in in_sql)
    assert any("{unknown}" in s and "{x}" in s for _, s, _, _ in in_sql)


def test_tick_hands_work_of_staff_on_leave_over_and_back(app):
    store = make_store()
    anna = make_staff(stores=[store], name="Anna")
    ben = make_staff(stores=[store], name="Ben")
    make_customer(store, name="Mei", assigned_staff=anna)
    followup_plan(store, due_in_hours=30)
    scheduler.tick(NOON)
    assert FollowUp.get().assignee_id == anna.id
    StaffLeave.create(staff=anna, starts_on=date(2026, 5, 17), ends_on=date(2026, 5, 18))
    scheduler.tick(utc(2026, 5, 17, 3))
    assert FollowUp.get().assignee_id == ben.id
    scheduler.tick(utc(2026, 5, 19, 1))  # back from leave
    assert FollowUp.get().assignee_id == anna.id


def test_followup_occurrence_killed_mid_batch_rerun_makes_exactly_the_full_set(app, monkeypatch):
    store = make_store()
    make_staff(stores=[store], name="Anna")
    for i in range(25):
        make_customer(store, name=f"Pelanggan {i}")
    followup_plan(store)
    monkeypatch.setattr(engine, "BATCH", 4)
    monkeypatch.setattr(engine, "BATCH_POSTGRES", 4)
    real = engine._create_followups
    calls = {"n": 0}

    def killed_on_the_third_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("worker killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "_create_followups", killed_on_the_third_batch)
    with pytest.raises(RuntimeError, match="worker killed"):
        engine.run_due(NOON)
    assert calls["n"] == 3
    assert 0 < FollowUp.select().count() < 25
    assert Decision.select().count() == FollowUp.select().count()  # the dead batch left nothing
    monkeypatch.setattr(engine, "_create_followups", real)
    engine.run_due(NOON)
    assert FollowUp.select().count() == 25
    assert Decision.select().where(Decision.outcome == "followup").count() == 25
    assert FollowUpReason.select().count() == 25
    assert engine.run_occurrence(Occurrence.get(), NOON) == 0


def _parallel_batches(monkeypatch):
    """A small occurrence run as a big one: several batches on several connections at once."""
    if not is_postgres():
        pytest.skip("batches run on several connections at once only on PostgreSQL")
    monkeypatch.setattr(engine, "PARALLEL", 3)
    monkeypatch.setattr(engine, "PARALLEL_FROM", 1)
    monkeypatch.setattr(engine, "BATCH_POSTGRES", 7)


def test_parallel_batches_make_exactly_one_follow_up_per_customer(app, monkeypatch):
    _parallel_batches(monkeypatch)
    store = make_store()
    make_staff(stores=[store], name="Anna")
    people = [make_customer(store, name=f"Pelanggan {i}") for i in range(40)]
    followup_plan(store)
    threads = [threading.Thread(target=_run_due_on_own_connection) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(f.customer_id for f in FollowUp.select()) == sorted(p.id for p in people)
    assert Decision.select().where(Decision.outcome == "followup").count() == 40
    assert FollowUpReason.select().count() == 40
    assert Occurrence.get().status == "done" and Occurrence.get().created_count == 40
    assert engine.run_occurrence(Occurrence.get(), NOON) == 0


def _run_due_on_own_connection():
    with db.connection_context():
        engine.run_due(NOON)


def test_parallel_batch_killed_rerun_makes_exactly_the_full_set(app, monkeypatch):
    _parallel_batches(monkeypatch)
    store = make_store()
    make_staff(stores=[store], name="Anna")
    for i in range(40):
        make_customer(store, name=f"Pelanggan {i}")
    followup_plan(store)
    real = engine._create_followups
    calls = {"n": 0}
    lock = threading.Lock()

    def one_batch_killed(*args, **kwargs):
        with lock:
            calls["n"] += 1
            killed = calls["n"] == 2
        if killed:
            raise RuntimeError("worker killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "_create_followups", one_batch_killed)
    with pytest.raises(RuntimeError, match="worker killed"):
        engine.run_due(NOON)
    assert FollowUp.select().count() < 40
    assert Decision.select().count() == FollowUp.select().count()  # the dead batch left nothing
    assert Occurrence.get().status == "running"
    monkeypatch.setattr(engine, "_create_followups", real)
    engine.run_due(NOON)
    assert FollowUp.select().count() == 40
    assert FollowUpReason.select().count() == 40
