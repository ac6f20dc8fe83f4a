"""Follow-up work for staff: Today's groups, outcomes, undo, snooze, reassign, leave, timeline."""

from datetime import date, timedelta
from decimal import Decimal

import pytest

from app.models import (
    AuditLog,
    Consent,
    ContactLog,
    Customer,
    Event,
    FollowUp,
    Plan,
    StaffLeave,
    WhyLog,
)
from app.services import customers as customer_service
from app.services import events, timeline
from app.services import followups as service
from tests.factories import make_card, make_customer, make_reason, make_staff, make_store, utc

# Tuesday 24 November 2026, 10:00 in Kuala Lumpur (UTC+8).
NOW = utc(2026, 11, 24, 2, 0)


def make_plan(store, name="Second visit", template="second_visit"):
    return Plan.create(store=store, name=name, template=template, type="behaviour", status="active")


def make_followup(store, customer, assignee, due_at, plan=None, **kw):
    f = FollowUp.create(
        store=store,
        customer=customer,
        plan=plan,
        assignee=assignee,
        due_at=due_at,
        open_customer=customer.id,
        script=kw.pop("script", f"Hi {customer.name}"),
        created_at=due_at - timedelta(days=1),
        updated_at=due_at - timedelta(days=1),
        **kw,
    )
    if plan is not None:
        make_reason(f, plan, text="first visit 7 days ago", script=f.script)
    return f


@pytest.fixture
def shop(app):
    store = make_store(
        "kl",
        name="Bunga Beauty KL",
        settings={"working_days": [0, 1, 2, 3, 4, 5], "followup_hour": "09:30"},
    )
    aisyah = make_staff("employee", [store], name="Aisyah")
    return store, aisyah


def test_next_working_time_skips_sunday_and_uses_the_store_followup_hour(shop):
    store, _ = shop
    saturday_evening = utc(2026, 11, 28, 12, 0)  # Sat 20:00 in Kuala Lumpur
    assert service.next_working_time(store, saturday_evening) == utc(2026, 11, 30, 1, 30)
    assert service.next_working_time(store, NOW) == utc(2026, 11, 25, 1, 30)


def test_next_working_time_skips_the_store_holidays(shop):
    store, _ = shop
    # Wed 25 Nov is a holiday: Tuesday's retry goes to Thursday.
    store.settings = {**store.settings, "holidays": ["2026-11-25", "2026-11-30"]}
    assert service.next_working_time(store, NOW) == utc(2026, 11, 26, 1, 30)
    # Saturday evening: Sunday is closed and Monday 30 Nov a holiday, so Tuesday 1 Dec.
    saturday_evening = utc(2026, 11, 28, 12, 0)
    assert service.next_working_time(store, saturday_evening) == utc(2026, 12, 1, 1, 30)


def test_no_answer_retry_lands_after_a_holiday(shop):
    store, aisyah = shop
    store.settings = {**store.settings, "holidays": ["2026-11-25"]}
    store.save()
    customer = make_customer(store, name="Nurul")
    f = make_followup(store, customer, aisyah, NOW - timedelta(hours=1))
    service.log_outcome(f, aisyah, "no_answer", NOW)
    f = FollowUp.get_by_id(f.id)
    assert (f.status, f.attempts, f.due_at) == ("open", 1, utc(2026, 11, 26, 1, 30))


def test_no_answer_reschedules_to_next_working_day_then_closes_as_unreachable(shop):
    store, aisyah = shop
    customer = make_customer(store, name="Nurul")
    f = make_followup(store, customer, aisyah, NOW - timedelta(hours=1))
    service.log_outcome(f, aisyah, "no_answer", NOW)
    f = FollowUp.get_by_id(f.id)
    assert (f.status, f.attempts, f.due_at) == ("open", 1, utc(2026, 11, 25, 1, 30))
    assert f.open_customer == customer.id
    service.log_outcome(f, aisyah, "no_answer", NOW + timedelta(days=1))
    f = FollowUp.get_by_id(f.id)
    assert f.status == "open" and f.attempts == 2
    service.log_outcome(f, aisyah, "no_answer", NOW + timedelta(days=2))
    f = FollowUp.get_by_id(f.id)
    assert (f.status, f.outcome, f.open_customer) == ("done", "no_answer", None)
    assert ContactLog.select().where(ContactLog.followup == f.id).count() == 3


