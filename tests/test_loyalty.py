"""Loyalty points: earning once, reversing exactly, expiring FIFO, redeeming atomically, tiers."""

import threading
from datetime import timedelta
from decimal import Decimal

import peewee as pw
import pytest

from app import clock
from app.db import db
from app.models import Coupon, Customer, Event, PointsEntry, Reward
from app.services import audience, loyalty
from tests.factories import make_customer, make_staff, make_store, utc

NOW = utc(2026, 11, 24, 3, 0)


def _order(customer, external_id, amount, at=NOW, type_="purchase"):
    return Event.create(
        store=customer.store_id,
        customer=customer,
        external_id=external_id,
        type=type_,
        occurred_at=at,
        amount=Decimal(str(amount)) if amount is not None else None,
    )


def _points(customer) -> int:
    return Customer.get_by_id(customer.id).points


def _assert_cache_matches_ledger(customer):
    assert _points(customer) == loyalty.balance(customer)


@pytest.fixture
def shop(app):
    store = make_store(
        "bkk-shop", timezone="Asia/Bangkok", region="TH", currency="THB", locale="th"
    )
    return store


def test_signup_bonus_is_given_once(shop):
    customer = make_customer(shop)
    assert loyalty.credit_signup(customer, NOW) == 50
    assert loyalty.credit_signup(customer, NOW + timedelta(minutes=1)) == 0
    assert _points(customer) == 50
    assert PointsEntry.select().where(PointsEntry.kind == "signup").count() == 1


def test_signup_bonus_follows_the_store_setting(shop):
    shop.settings = {"loyalty.signup_bonus": 80}
    shop.save()
    customer = make_customer(shop)
    assert loyalty.credit_signup(customer, NOW) == 80


def test_one_point_per_currency_unit_rounded_down(shop):
    customer = make_customer(shop)
    assert loyalty.credit_for_event(_order(customer, "A1", "59.90"), NOW) == 59
    assert _points(customer) == 59
    _assert_cache_matches_ledger(customer)


def test_the_same_order_posted_twice_is_credited_once(shop):
    customer = make_customer(shop)
    order = _order(customer, "ORDER-1001", 120)
    assert loyalty.credit_for_event(order, NOW) == 120
    assert loyalty.credit_for_event(Event.get_by_id(order.id), NOW + timedelta(hours=1)) == 0
    assert _points(customer) == 120
    assert PointsEntry.select().where(PointsEntry.dedupe_key == f"earn:{order.id}").count() == 1


def test_concurrent_credits_of_one_order_land_once(shop):
    customer = make_customer(shop)
    order = _order(customer, "ORDER-2", 75)
    barrier = threading.Barrier(2)
    results = []

    def credit():
        with db.connection_context():
            barrier.wait()
            results.append(loyalty.credit_for_event(Event.get_by_id(order.id), NOW))

    threads = [threading.Thread(target=credit) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 75]
    assert _points(customer) == 75


def test_refund_reverses_exactly_that_orders_points(shop):
    customer = make_customer(shop)
    loyalty.credit_signup(customer, NOW)
    first = _order(customer, "ORDER-1", 100)
    second = _order(customer, "ORDER-2", 37)
    loyalty.credit_for_event(first, NOW)
    loyalty.credit_for_event(second, NOW)
    refund = _order(customer, "refund:ORDER-2", "-37", type_="refund")
    assert loyalty.credit_for_event(refund, NOW + timedelta(days=1)) == -37
    assert loyalty.credit_for_event(refund, NOW + timedelta(days=2)) == 0
    assert _points(customer) == 50 + 100
    _assert_cache_matches_ledger(customer)


def test_refund_of_a_member_day_order_takes_back_the_doubled_points(shop):
    shop.member_day = 18
    shop.save()
    customer = make_customer(shop)
    order = _order(customer, "MD-1", 100, at=utc(2026, 11, 18, 5, 0))
    assert loyalty.credit_for_event(order, NOW) == 200
    partial = _order(customer, "refund:MD-1", "-25", type_="refund")
    assert loyalty.credit_for_event(partial, NOW) == -50  # a quarter of the doubled points
    refund = _order(customer, "MD-1:refund", "-75", type_="refund")
    assert loyalty.credit_for_event(refund, NOW) == -150
    assert _points(customer) == 0


