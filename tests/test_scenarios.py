"""The seeds' own scenarios, run through the plan engine with `now=` instants."""

from datetime import date, timedelta
from decimal import Decimal

import pytest

from app.models import Consent, Decision, Enrollment, FollowUp, Message, Occurrence, WhyLog
from app.services import engine, events, plans, timeline
from app.services.validation import ValidationError
from tests.factories import (
    make_card,
    make_customer,
    make_staff,
    make_store,
    switch_on_channels,
    utc,
)

SH = "Asia/Shanghai"  # UTC+8, no DST


def shop(**kw):
    kw.setdefault("timezone", SH)
    kw.setdefault("currency", "CNY")
    kw.setdefault("locale", "zh_Hans")
    return switch_on_channels(make_store(**kw))


def reachable(customer, channel="whatsapp"):
    Consent.create(customer=customer, channel=channel, granted=True)
    return customer


def event(store, customer, etype, at, ext, **kw):
    body = {
        "external_id": ext,
        "type": etype,
        "customer": {"id": customer.id},
        "occurred_at": at.isoformat(),
        **kw,
    }
    return events.record_event(store, body, now=at)[0]


def spend(store, customer, card, at, ext, amount):
    """A card_used event paying `amount` from a stored-value card."""
    return event(store, customer, "card_used", at, ext, card={"id": card.id, "amount": amount})


def tick(at):
    return engine.run_due(at)


def test_member_day_on_18th_reminds_xiaohong_on_17th_at_ten(app):
    store = shop()
    xiaohong = reachable(make_customer(store, name="小红"))
    plans.create_plan(
        store, {"template": "member_day", "name": "会员日", "status": "active"}, now=utc(2022, 5, 1)
    )
    assert tick(utc(2022, 5, 17, 1, 59))["messages"] == 0
    assert tick(utc(2022, 5, 17, 2, 0))["messages"] == 1  # 10:00 in Shanghai
    message = Message.get(Message.customer == xiaohong.id)
    assert "2022年5月18日" in message.body and "小红" in message.body
    assert message.status == "queued" and message.channel == "whatsapp"


def test_tick_twice_for_same_instant_changes_nothing(app):
    store = shop()
    reachable(make_customer(store, name="小红"))
    plans.create_plan(
        store, {"template": "member_day", "name": "会员日", "status": "active"}, now=utc(2022, 5, 1)
    )
    first = tick(utc(2022, 5, 17, 2))
    second = tick(utc(2022, 5, 17, 2))
    assert first["messages"] == 1 and second == {k: 0 for k in second}
    assert Message.select().count() == 1 and Decision.select().count() == 1


def test_new_customer_from_dianping_is_invited_back_on_day_seven(app):
    store = shop()
    dawang = make_staff(stores=[store], name="大王")
    xiaohong = make_customer(store, name="小红", source="点评", assigned_staff=dawang)
    plans.create_plan(
        store,
        {"template": "second_visit", "name": "新客二次到店", "status": "active"},
        now=utc(2022, 5, 1),
    )
    event(store, xiaohong, "service_completed", utc(2022, 5, 2, 6), "e1")
    tick(utc(2022, 5, 9, 0, 59))
    assert FollowUp.select().count() == 0
    tick(utc(2022, 5, 9, 1, 0))  # 09:00 Shanghai, 7 days later
    followup = FollowUp.get(FollowUp.customer == xiaohong.id)
    assert followup.assignee_id == dawang.id and followup.assigned_by_rule == "assigned"
    assert "大王" in followup.script
    assert "点评" in followup.reasons[0].text


def test_second_visit_is_not_created_for_customer_who_already_came_back(app):
    store = shop()
    make_staff(stores=[store])
    xiaohong = make_customer(store, name="小红")
    plans.create_plan(
        store, {"template": "second_visit", "name": "新客", "status": "active"}, now=utc(2022, 5, 1)
    )
    event(store, xiaohong, "service_completed", utc(2022, 5, 2, 6), "e1")
    event(store, xiaohong, "visit", utc(2022, 5, 5, 6), "e2")
    tick(utc(2022, 5, 9, 2))
    assert FollowUp.select().count() == 0