def test_store_setting_changes_how_many_no_answers_close_a_followup(shop):
    store, aisyah = shop
    store.settings = {**store.settings, "no_answer_attempts": 1}
    store.save()
    f = make_followup(store, make_customer(store), aisyah, NOW)
    service.log_outcome(f, aisyah, "no_answer", NOW)
    assert FollowUp.get_by_id(f.id).status == "done"


def test_reached_closes_and_frees_the_customer_for_a_new_followup(shop):
    store, aisyah = shop
    customer = make_customer(store)
    f = make_followup(store, customer, aisyah, NOW)
    entry = service.log_outcome(f, aisyah, "reached", NOW, channel="whatsapp", note="Will come Fri")
    f = FollowUp.get_by_id(f.id)
    assert (f.status, f.outcome, f.completed_at, f.note) == (
        "done",
        "reached",
        NOW,
        "Will come Fri",
    )
    assert (entry.channel, entry.outcome) == ("whatsapp", "reached")
    make_followup(store, customer, aisyah, NOW + timedelta(days=3))


def test_logging_a_closed_followup_is_refused(shop):
    store, aisyah = shop
    f = make_followup(store, make_customer(store), aisyah, NOW)
    service.log_outcome(f, aisyah, "declined", NOW)
    with pytest.raises(service.FollowUpError) as err:
        service.log_outcome(FollowUp.get_by_id(f.id), aisyah, "reached", NOW)
    assert err.value.code == "closed"


def test_wrong_number_flags_the_phone_and_undo_clears_the_flag(shop):
    store, aisyah = shop
    customer = make_customer(store)
    f = make_followup(store, customer, aisyah, NOW)
    service.log_outcome(f, aisyah, "wrong_number", NOW)
    assert Customer.get_by_id(customer.id).phone_flagged_at == NOW
    result = service.undo_last_log(FollowUp.get_by_id(f.id), aisyah, NOW + timedelta(seconds=5))
    assert result["outcome"] == "wrong_number"
    assert Customer.get_by_id(customer.id).phone_flagged_at is None
    f = FollowUp.get_by_id(f.id)
    assert (f.status, f.outcome, f.open_customer) == ("open", None, customer.id)
    assert ContactLog.select().where(ContactLog.followup == f.id).count() == 0


def test_opt_out_switches_every_channel_off_and_undo_puts_consent_back(shop):
    store, aisyah = shop
    customer = make_customer(store)
    customer_service.set_consent(customer, "whatsapp", True, source="form", now=NOW)
    f = make_followup(store, customer, aisyah, NOW)
    service.log_outcome(f, aisyah, "opted_out", NOW)
    consents = {c.channel: c.granted for c in Consent.select().where(Consent.customer == customer)}
    assert consents == {"whatsapp": False, "line": False, "sms": False, "email": False}
    service.undo_last_log(FollowUp.get_by_id(f.id), aisyah, NOW + timedelta(seconds=3))
    consents = {c.channel: c.granted for c in Consent.select().where(Consent.customer == customer)}
    assert consents == {"whatsapp": True}


def test_next_followup_date_creates_a_child_after_closing_and_undo_removes_it(shop):
    store, aisyah = shop
    customer = make_customer(store)
    plan = make_plan(store)
    f = make_followup(store, customer, aisyah, NOW, plan=plan)
    later = utc(2026, 12, 1, 1, 30)
    service.log_outcome(f, aisyah, "reached", NOW, next_at=later)
    child = FollowUp.get(FollowUp.parent == f.id)
    assert (child.status, child.due_at, child.assignee_id) == ("open", later, aisyah.id)
    assert child.open_customer == customer.id and child.plan_id == plan.id
    service.undo_last_log(FollowUp.get_by_id(f.id), aisyah, NOW + timedelta(seconds=2))
    assert FollowUp.get_or_none(FollowUp.id == child.id) is None
    assert FollowUp.get_by_id(f.id).status == "open"


def test_next_followup_in_the_past_is_refused(shop):
    store, aisyah = shop
    f = make_followup(store, make_customer(store), aisyah, NOW)
    with pytest.raises(service.FollowUpError) as err:
        service.log_outcome(f, aisyah, "reached", NOW, next_at=NOW - timedelta(days=1))
    assert err.value.field == "next_at"
    assert FollowUp.get_by_id(f.id).status == "open"


