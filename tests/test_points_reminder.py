"""The points reminder (seed 001): every 28 days, the balance, rewards within reach, points to
the next reward and what was taken so far, with the client's own page one tap away."""

import re
from datetime import timedelta

import pytest

from app.models import Consent, Customer, FollowUp, Message, Reward
from app.services import loyalty, plans, scheduler
from tests.factories import make_customer, make_store, switch_on_channels, utc

# Services read SECRET_KEY from the running app, as in a request or a CLI command.
pytestmark = pytest.mark.usefixtures("in_app_context")

CREATED = utc(2026, 11, 2, 2, 0)  # 09:00 in Bangkok


@pytest.fixture
def shop():
    store = make_store(
        "bkk-shop", timezone="Asia/Bangkok", region="TH", currency="THB", locale="en"
    )
    for name, price in (("Free coffee", 200), ("Free hair mask", 400), ("Free haircut", 800)):
        Reward.create(store=store, name=name, points_price=price)
    Reward.create(store=store, name="Retired reward", points_price=100, active=False)
    return switch_on_channels(store, "email")


def _member(store, name, points, locale=None, email=None):
    customer = make_customer(store, name=name, locale=locale, email=email)
    loyalty.adjust(customer, points, "Opening balance", None, CREATED - timedelta(days=90))
    if email:
        Consent.create(customer=customer, channel="email", granted=True, source="test")
    return Customer.get_by_id(customer.id)


def _plan(store, action):
    return plans.create_plan(
        store,
        {
            "template": "points_reminder",
            "name": "Points reminder",
            "params": {"every_days": 28, "at": "10:00"},
            "action": action,
            "status": "active",
        },
        CREATED,
    )


def _first_run(store):
    """Tick through the plan's first day at 10:00 Bangkok time; the run that produced work."""
    for day in range(0, 29):
        at = utc(2026, 11, 2, 3, 0) + timedelta(days=day)
        summary = scheduler.tick(at)
        if summary.followups or summary.messages:
            return at, summary
    raise AssertionError("the points reminder never ran")


def test_reminder_follow_up_names_the_seeds_four_items_and_the_link(app, shop):
    saver = _member(shop, "Siti Aminah", 1050)
    coffee = Reward.get(Reward.name == "Free coffee")
    loyalty.redeem(saver, coffee, CREATED - timedelta(days=60))
    loyalty.redeem(saver, coffee, CREATED - timedelta(days=20))
    loyalty.redeem(saver, Reward.get(Reward.name == "Free hair mask"), CREATED - timedelta(days=5))
    # 1050 - 200 - 200 - 400 = 250 points left
    _plan(shop, {"kind": "followup"})

    at, _summary = _first_run(shop)

    script = FollowUp.get(FollowUp.customer == saver.id).script
    assert "you have 250 points" in script
    assert "Rewards you can take now: Free coffee." in script
    assert "Next reward: Free hair mask, 150 points to go." in script
    assert "Taken so far: Free coffee ×2, Free hair mask." in script
    link = re.search(r"https?://\S+/p/(\S+)$", script)
    assert link, script
    page = app.test_client().get(f"/p/{link.group(1)}")
    assert page.status_code == 200 and 'data-points="250"' in page.get_data(as_text=True)


def test_reminder_says_so_when_nothing_is_within_reach_or_taken(shop):
    newcomer = _member(shop, "Ahmad Faizal", 120)
    _plan(shop, {"kind": "followup"})

    _first_run(shop)

    script = FollowUp.get(FollowUp.customer == newcomer.id).script
    assert "Rewards you can take now: nothing yet." in script
    assert "Next reward: Free coffee, 80 points to go." in script
    assert "Taken so far: nothing yet." in script