def test_lashes_on_1_june_are_checked_on_15_june(app):
    store = shop()
    xiaohong = reachable(make_customer(store, name="小红"))
    plans.create_plan(
        store,
        {
            "template": "post_service",
            "name": "补睫毛",
            "params": {"days_after": 14, "products": ["LASH"]},
            "status": "active",
        },
        now=utc(2022, 5, 20),
    )
    event(
        store,
        xiaohong,
        "service_completed",
        utc(2022, 6, 1, 3),
        "lash",
        items=[{"sku": "LASH", "name": "嫁接睫毛"}],
    )
    event(
        store,
        xiaohong,
        "service_completed",
        utc(2022, 6, 2, 3),
        "nails",
        items=[{"sku": "NAIL", "name": "美甲"}],
    )
    tick(utc(2022, 6, 14, 2))
    assert Message.select().count() == 0
    tick(utc(2022, 6, 15, 2))
    assert Message.select().count() == 1
    tick(utc(2022, 6, 16, 2))
    assert Message.select().count() == 1  # the nails service is not a chosen product


def test_cat_deworming_card_reminded_on_30_may_and_30_june_then_not_after_used_up(app):
    store = shop(key="petclinic")
    xiaohong = reachable(make_customer(store, name="小红"))
    card = make_card(xiaohong, kind="count", remaining_uses=3, expires_on=date(2022, 7, 31))
    plans.create_plan(
        store,
        {"template": "card_use_reminder", "name": "驱虫提醒", "status": "active"},
        now=utc(2022, 4, 1),
    )
    event(store, xiaohong, "card_used", utc(2022, 4, 30, 3), "u1", card={"id": card.id, "uses": 1})
    tick(utc(2022, 5, 29, 2))
    assert Message.select().count() == 0
    tick(utc(2022, 5, 30, 2))
    assert Message.select().count() == 1
    assert "还剩2次" in Message.get().body
    event(store, xiaohong, "card_used", utc(2022, 5, 31, 3), "u2", card={"id": card.id, "uses": 1})
    tick(utc(2022, 6, 29, 2))  # 60 days after the first use: a newer use restarted the count
    assert Message.select().count() == 1
    tick(utc(2022, 6, 30, 2))
    assert Message.select().count() == 2
    event(store, xiaohong, "card_used", utc(2022, 6, 30, 5), "u3", card={"id": card.id, "uses": 1})
    tick(utc(2022, 7, 30, 2))
    assert Message.select().count() == 2  # used up: no more reminders


def test_card_expiring_30_june_is_reminded_30_days_before_once_and_again_once_renewed(app):
    store = shop()
    xiaohong = reachable(make_customer(store, name="小红"))
    card = make_card(
        xiaohong, kind="stored_value", balance=Decimal("800"), expires_on=date(2021, 6, 30)
    )
    plans.create_plan(
        store,
        {"template": "card_expiry", "name": "卡项到期", "status": "active"},
        now=utc(2021, 5, 1),
    )
    tick(utc(2021, 5, 30, 2))
    assert Message.select().count() == 0
    tick(utc(2021, 5, 31, 2))
    tick(utc(2021, 6, 1, 2))
    tick(utc(2021, 6, 2, 2))
    assert Message.select().count() == 1
    assert "2021年6月30日" in Message.get().body
    card.expires_on = date(2021, 7, 31)  # renewed: a new expiry date is a new state
    card.save()
    tick(utc(2021, 6, 30, 2))
    assert Message.select().count() == 1
    tick(utc(2021, 7, 1, 2))
    assert Message.select().count() == 2
    assert "2021年7月31日" in Message.select().order_by(Message.id.desc()).get().body