def test_booked_with_a_date_records_an_appointment_event_that_undo_keeps(shop):
    store, aisyah = shop
    customer = make_customer(store)
    f = make_followup(store, customer, aisyah, NOW)
    appointment = utc(2026, 11, 27, 6, 0)
    service.log_outcome(f, aisyah, "booked", NOW, appointment_at=appointment)
    event = Event.get(Event.customer == customer.id)
    assert (event.type, event.appointment_at, event.source) == (
        "appointment_booked",
        appointment,
        "ui",
    )
    result = service.undo_last_log(FollowUp.get_by_id(f.id), aisyah, NOW + timedelta(seconds=4))
    assert result["kept_event"] == event.id
    assert Event.select().where(Event.customer == customer.id).count() == 1


def test_undo_is_refused_after_the_window_and_for_someone_else(shop):
    store, aisyah = shop
    mei = make_staff("employee", [store], name="Mei")
    f = make_followup(store, make_customer(store), aisyah, NOW)
    service.log_outcome(f, aisyah, "declined", NOW)
    with pytest.raises(service.FollowUpError) as err:
        service.undo_last_log(FollowUp.get_by_id(f.id), mei, NOW + timedelta(seconds=1))
    assert err.value.code == "nothing_to_undo"
    late = NOW + timedelta(seconds=service.UNDO_SECONDS + 1)
    with pytest.raises(service.FollowUpError) as err:
        service.undo_last_log(FollowUp.get_by_id(f.id), aisyah, late)
    assert err.value.code == "undo_too_late"
    assert FollowUp.get_by_id(f.id).status == "done"


def test_undo_of_no_answer_restores_the_original_due_time_and_attempts(shop):
    store, aisyah = shop
    due = NOW - timedelta(hours=3)
    f = make_followup(store, make_customer(store), aisyah, due)
    service.log_outcome(f, aisyah, "no_answer", NOW)
    service.undo_last_log(FollowUp.get_by_id(f.id), aisyah, NOW + timedelta(seconds=1))
    f = FollowUp.get_by_id(f.id)
    assert (f.due_at, f.attempts, f.status) == (due, 0, "open")
    assert AuditLog.select().where(AuditLog.action == "followup.undo").count() == 1


def test_snooze_moves_the_due_time_and_refuses_the_past(shop):
    store, aisyah = shop
    f = make_followup(store, make_customer(store), aisyah, NOW - timedelta(days=1))
    choices = service.snooze_choices(store, NOW)
    assert choices["later"] == NOW + timedelta(hours=2)
    assert choices["tomorrow"] == utc(2026, 11, 25, 1, 30)
    service.snooze(f, choices["tomorrow"], NOW)
    f = FollowUp.get_by_id(f.id)
    assert (f.due_at, f.snoozed_until) == (choices["tomorrow"], choices["tomorrow"])
    with pytest.raises(service.FollowUpError):
        service.snooze(f, NOW - timedelta(minutes=1), NOW)


def test_today_groups_by_local_day_with_counts(shop):
    store, aisyah = shop
    mei = make_staff("employee", [store], name="Mei")
    overdue = make_followup(store, make_customer(store), aisyah, utc(2026, 11, 23, 15, 59))
    today = make_followup(store, make_customer(store), aisyah, utc(2026, 11, 23, 16, 0))
    tonight = make_followup(store, make_customer(store), aisyah, utc(2026, 11, 24, 15, 59))
    upcoming = make_followup(store, make_customer(store), aisyah, utc(2026, 11, 24, 16, 0))
    make_followup(store, make_customer(store), mei, NOW)
    flt = service.TodayFilter(store=store, assignee=aisyah)
    assert service.today_counts(flt, NOW) == {"overdue": 1, "today": 2, "upcoming": 1}
    assert [f.id for f in service.today_page(flt, "overdue", NOW).rows] == [overdue.id]
    assert [f.id for f in service.today_page(flt, "today", NOW).rows] == [today.id, tonight.id]
    assert [f.id for f in service.today_page(flt, "upcoming", NOW).rows] == [upcoming.id]