def test_partial_refunds_take_back_their_share_and_together_exactly_the_orders_points(shop):
    customer = make_customer(shop)
    loyalty.credit_signup(customer, NOW)
    order = _order(customer, "ORDER-7", "59.90")
    assert loyalty.credit_for_event(order, NOW) == 59
    first = _order(customer, "refund:ORDER-7", "-20", type_="refund")
    second = _order(customer, "refund:ORDER-7:2", "-20", type_="refund")
    last = _order(customer, "ORDER-7:refund", "-19.90", type_="refund")
    assert loyalty.credit_for_event(first, NOW) == -19  # 59 × 20 / 59.90, rounded down
    assert loyalty.credit_for_event(second, NOW) == -20  # 39 of 59 for 40 of 59.90
    assert loyalty.credit_for_event(Event.get_by_id(second.id), NOW) == 0
    assert loyalty.credit_for_event(last, NOW) == -20  # the whole order: all 59 back
    assert _points(customer) == 50
    _assert_cache_matches_ledger(customer)


def test_cancelled_order_takes_back_all_its_points_after_a_partial_refund(shop):
    customer = make_customer(shop)
    order = _order(customer, "ORDER-8", 100)
    loyalty.credit_for_event(order, NOW)
    loyalty.credit_for_event(_order(customer, "refund:ORDER-8", "-30", type_="refund"), NOW)
    cancel = _order(customer, "ORDER-8:refund", None, type_="refund")
    assert loyalty.credit_for_event(cancel, NOW) == -70
    assert _points(customer) == 0
    late = _order(customer, "refund:ORDER-8:3", "-10", type_="refund")
    assert loyalty.credit_for_event(late, NOW) == 0
    assert _points(customer) == 0


def test_the_database_itself_refuses_a_second_credit_of_one_order(shop):
    """Uniqueness is the database's: one event per external id, one earn row per event."""
    customer = make_customer(shop)
    order = _order(customer, "ORDER-DB", 40)
    loyalty.credit_for_event(order, NOW)
    with pytest.raises(pw.IntegrityError), db.atomic():
        _order(customer, "ORDER-DB", 40)
    with pytest.raises(pw.IntegrityError), db.atomic():
        PointsEntry.create(
            store=shop, customer=customer, delta=40, kind="earn", dedupe_key=f"earn:{order.id}"
        )
    assert _points(customer) == 40


def test_a_refunded_order_is_never_credited_later(shop):
    customer = make_customer(shop)
    order = _order(customer, "LATE-1", 90)
    loyalty.reverse_event(order, NOW)
    assert loyalty.credit_for_event(order, NOW) == 0
    assert _points(customer) == 0


def test_refund_without_reference_takes_back_points_for_its_amount(shop):
    customer = make_customer(shop)
    loyalty.credit_for_event(_order(customer, "X-1", 300), NOW)
    refund = _order(customer, "R-77", "-120", type_="refund")
    assert loyalty.credit_for_event(refund, NOW) == -120
    assert _points(customer) == 180


def test_member_day_doubles_points_in_the_store_timezone(shop):
    shop.member_day = 18
    shop.save()
    customer = make_customer(shop)
    # 18 Nov 00:30 in Bangkok is still 17 Nov in UTC.
    early = _order(customer, "E-1", 100, at=utc(2026, 11, 17, 17, 30))
    assert loyalty.credit_for_event(early, NOW) == 200
    # 18 Nov 23:30 UTC is already 19 Nov in Bangkok.
    late = _order(customer, "E-2", 100, at=utc(2026, 11, 18, 17, 30))
    assert loyalty.credit_for_event(late, NOW) == 100


def test_campaign_multiplier_applies_within_its_dates(shop):
    shop.settings = {
        "loyalty.campaigns": [
            {
                "name": "Songkran",
                "starts_on": "2026-04-13",
                "ends_on": "2026-04-15",
                "multiplier": 3,
            }
        ]
    }
    shop.save()
    customer = make_customer(shop)
    assert loyalty.credit_for_event(_order(customer, "S1", 10, at=utc(2026, 4, 14, 5)), NOW) == 30
    assert loyalty.credit_for_event(_order(customer, "S2", 10, at=utc(2026, 4, 16, 5)), NOW) == 10


def test_events_that_are_not_spending_earn_nothing(shop):
    customer = make_customer(shop)
    visit = _order(customer, "V-1", None, type_="visit")
    booking = _order(customer, "B-1", 500, type_="appointment_booked")
    assert loyalty.credit_for_event(visit, NOW) == 0
    assert loyalty.credit_for_event(booking, NOW) == 0
    assert _points(customer) == 0