def test_count_card_with_two_uses_left_gives_dawang_a_followup_once_per_fall(app):
    store = shop()
    dawang = make_staff(stores=[store], name="大王")
    xiaohong = make_customer(store, name="小红", assigned_staff=dawang)
    card = make_card(xiaohong, kind="count", remaining_uses=3)
    plans.create_plan(
        store,
        {"template": "count_card_low", "name": "次卡不足", "status": "active"},
        now=utc(2022, 5, 1),
    )
    tick(utc(2022, 5, 2, 1))
    assert FollowUp.select().count() == 0
    event(store, xiaohong, "card_used", utc(2022, 5, 2, 3), "u1", card={"id": card.id, "uses": 1})
    tick(utc(2022, 5, 3, 1))
    followup = FollowUp.get()
    assert followup.assignee_id == dawang.id and "还剩2次" in followup.script
    FollowUp.update(status="done", open_customer=None).execute()
    tick(utc(2022, 5, 4, 1))
    assert FollowUp.select().count() == 1


def test_stored_value_card_with_500_left_gives_a_followup(app):
    store = shop()
    make_staff(stores=[store], name="大王")
    xiaohong = make_customer(store, name="小红")
    make_card(xiaohong, kind="stored_value", balance=Decimal("500"))
    plans.create_plan(
        store,
        {"template": "balance_low", "name": "余额不足", "status": "active"},
        now=utc(2022, 5, 1),
    )
    tick(utc(2022, 5, 2, 1))
    assert "¥500.00" in FollowUp.get().script


def _peasy(store_tz="Asia/Kuala_Lumpur"):
    store = switch_on_channels(make_store(timezone=store_tz, name="Bengkel Ali"))
    plan = plans.create_plan(
        store,
        {"template": "service_interval", "name": "Servis", "status": "active"},
        now=utc(2025, 12, 1),
    )
    return store, plan


def test_peasy_workshop_reminds_at_173_days_and_promo_at_195_skips_the_customer_who_booked(app):
    store, plan = _peasy()
    bob = reachable(make_customer(store, name="Bob Tan"))
    siti = reachable(make_customer(store, name="Siti Aminah"))
    event(store, bob, "service_completed", utc(2026, 1, 5, 2), "b1")
    event(store, siti, "service_completed", utc(2026, 1, 5, 3), "s1")
    tick(utc(2026, 6, 26, 1, 59))
    assert Message.select().count() == 0
    tick(utc(2026, 6, 27, 2))  # 5 Jan + 173 days = 27 June, 10:00 in Kuala Lumpur
    assert Message.select().count() == 2
    assert all(m.body.startswith(("Hi Bob", "Hi Siti")) for m in Message.select())
    event(store, bob, "appointment_booked", utc(2026, 6, 28, 5), "b2")
    tick(utc(2026, 7, 19, 1, 59))
    assert Message.select().count() == 2
    tick(utc(2026, 7, 19, 2))  # 195 days
    promos = list(Message.select().where(Message.body.contains("miss you")))
    assert [m.customer_id for m in promos] == [siti.id]
    assert Enrollment.get(Enrollment.customer == bob.id).status == "converted"


def test_ten_oclock_plan_stays_at_ten_in_new_york_across_dst(app):
    store = make_store(timezone="America/New_York", currency="USD")
    reachable(make_customer(store, name="Ann Lee"))
    plans.create_plan(
        store,
        {
            "name": "Daily",
            "type": "recurring",
            "schedule": {"frequency": "daily", "at": "10:00"},
            "action": {"kind": "message", "script": "Hi {first_name}"},
            "status": "active",
        },
        now=utc(2026, 3, 7, 0),
    )
    occ_times = []
    for at in (utc(2026, 3, 7, 15), utc(2026, 3, 8, 14), utc(2026, 3, 9, 14)):
        tick(at)
        occ_times.append(Occurrence.select().order_by(Occurrence.id.desc()).get().scheduled_for)
    assert occ_times == [utc(2026, 3, 7, 15), utc(2026, 3, 8, 14), utc(2026, 3, 9, 14)]