def test_today_pages_through_hundreds_of_rows_without_gaps_or_repeats(shop):
    store, aisyah = shop
    due = utc(2026, 11, 24, 3, 0)
    customers = [
        Customer.create(store=store, name=f"Client {i:03d}", phone=f"+601100{i:05d}")
        for i in range(130)
    ]
    FollowUp.insert_many(
        [
            dict(
                store=store.id,
                customer=c.id,
                assignee=aisyah.id,
                due_at=due + timedelta(minutes=i // 3),  # ties on due time on purpose
                open_customer=c.id,
                status="open",
            )
            for i, c in enumerate(customers)
        ]
    ).execute()
    flt = service.TodayFilter(store=store, assignee=aisyah)
    seen, cursor = [], None
    while True:
        page = service.today_page(flt, "today", NOW, cursor=cursor, limit=25)
        seen += [f.id for f in page.rows]
        cursor = page.cursor
        if cursor is None:
            break
    assert len(seen) == 130 and len(set(seen)) == 130
    assert seen == [f.id for f in FollowUp.select().order_by(FollowUp.due_at, FollowUp.id)]


def test_today_filters_by_plan_and_searches_name_and_phone(shop):
    store, aisyah = shop
    expiry = make_plan(store, "Card expiry", "card_expiry")
    second = make_plan(store)
    xiaohong = make_customer(store, name="小红", phone="+60123456789")
    somying = make_customer(store, name="สมหญิง ใจดี", phone="+60198887777")
    nurul = make_customer(store, name="Nurul Aisyah", phone="+60134445555")
    make_followup(store, xiaohong, aisyah, NOW, plan=expiry)
    make_followup(store, somying, aisyah, NOW, plan=second)
    make_followup(store, nurul, aisyah, NOW, plan=second)

    def names(**kw):
        flt = service.TodayFilter(store=store, assignee=aisyah, region="MY", **kw)
        return sorted(f.customer.name for f in service.today_page(flt, "today", NOW).rows)

    assert names(plan_id=expiry.id) == ["小红"]
    assert names(q="红") == ["小红"]
    assert names(q="หญิง") == ["สมหญิง ใจดี"]
    assert names(q="nurul") == ["Nurul Aisyah"]
    assert names(q="012-345 6789") == ["小红"]
    assert [p.name for p in service.plans_with_open_work(service.TodayFilter(store, aisyah))] == [
        "Card expiry",
        "Second visit",
    ]


@pytest.mark.parametrize(
    "query",
    ["012-345 6789", "+60 12-345 6789", "0060123456789", "60123456789", "3456789"],
)
def test_phone_search_finds_the_customer_in_any_format(shop, query):
    store, _ = shop
    make_customer(store, name="小红", phone="+60123456789")
    make_customer(store, name="Other", phone="+60171112222")
    found = Customer.select().where(service.customer_match(query, "MY"))
    assert [c.name for c in found] == ["小红"]


def test_thai_store_finds_number_typed_with_international_prefix(app):
    store = make_store("bkk", timezone="Asia/Bangkok", region="TH", currency="THB")
    make_customer(store, name="สมหญิง", phone="+66812345678")
    for query in ("0066812345678", "081 234 5678", "+66 81 234 5678"):
        found = Customer.select().where(service.customer_match(query, "TH"))
        assert [c.name for c in found] == ["สมหญิง"], query


def test_useful_fact_follows_the_plan_template(shop):
    store, aisyah = shop
    customer = make_customer(store, last_visit_at=NOW - timedelta(days=40))
    value = make_card(customer, "stored_value", balance=Decimal("120.00"))
    count = make_card(customer, "count", remaining_uses=2, expires_on=date(2026, 12, 31))
    low = make_followup(store, customer, aisyah, NOW, plan=make_plan(store, "Low", "balance_low"))
    low.customer = customer
    fact = service.useful_fact(low, [value, count], NOW)
    assert (fact["kind"], fact["value"]) == ("balance", Decimal("120.00"))
    low.plan = make_plan(store, "Uses", "count_card_low")
    assert service.useful_fact(low, [value, count], NOW)["value"] == 2
    low.plan = make_plan(store, "Expiry", "card_expiry")
    assert service.useful_fact(low, [value, count], NOW)["value"] == date(2026, 12, 31)
    low.plan = make_plan(store, "Back", "service_interval")
    assert service.useful_fact(low, [value, count], NOW) == {"kind": "days_since", "value": 40}


def test_reassign_moves_open_followups_and_audits(shop):
    store, aisyah = shop
    mei = make_staff("employee", [store], name="Mei")
    manager = make_staff("manager", [store])
    a = make_followup(store, make_customer(store), aisyah, NOW)
    b = make_followup(store, make_customer(store), aisyah, NOW)
    assert service.reassign([a, b.id], mei, NOW, by=manager) == 2
    assert {f.assignee_id for f in FollowUp.select()} == {mei.id}
    assert AuditLog.get(AuditLog.action == "followup.reassigned").staff_id == manager.id


def test_leave_hands_work_to_colleagues_evenly_and_gives_it_back_on_return(shop):
    store, aisyah = shop
    mei = make_staff("employee", [store], name="Mei")
    siti = make_staff("employee", [store], name="Siti")
    make_staff("manager", [store], name="Farah")
    due_in_leave = [
        make_followup(store, make_customer(store), aisyah, utc(2026, 11, 25, 2, i))
        for i in range(4)
    ]
    after_leave = make_followup(store, make_customer(store), aisyah, utc(2026, 12, 10, 2, 0))
    StaffLeave.create(staff=aisyah, starts_on=date(2026, 11, 24), ends_on=date(2026, 11, 27))

    assert service.apply_leave(NOW) == {"handed_over": 4, "returned": 0}
    owners = [FollowUp.get_by_id(f.id).assignee_id for f in due_in_leave]
    assert sorted(owners) == sorted([mei.id, mei.id, siti.id, siti.id])
    assert FollowUp.get_by_id(after_leave.id).assignee_id == aisyah.id
    assert {FollowUp.get_by_id(f.id).assigned_by_rule for f in due_in_leave} == {
        f"leave:{aisyah.id}"
    }
    assert service.apply_leave(NOW + timedelta(hours=1)) == {"handed_over": 0, "returned": 0}

    service.log_outcome(FollowUp.get_by_id(due_in_leave[0].id), mei, "reached", NOW)
    back = utc(2026, 11, 28, 1, 0)  # Saturday morning: the leave is over
    assert service.apply_leave(back) == {"handed_over": 0, "returned": 3}
    assert FollowUp.get_by_id(due_in_leave[0].id).assignee_id == mei.id
    for f in due_in_leave[1:]:
        assert FollowUp.get_by_id(f.id).assignee_id == aisyah.id


def test_leave_without_colleagues_goes_to_the_manager_queue(shop):
    store, aisyah = shop
    f = make_followup(store, make_customer(store), aisyah, NOW)
    service.add_leave(aisyah, date(2026, 11, 24), date(2026, 11, 24), "", NOW)
    assert FollowUp.get_by_id(f.id).assignee_id is None
    queue = service.TodayFilter(store=store, assignee=None)
    assert [r.id for r in service.today_page(queue, "all", NOW).rows] == [f.id]


def test_leave_that_has_not_started_changes_nothing_yet(shop):
    store, aisyah = shop
    make_staff("employee", [store], name="Mei")
    f = make_followup(store, make_customer(store), aisyah, utc(2026, 12, 2, 2, 0))
    service.add_leave(aisyah, date(2026, 12, 1), date(2026, 12, 3), "holiday", NOW)
    assert FollowUp.get_by_id(f.id).assignee_id == aisyah.id
    service.apply_leave(utc(2026, 12, 1, 1, 0))
    assert FollowUp.get_by_id(f.id).assignee_id != aisyah.id


def test_timeline_merges_every_source_newest_first_and_pages(shop):
    store, aisyah = shop
    customer = make_customer(store, name="小红")
    card = make_card(customer, "count", remaining_uses=5)
    events.record_event(
        store,
        {
            "external_id": "pos-1",
            "type": "service_completed",
            "customer": {"id": customer.id},
            "occurred_at": "2026-11-01T11:00:00+08:00",
            "items": [{"sku": "LASH", "name": "Lash lift"}],
            "amount": "150",
        },
        NOW,
    )
    events.record_event(
        store,
        {
            "external_id": "pos-2",
            "type": "card_used",
            "customer": {"id": customer.id},
            "occurred_at": "2026-11-10T11:00:00+08:00",
            "card": {"id": card.id, "uses": 1},
        },
        NOW,
    )
    WhyLog.create(customer=customer, kind="skipped", detail="fatigue cap", at=utc(2026, 11, 12))
    f = make_followup(store, customer, aisyah, utc(2026, 11, 20, 2, 0))
    service.log_outcome(f, aisyah, "reached", utc(2026, 11, 21, 3, 0), note="Happy")
    entries, more = timeline.timeline(customer, page=1, size=50)
    kinds = [e.kind for e in entries]
    assert kinds[0] == "contact" and "why" in kinds and "card" in kinds
    assert "event_service_completed" in kinds and "visit" in kinds and "followup" in kinds
    assert [e.at for e in entries] == sorted((e.at for e in entries), reverse=True)
    assert not more
    first, more = timeline.timeline(customer, page=1, size=3)
    second, _ = timeline.timeline(customer, page=2, size=3)
    assert more and [e.sort_key for e in first + second] == [e.sort_key for e in entries[:6]]