def test_manager_adjustment_needs_a_reason_and_cannot_go_below_zero(shop):
    manager = make_staff("manager", [shop])
    customer = make_customer(shop)
    with pytest.raises(loyalty.LoyaltyError):
        loyalty.adjust(customer, 10, "  ", manager, NOW)
    loyalty.adjust(customer, 30, "Goodwill after a late appointment", manager, NOW)
    with pytest.raises(loyalty.LoyaltyError):
        loyalty.adjust(customer, -31, "Correction", manager, NOW)
    loyalty.adjust(customer, -10, "Correction", manager, NOW)
    assert _points(customer) == 20
    entry = PointsEntry.get(PointsEntry.delta == -10)
    assert entry.staff_id == manager.id and entry.reason == "Correction"


def test_points_expire_oldest_first_after_the_store_period(shop):
    customer = make_customer(shop)
    # Lot A: 100 points in Jan 2025; lot B: 100 points in Jun 2025 (12-month expiry).
    loyalty.credit_for_event(_order(customer, "A", 100, at=utc(2025, 1, 10)), utc(2025, 1, 10))
    loyalty.credit_for_event(_order(customer, "B", 100, at=utc(2025, 6, 10)), utc(2025, 6, 10))
    reward = Reward.create(store=shop, name="Free coffee", points_price=150)
    # Spending 150 takes all of A and half of B.
    loyalty.redeem(customer, reward, utc(2025, 7, 1))
    assert loyalty.expire_points(utc(2026, 1, 11)) == 0
    assert _points(customer) == 50
    loyalty.expire_points(utc(2026, 6, 11))
    assert _points(customer) == 0
    assert loyalty.expire_points(utc(2026, 6, 12)) == 0
    _assert_cache_matches_ledger(customer)


def test_expiry_is_idempotent_and_keeps_fresh_points(shop):
    customer = make_customer(shop)
    loyalty.credit_for_event(_order(customer, "OLD", 80, at=utc(2025, 1, 5)), utc(2025, 1, 5))
    loyalty.credit_for_event(_order(customer, "NEW", 40, at=utc(2026, 10, 1)), utc(2026, 10, 1))
    assert loyalty.expire_points(NOW) == 1
    assert loyalty.expire_points(NOW) == 0
    assert loyalty.expire_points(NOW + timedelta(days=1)) == 0
    assert _points(customer) == 40
    _assert_cache_matches_ledger(customer)


def test_a_reversed_lot_does_not_shield_older_points_from_expiry(shop):
    customer = make_customer(shop)
    loyalty.credit_for_event(_order(customer, "OLD", 100, at=utc(2025, 1, 5)), utc(2025, 1, 5))
    newer = _order(customer, "NEW", 100, at=utc(2025, 12, 1))
    loyalty.credit_for_event(newer, utc(2025, 12, 1))
    loyalty.reverse_event(newer, utc(2025, 12, 2))
    loyalty.expire_points(utc(2026, 1, 6))
    assert _points(customer) == 0
    _assert_cache_matches_ledger(customer)


def test_expiring_points_report_looks_ahead(shop):
    customer = make_customer(shop)
    loyalty.credit_for_event(_order(customer, "A", 70, at=utc(2025, 12, 10)), utc(2025, 12, 10))
    loyalty.credit_for_event(_order(customer, "B", 30, at=utc(2026, 2, 1)), utc(2026, 2, 1))
    assert loyalty.expiring_points(shop, NOW) == {30: 70, 60: 70, 90: 100}


def _rich_customer(shop, points=300):
    customer = make_customer(shop)
    loyalty.adjust(customer, points, "Opening balance", None, NOW)
    return Customer.get_by_id(customer.id)


def test_redeeming_issues_a_coupon_and_deducts_the_points(shop):
    customer = _rich_customer(shop)
    reward = Reward.create(store=shop, name="Free hair mask", points_price=200)
    coupon = loyalty.redeem(customer, reward, NOW)
    assert len(coupon.code) == 10 and set(coupon.code) <= set(loyalty.CODE_ALPHABET)
    assert coupon.expires_at == NOW + timedelta(days=30)
    assert coupon.points == 200 and coupon.status == "active"
    assert _points(customer) == 100
    _assert_cache_matches_ledger(customer)


def test_redeeming_without_enough_points_changes_nothing(shop):
    customer = _rich_customer(shop, 150)
    reward = Reward.create(store=shop, name="Free hair mask", points_price=200)
    with pytest.raises(loyalty.LoyaltyError):
        loyalty.redeem(customer, reward, NOW)
    assert _points(customer) == 150
    assert Coupon.select().count() == 0
    assert PointsEntry.select().where(PointsEntry.kind == "redeem").count() == 0