def _daily_at_ten(store):
    """A daily 10:00 message plan switched on on 1 May 2022."""
    return plans.create_plan(
        store,
        {
            "name": "每日",
            "type": "recurring",
            "schedule": {"frequency": "daily", "at": "10:00"},
            "action": {"kind": "message", "script": "{name}"},
            "status": "active",
        },
        now=utc(2022, 5, 1),
    )


def _two_one_offs_and_a_birthday(store):
    """Two one-off messages and the birthday plan, all at 10:00 on 17 May 2022: three messages
    for a customer born on 17 May, one over the default budget of two."""
    for name in ("A", "B"):
        plans.create_plan(
            store,
            {
                "name": name,
                "type": "one_off",
                "schedule": {"at": "2022-05-17T10:00:00"},
                "action": {"kind": "message", "script": name},
                "priority": 10,
                "status": "active",
            },
            now=utc(2022, 5, 16, 12),
        )
    plans.create_plan(
        store,
        {"template": "birthday", "name": "生日", "status": "active"},
        now=utc(2022, 5, 16, 12),
    )


def test_downtime_within_grace_runs_once_and_beyond_grace_is_recorded_missed(app):
    store = shop()
    reachable(make_customer(store, name="小红"))
    _daily_at_ten(store)
    # Down from 1 May until 4 May 12:00 Shanghai: 1–3 May are beyond 24 h, 4 May is within.
    result = tick(utc(2022, 5, 4, 4))
    statuses = {o.key: o.status for o in Occurrence.select()}
    assert statuses == {
        "2022-05-01": "missed",
        "2022-05-02": "missed",
        "2022-05-03": "missed",
        "2022-05-04": "done",
    }
    assert result["missed"] == 3 and result["occurrences"] == 1
    assert Message.select().count() == 1


def test_holdout_is_stable_per_customer_and_why_logged(app):
    store = shop()
    for i in range(200):
        reachable(make_customer(store, name=f"客户{i}"))
    data = {"name": "会员日", "template": "member_day", "holdout_percent": 10, "status": "active"}
    plan = plans.create_plan(store, data, now=utc(2022, 5, 1))
    tick(utc(2022, 5, 17, 2))
    held = {d.customer_id for d in Decision.select().where(Decision.outcome == "held_out")}
    assert 5 <= len(held) <= 40
    assert WhyLog.select().where(WhyLog.kind == "held_out").count() == len(held)
    assert Message.select().count() == 200 - len(held)
    assert not Message.select().where(Message.customer.in_(list(held))).exists()
    tick(utc(2022, 6, 17, 2))
    held_june = {
        d.customer_id
        for d in Decision.select().where(
            (Decision.outcome == "held_out") & (Decision.dedupe_key == "2022-06-17")
        )
    }
    assert held_june == held
    assert plan.id


def test_second_reason_joins_the_open_followup_and_withdrawal_removes_only_its_reason(app):
    store = shop()
    make_staff(stores=[store])
    xiaohong = make_customer(store, name="小红")
    card = make_card(xiaohong, kind="stored_value", balance=Decimal("400"))
    make_card(xiaohong, kind="count", remaining_uses=2)
    plans.create_plan(
        store,
        {"template": "balance_low", "name": "余额不足", "status": "active"},
        now=utc(2022, 5, 1),
    )
    plans.create_plan(
        store,
        {"template": "count_card_low", "name": "次卡不足", "status": "active"},
        now=utc(2022, 5, 1),
    )
    tick(utc(2022, 5, 2, 1))
    followup = FollowUp.get()
    assert FollowUp.select().count() == 1 and followup.reasons.count() == 2
    assert "¥400.00" in followup.script and "还剩2次" in followup.script
    event(
        store, xiaohong, "top_up", utc(2022, 5, 2, 5), "t1", card={"id": card.id, "amount": "1000"}
    )
    followup = FollowUp.get()
    assert followup.status == "open" and followup.reasons.count() == 1
    assert "还剩2次" in followup.script and "¥400.00" not in followup.script
    assert WhyLog.select().where(WhyLog.kind == "withdrawn").count() == 1
    with app.test_request_context():
        entries, _ = timeline.timeline(xiaohong)
    why = sorted((e.data["decision"], e.data["plan"]) for e in entries if e.kind == "why")
    assert why == [("created", "余额不足"), ("created", "次卡不足"), ("withdrawn", "余额不足")]