def test_reminder_message_speaks_each_clients_language(shop):
    thai = _member(shop, "สมชาย ใจดี", 900, locale="th", email="somchai@example.com")
    chinese = _member(shop, "小红", 450, locale="zh_Hans", email="xh@example.com")
    _plan(shop, {"kind": "message", "channel": "email"})

    _first_run(shop)

    bodies = {m.customer_id: m.body for m in Message.select()}
    assert "คุณมีคะแนนสะสม 900 คะแนน" in bodies[thai.id]
    assert "แลกของรางวัลได้ทุกรายการแล้ว" in bodies[thai.id]  # above every reward's price
    assert "Free coffee, Free hair mask, Free haircut" in bodies[thai.id]
    assert "积分余额为450分" in bodies[chinese.id]
    assert "Free haircut,还差 350 积分" in bodies[chinese.id]
    assert "已兑换:暂无" in bodies[chinese.id]
    assert all("/p/" in body for body in bodies.values())


def test_thai_reminder_carries_the_seeds_four_items_in_thai(shop):
    """Seed 001 (Thai): จำนวนคะแนน, รางวัลที่มีสิทธิ์ได้รับ, ต้องใช้กี่คะแนนสำหรับรางวัลต่อไป,
    ของฟรีที่ได้รับมาจนถึงตอนนี้."""
    somchai = _member(shop, "สมชาย ใจดี", 650, locale="th", email="somchai@example.com")
    loyalty.redeem(somchai, Reward.get(Reward.name == "Free coffee"), CREATED - timedelta(days=10))
    _plan(shop, {"kind": "message", "channel": "email"})

    _first_run(shop)

    body = Message.get(Message.customer == somchai.id).body
    assert "คุณมีคะแนนสะสม 450 คะแนน" in body
    assert "ของรางวัลที่แลกได้ตอนนี้: Free coffee, Free hair mask" in body
    assert "รางวัลถัดไป: Free haircut อีก 350 คะแนน" in body
    assert "ที่แลกไปแล้ว: Free coffee" in body


def test_customers_without_points_get_no_reminder(shop):
    _member(shop, "Has points", 10)
    empty = make_customer(shop, name="No points")
    _plan(shop, {"kind": "followup"})

    _first_run(shop)

    assert not FollowUp.select().where(FollowUp.customer == empty.id).exists()


def test_plan_preview_shows_the_same_filled_in_reminder(shop):
    saver = _member(shop, "Siti Aminah", 450)
    plan = _plan(shop, {"kind": "followup"})

    rows = plans.preview(plan, utc(2026, 11, 2, 3, 0))

    text = dict((c.id, t) for c, t in rows)[saver.id]
    assert "you have 450 points" in text
    assert "Rewards you can take now: Free coffee, Free hair mask." in text
    assert "Next reward: Free haircut, 350 points to go." in text
    assert "Taken so far: nothing yet." in text
    assert "/p/" in text


def test_every_28_days_means_every_28_days_from_the_day_it_was_switched_on(shop):
    """Switched on at 09:00 on 2 November (before its 10:00 hour): 2 November, 30 November,
    28 December — not a day early and never on two days running."""
    from app.models import Occurrence

    _member(shop, "Siti Aminah", 300)
    plan = _plan(shop, {"kind": "followup"})
    for step in range(0, 60 * 4):
        scheduler.tick(CREATED + timedelta(hours=6 * step))
    fired = [
        o.scheduled_for
        for o in Occurrence.select().where(Occurrence.plan == plan.id).order_by(Occurrence.id)
    ]
    assert fired == [utc(2026, 11, 2, 3), utc(2026, 11, 30, 3), utc(2026, 12, 28, 3)]


def test_migration_0012_moves_an_interval_plan_back_onto_its_phase(shop):
    """A plan whose next firing was computed a day early (before the fix) is put right."""
    import importlib.util

    from app import clock, migrate
    from app.db import db
    from app.models import Plan

    plan = _plan(shop, {"kind": "followup"})
    anchor = plan.schedule["anchor"]  # 2 November
    Plan.update(next_run_at=utc(2026, 11, 29, 3)).where(Plan.id == plan.id).execute()
    spec = importlib.util.spec_from_file_location(
        "m0012", migrate.MIGRATIONS / "0012_interval_plan_phase.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.up(None, db)
    fixed = Plan.get_by_id(plan.id).next_run_at
    assert anchor == "2026-11-02"
    assert fixed > clock.now() and (fixed.date() - utc(2026, 11, 2).date()).days % 28 == 0
    assert fixed.hour == 3  # 10:00 in Bangkok