def test_the_same_redeem_request_twice_gives_one_coupon(shop):
    customer = _rich_customer(shop, 500)
    reward = Reward.create(store=shop, name="Free hair mask", points_price=200)
    first = loyalty.redeem(customer, reward, NOW, request_key="nonce-1")
    again = loyalty.redeem(customer, reward, NOW, request_key="nonce-1")
    assert first.id == again.id
    assert _points(customer) == 300


def test_concurrent_redemptions_only_one_succeeds(shop):
    customer = _rich_customer(shop, 300)
    reward = Reward.create(store=shop, name="Free hair mask", points_price=200)
    barrier = threading.Barrier(2)
    outcomes = []

    def attempt(key):
        with db.connection_context():
            barrier.wait()
            try:
                loyalty.redeem(Customer.get_by_id(customer.id), reward, NOW, request_key=key)
                outcomes.append("ok")
            except loyalty.LoyaltyError:
                outcomes.append("refused")

    threads = [threading.Thread(target=attempt, args=(k,)) for k in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok", "refused"]
    assert _points(customer) == 100
    assert Coupon.select().count() == 1
    _assert_cache_matches_ledger(customer)


def test_stock_runs_out(shop):
    customer = _rich_customer(shop, 1000)
    reward = Reward.create(store=shop, name="Tote bag", points_price=100, stock=1)
    loyalty.redeem(customer, reward, NOW)
    with pytest.raises(loyalty.LoyaltyError):
        loyalty.redeem(customer, Reward.get_by_id(reward.id), NOW)
    assert _points(customer) == 900


def test_coupon_is_used_once_at_the_counter(shop):
    staff = make_staff("employee", [shop])
    customer = _rich_customer(shop)
    reward = Reward.create(store=shop, name="Free coffee", points_price=200)
    coupon = loyalty.redeem(customer, reward, NOW)
    used = loyalty.use_coupon(coupon, staff, NOW + timedelta(days=2))
    assert used.status == "used" and used.used_by_id == staff.id
    with pytest.raises(loyalty.LoyaltyError, match="already used"):
        loyalty.use_coupon(coupon, staff, NOW + timedelta(days=3))
    assert loyalty.find_coupon(shop, coupon.code.lower()).id == coupon.id


def test_coupon_expires_after_30_days_and_keeps_the_points_by_default(shop):
    customer = _rich_customer(shop)
    reward = Reward.create(store=shop, name="Free coffee", points_price=200, stock=5)
    coupon = loyalty.redeem(customer, reward, NOW)
    assert loyalty.expire_coupons(NOW + timedelta(days=29)) == 0
    with pytest.raises(loyalty.LoyaltyError, match="expired"):
        loyalty.use_coupon(coupon, None, NOW + timedelta(days=31))
    assert loyalty.expire_coupons(NOW + timedelta(days=30)) == 1
    assert Coupon.get_by_id(coupon.id).status == "expired"
    assert _points(customer) == 100
    assert Reward.get_by_id(reward.id).stock == 5


def test_expired_coupon_gives_points_back_when_the_store_chooses(shop):
    shop.settings = {"loyalty.refund_expired_coupons": True}
    shop.save()
    customer = _rich_customer(shop)
    reward = Reward.create(store=shop, name="Free coffee", points_price=200)
    coupon = loyalty.redeem(customer, reward, NOW)
    assert loyalty.expire_coupons(NOW + timedelta(days=31)) == 1
    assert loyalty.expire_coupons(NOW + timedelta(days=32)) == 0
    assert _points(customer) == 300
    assert Coupon.get_by_id(coupon.id).refunded is True
    refund = PointsEntry.get(PointsEntry.kind == "refund")
    assert refund.dedupe_key == f"coupon-refund:{coupon.id}" and refund.delta == 200
    _assert_cache_matches_ledger(customer)


def test_a_used_coupon_is_not_refunded(shop):
    shop.settings = {"loyalty.refund_expired_coupons": True}
    shop.save()
    customer = _rich_customer(shop)
    reward = Reward.create(store=shop, name="Free coffee", points_price=200)
    coupon = loyalty.redeem(customer, reward, NOW)
    loyalty.use_coupon(coupon, None, NOW + timedelta(days=1))
    assert loyalty.expire_coupons(NOW + timedelta(days=40)) == 0
    assert _points(customer) == 100


def test_nightly_upkeep_job_expires_coupons_and_old_points(shop, monkeypatch):
    from app.tasks import jobs

    customer = make_customer(shop)
    loyalty.credit_for_event(_order(customer, "OLD", 250, at=utc(2025, 10, 1)), utc(2025, 10, 1))
    loyalty.adjust(customer, 100, "Goodwill", None, NOW)
    coupon = loyalty.redeem(customer, Reward.create(store=shop, name="Tote", points_price=200), NOW)
    monkeypatch.setenv("REVISIT_NOW", (NOW + timedelta(days=31)).isoformat())
    result = jobs.run_loyalty_upkeep.call_local()
    assert result["coupons_expired"] == 1 and result["points_expired"] == 1
    assert Coupon.get_by_id(coupon.id).status == "expired"
    assert _points(customer) == 100  # the 50 left of October 2025's lot expired
    assert jobs.run_loyalty_upkeep.call_local()["points_expired"] == 0


def test_reminder_context_has_the_seeds_four_items(app, shop):
    """ManyChat seed: balance, rewards eligible, points to the next reward, free items so far."""
    customer = _rich_customer(shop, 650)
    coffee = Reward.create(store=shop, name="Free coffee", points_price=200)
    Reward.create(store=shop, name="Free hair mask", points_price=400)
    Reward.create(store=shop, name="Free haircut", points_price=800)
    Reward.create(store=shop, name="Retired reward", points_price=100, active=False)
    loyalty.redeem(customer, coffee, NOW - timedelta(days=60))
    loyalty.redeem(customer, coffee, NOW - timedelta(days=20))
    with app.app_context():
        context = loyalty.reminder_context(customer, clock.now())
    assert context["points"] == 250
    assert context["rewards_within_reach"] == ["Free coffee"]
    assert context["next_reward"] == "Free hair mask"
    assert context["points_to_next_reward"] == 150
    assert context["redeemed"] == [{"reward": "Free coffee", "count": 2}]
    assert context["redeemed_text"] == "Free coffee ×2"
    assert context["portal_url"] == f"http://localhost{context['portal_path']}"
    page = app.test_client().get(context["portal_path"])
    assert page.status_code == 200 and 'data-points="250"' in page.get_data(as_text=True)


def test_tiers_follow_points_or_spend_in_twelve_months(shop):
    shop.settings = {
        "loyalty.tiers": [
            {"name": "Silver", "min_points": 200},
            {"name": "Gold", "min_points": 1000, "min_spend": 800},
        ]
    }
    shop.save()
    plain = make_customer(shop)
    silver = make_customer(shop)
    gold = make_customer(shop)
    stale = make_customer(shop, level="Gold")
    loyalty.credit_for_event(_order(plain, "P", 50), NOW)
    loyalty.credit_for_event(_order(silver, "S", 300), NOW)
    loyalty.credit_for_event(_order(gold, "G", 850), NOW)
    loyalty.credit_for_event(_order(stale, "OLD", 5000, at=utc(2025, 6, 1)), utc(2025, 6, 1))
    loyalty.recompute_tiers(shop, NOW)
    levels = {c.id: Customer.get_by_id(c.id).level for c in (plain, silver, gold, stale)}
    assert levels == {plain.id: None, silver.id: "Silver", gold.id: "Gold", stale.id: None}
    # The level reached is an audience condition like any other.
    gold_members = {"all": [{"field": "level", "op": "eq", "value": "Gold"}]}
    assert audience.count(shop.id, gold_members, NOW) == 1
    assert audience.count(shop.id, {"all": [{"field": "level", "op": "is_set"}]}, NOW) == 2


def test_report_shows_issued_redeemed_liability(shop):
    shop.settings = {"loyalty.value_per_point": "0.10"}
    shop.save()
    customer = make_customer(shop)
    loyalty.credit_signup(customer, NOW)
    loyalty.credit_for_event(_order(customer, "R1", 250), NOW)
    reward = Reward.create(store=shop, name="Free coffee", points_price=200)
    loyalty.redeem(customer, reward, NOW)
    numbers = loyalty.report(shop, NOW)
    assert numbers["issued"] == 300
    assert numbers["redeemed"] == 200
    assert numbers["outstanding"] == 100
    assert numbers["liability"] == Decimal("10.00")
    assert numbers["coupons_active"] == 1


def test_bulk_signup_bonus_skips_customers_who_already_have_it(shop):
    first = make_customer(shop)
    second = make_customer(shop)
    loyalty.credit_signup(first, NOW)
    assert loyalty.credit_signups(shop, [first.id, second.id], NOW) == 1
    assert loyalty.credit_signups(shop, [first.id, second.id], NOW) == 0
    assert _points(first) == 50 and _points(second) == 50
    _assert_cache_matches_ledger(second)