def test_fatigue_defers_a_third_message_until_budget_frees(app):
    store = shop()
    xiaohong = reachable(make_customer(store, name="小红", birthday=date(1990, 5, 17)))
    _two_one_offs_and_a_birthday(store)
    result = tick(utc(2022, 5, 17, 2))
    assert result["messages"] == 2 and result["deferred"] == 1
    deferred = Decision.get(Decision.outcome == "deferred")
    assert deferred.defer_until == utc(2022, 5, 24, 2)
    tick(utc(2022, 5, 24, 2))
    assert Message.select().where(Message.customer == xiaohong.id).count() >= 3
    assert Decision.get_by_id(deferred.id).outcome == "message"


def test_message_skipped_with_why_log_when_customer_has_no_consent(app):
    store = shop()
    make_customer(store, name="小红")
    plans.create_plan(
        store, {"template": "member_day", "name": "会员日", "status": "active"}, now=utc(2022, 5, 1)
    )
    tick(utc(2022, 5, 17, 2))
    assert Message.select().count() == 0
    assert Decision.get().outcome == "skipped"
    assert WhyLog.get().kind == "skipped"


def test_29_february_birthday_is_greeted_on_28_february_2027_once(app):
    store = shop()
    reachable(make_customer(store, name="闰年宝宝", birthday=date(2000, 2, 29)))
    plans.create_plan(
        store, {"template": "birthday", "name": "生日", "status": "active"}, now=utc(2027, 2, 1)
    )
    tick(utc(2027, 2, 28, 2))
    tick(utc(2027, 3, 1, 2))
    assert Message.select().count() == 1
    assert Decision.get().dedupe_key == "bday:2027"


def test_monthly_day_31_plan_runs_on_28_february(app):
    store = shop()
    reachable(make_customer(store, name="小红"))
    plans.create_plan(
        store,
        {
            "name": "月底",
            "type": "recurring",
            "schedule": {"frequency": "monthly", "day_of_month": 31, "at": "10:00"},
            "action": {"kind": "message", "script": "{name}"},
            "status": "active",
        },
        now=utc(2027, 2, 1),
    )
    tick(utc(2027, 2, 28, 2))
    assert Occurrence.get().key == "2027-02-28"


def test_behaviour_plan_audience_is_checked_when_it_fires_not_when_the_event_came(app):
    store = shop()
    xiaohong = reachable(make_customer(store, name="小红", level="gold"))
    xiaomei = reachable(make_customer(store, name="小美", level="silver"))
    plans.create_plan(
        store,
        {
            "template": "post_service",
            "name": "补睫毛",
            "params": {"days_after": 14},
            "audience": {"all": [{"field": "level", "op": "eq", "value": "gold"}]},
            "status": "active",
        },
        now=utc(2022, 5, 20),
    )
    event(store, xiaohong, "service_completed", utc(2022, 6, 1, 3), "lash-hong")
    event(store, xiaomei, "service_completed", utc(2022, 6, 1, 4), "lash-mei")
    # Between the service and the check-in 小红 drops to silver and 小美 rises to gold.
    xiaohong.level, xiaomei.level = "silver", "gold"
    xiaohong.save()
    xiaomei.save()
    tick(utc(2022, 6, 15, 2))
    assert [m.customer_id for m in Message.select()] == [xiaomei.id]


def test_balance_low_reminds_again_only_after_the_card_went_back_above_500(app):
    store = shop()
    xiaohong = reachable(make_customer(store, name="小红"))
    card = make_card(xiaohong, kind="stored_value", balance=Decimal("800"))
    plans.create_plan(
        store,
        {
            "template": "balance_low",
            "name": "余额不足",
            "action": {"kind": "message"},
            "status": "active",
        },
        now=utc(2022, 5, 1),
    )
    spend(store, xiaohong, card, utc(2022, 5, 2, 3), "u1", "400")  # 800 → 400
    tick(utc(2022, 5, 3, 2))
    tick(utc(2022, 5, 4, 2))
    assert Message.select().count() == 1
    spend(store, xiaohong, card, utc(2022, 5, 10, 3), "u2", "400")  # 400 → 0
    tick(utc(2022, 5, 11, 2))
    assert Message.select().count() == 1  # still the same fall below the threshold
    top_up = {"id": card.id, "amount": "1000"}
    event(store, xiaohong, "top_up", utc(2022, 5, 20, 3), "t1", card=top_up)  # 0 → 1000
    tick(utc(2022, 5, 21, 2))
    assert Message.select().count() == 1
    spend(store, xiaohong, card, utc(2022, 5, 25, 3), "u3", "600")
    tick(utc(2022, 5, 26, 2))  # 1000 → 400: a new fall
    assert Message.select().count() == 2


def test_over_budget_the_promotion_is_deferred_before_card_expiry_and_birthday(app):
    store = shop()
    xiaohong = reachable(make_customer(store, name="小红", birthday=date(1990, 5, 17)))
    make_card(xiaohong, kind="stored_value", balance=Decimal("800"), expires_on=date(2022, 6, 10))
    made = {}
    for key, name in (("member_day", "会员日"), ("birthday", "生日"), ("card_expiry", "卡项到期")):
        made[key] = plans.create_plan(
            store, {"template": key, "name": name, "status": "active"}, now=utc(2022, 5, 1)
        )
    result = tick(utc(2022, 5, 17, 2))  # member day on the 18th, birthday and expiry today
    assert result["messages"] == 2 and result["deferred"] == 1
    assert Decision.get(Decision.outcome == "deferred").plan_id == made["member_day"].id
    assert {m.plan_id for m in Message.select()} == {made["birthday"].id, made["card_expiry"].id}
    assert WhyLog.get(WhyLog.kind == "deferred").plan_id == made["member_day"].id


def _balance_followup_deferred_behind_a_count_card_call(store):
    """大王 calls 小红 about her count card on 2 May; her wallet falls to 400 the same day, and
    the balance follow-up of 3 May is over the budget of one staff follow-up per 7 days."""
    make_staff(stores=[store], name="大王")
    xiaohong = make_customer(store, name="小红")
    make_card(xiaohong, kind="count", remaining_uses=2)
    wallet = make_card(xiaohong, kind="stored_value", balance=Decimal("800"))
    for key, name in (("count_card_low", "次卡不足"), ("balance_low", "余额不足")):
        plans.create_plan(
            store, {"template": key, "name": name, "status": "active"}, now=utc(2022, 5, 1)
        )
    tick(utc(2022, 5, 2, 1))
    FollowUp.update(status="done", open_customer=None).execute()  # 大王 called her
    spend(store, xiaohong, wallet, utc(2022, 5, 2, 6), "u1", "400")
    result = tick(utc(2022, 5, 3, 1))
    assert result["followups"] == 0 and result["deferred"] == 1
    return xiaohong, wallet, Decision.get(Decision.outcome == "deferred")


def test_second_staff_followup_within_seven_days_is_deferred_until_the_budget_frees(app):
    store = shop()
    _xiaohong, _wallet, deferred = _balance_followup_deferred_behind_a_count_card_call(store)
    assert deferred.plan.name == "余额不足"
    assert deferred.defer_until == FollowUp.get().created_at + timedelta(days=7)
    assert "over the contact budget" in WhyLog.get(WhyLog.kind == "deferred").detail
    tick(utc(2022, 5, 9, 0, 59))
    assert FollowUp.select().count() == 1  # not yet: 1 follow-up per 7 days
    tick(utc(2022, 5, 9, 1))
    assert FollowUp.select().count() == 2
    assert Decision.get_by_id(deferred.id).outcome == "followup"


def test_deferred_balance_followup_is_withdrawn_when_she_tops_up_that_card(app):
    store = shop()
    xiaohong, wallet, deferred = _balance_followup_deferred_behind_a_count_card_call(store)
    top_up = {"id": wallet.id, "amount": "1000"}
    event(store, xiaohong, "top_up", utc(2022, 5, 4, 3), "t1", card=top_up)
    decision = Decision.get_by_id(deferred.id)
    assert decision.outcome == "withdrawn" and "topped up" in decision.reason
    assert "topped up" in WhyLog.get(WhyLog.kind == "withdrawn").detail
    tick(utc(2022, 5, 9, 1))
    assert FollowUp.select().count() == 1


def test_opted_out_and_unreachable_customers_are_skipped_each_with_why(app):
    store = shop()
    xiaohong = make_customer(store, name="小红")
    Consent.create(customer=xiaohong, channel="whatsapp", granted=False)
    xiaomei = make_customer(store, name="小美")  # never asked
    plans.create_plan(
        store, {"template": "member_day", "name": "会员日", "status": "active"}, now=utc(2022, 5, 1)
    )
    tick(utc(2022, 5, 17, 2))
    assert Message.select().count() == 0
    why = {w.customer_id: (w.kind, w.detail) for w in WhyLog.select()}
    assert why[xiaohong.id] == ("skipped", "opted out")
    assert why[xiaomei.id][0] == "skipped" and "no consent" in why[xiaomei.id][1]


def test_grace_period_is_the_stores_own_setting(app):
    store = shop()
    store.settings = {**(store.settings or {}), "grace_hours": 2}
    store.save()
    reachable(make_customer(store, name="小红"))
    _daily_at_ten(store)
    # Down until 13:00 Shanghai on 1 May: three hours late is beyond a two-hour grace.
    result = tick(utc(2022, 5, 1, 5))
    assert result["missed"] == 1 and Occurrence.get().status == "missed"
    assert Message.select().count() == 0
    result = tick(utc(2022, 5, 2, 3, 30))  # 11:30: within the grace
    assert result["occurrences"] == 1 and Message.select().count() == 1


def test_a_deferred_contact_whose_retry_was_killed_is_finished_by_the_next_tick(app, monkeypatch):
    store = shop()
    xiaohong = reachable(make_customer(store, name="小红", birthday=date(1990, 5, 17)))
    _two_one_offs_and_a_birthday(store)
    tick(utc(2022, 5, 17, 2))
    deferred = Decision.get(Decision.outcome == "deferred")

    real = engine._create_messages

    def killed_while_retrying(*args, **kwargs):
        if Decision.get_by_id(deferred.id).outcome == "pending":
            raise RuntimeError("worker killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "_create_messages", killed_while_retrying)
    with pytest.raises(RuntimeError, match="worker killed"):
        tick(utc(2022, 5, 24, 2))
    assert Decision.get_by_id(deferred.id).outcome == "pending"
    monkeypatch.undo()
    tick(utc(2022, 5, 24, 2, 1))
    assert Decision.get_by_id(deferred.id).outcome == "message"
    assert Message.select().where(Message.customer == xiaohong.id).count() == 3


def test_custom_behaviour_plan_fires_days_after_buying_a_chosen_product_at_its_time(app):
    store = shop()
    xiaohong = reachable(make_customer(store, name="小红"))
    xiaomei = reachable(make_customer(store, name="小美"))
    plans.create_plan(
        store,
        {
            "name": "面膜回访",
            "type": "behaviour",
            "trigger": {"event": "purchase", "products": ["MASK"], "delay_days": 2, "at": "15:00"},
            "action": {"kind": "message", "script": "{first_name},面膜用得怎么样?"},
            "status": "active",
        },
        now=utc(2022, 5, 20),
    )
    mask = [{"sku": "MASK", "name": "面膜"}]
    event(store, xiaohong, "purchase", utc(2022, 6, 1, 3), "p1", amount="99", items=mask)
    lipstick = [{"sku": "LIP", "name": "口红"}]
    event(store, xiaomei, "purchase", utc(2022, 6, 1, 3), "p2", amount="199", items=lipstick)
    tick(utc(2022, 6, 3, 6, 59))
    assert Message.select().count() == 0
    tick(utc(2022, 6, 3, 7))  # 15:00 in Shanghai, two days later
    assert [(m.customer_id, m.body) for m in Message.select()] == [
        (xiaohong.id, "小红,面膜用得怎么样?")
    ]


def test_custom_plan_repeats_every_ten_days_after_a_week_until_a_newer_purchase_or_she_leaves(
    app,
):
    """A custom behaviour plan with a repeat: first `delay_days` after the purchase, then every
    `every_days`; a newer purchase restarts the count, and leaving the audience ends it."""
    store = shop()
    xiaohong = reachable(make_customer(store, name="小红", gender="female"))
    xiaomei = reachable(make_customer(store, name="小美", gender="female"))
    plans.create_plan(
        store,
        {
            "name": "面膜补货提醒",
            "type": "behaviour",
            "audience": {"all": [{"field": "gender", "op": "eq", "value": "female"}]},
            "trigger": {
                "event": "purchase",
                "products": ["MASK"],
                "delay_days": 7,
                "every_days": 10,
                "at": "15:00",
            },
            "action": {"kind": "message", "script": "{first_name},面膜快用完了吗?"},
            "status": "active",
        },
        now=utc(2022, 5, 20),
    )
    mask = [{"sku": "MASK", "name": "面膜"}]
    event(store, xiaohong, "purchase", utc(2022, 6, 1, 3), "p1", amount="99", items=mask)
    event(store, xiaomei, "purchase", utc(2022, 6, 1, 3), "p2", amount="99", items=mask)
    day = date(2022, 6, 2)
    while day <= date(2022, 7, 20):
        if day == date(2022, 6, 22):
            xiaomei.gender = "male"  # recorded wrongly at first: she leaves the audience
            xiaomei.save()
        if day == date(2022, 6, 25):
            event(store, xiaohong, "purchase", utc(2022, 6, 25, 3), "p3", amount="99", items=mask)
        tick(utc(day.year, day.month, day.day, 7))  # 15:00 in Shanghai
        day += timedelta(days=1)

    def days(customer):
        return [
            (m.created_at + timedelta(hours=8)).date().isoformat()
            for m in Message.select()
            .where(Message.customer == customer.id)
            .order_by(Message.created_at)
        ]

    # 1 June + 7, + 17; the purchase on 25 June restarts (28 June is not sent): + 7, + 17.
    assert days(xiaohong) == ["2022-06-08", "2022-06-18", "2022-07-02", "2022-07-12"]
    assert days(xiaomei) == ["2022-06-08", "2022-06-18"]


@pytest.mark.parametrize(
    "trigger, field",
    [({"every_days": -5}, "every_days"), ({"delay_days": 100_000}, "delay_days")],
)
def test_a_repeat_below_one_day_or_a_delay_beyond_ten_years_is_refused(app, trigger, field):
    store = shop()
    with pytest.raises(ValidationError) as refused:
        plans.create_plan(
            store,
            {
                "name": "x",
                "type": "behaviour",
                "trigger": {"event": "purchase", **trigger},
                "action": {"kind": "message", "script": "hi"},
            },
            now=utc(2022, 5, 20),
        )
    assert field in str(refused.value.errors)
