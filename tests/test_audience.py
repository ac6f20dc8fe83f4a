"""The audience compiler: every field and operator, compiled to SQL, on SQLite and PostgreSQL."""

from datetime import date, timedelta
from decimal import Decimal

import peewee as pw
import pytest

from app.models import (
    CardProduct,
    Consent,
    Customer,
    CustomerAttribute,
    CustomerTag,
    Event,
    EventItem,
    Segment,
    Tag,
    Visit,
)
from app.services import audience
from app.services.audience import AudienceError
from tests.factories import make_card, make_customer, make_staff, make_store, utc

_EVENT_SEQ = [0]
NOW = utc(2026, 11, 24, 6, 0)  # 14:00 in Kuala Lumpur, Tuesday 24 November 2026


def names(store, aud, now=NOW) -> set[str]:
    """Names of the store's customers in the audience."""
    ids = audience.customer_query(store.id, aud, now)
    return {c.name for c in Customer.select(Customer.name).where(Customer.id.in_(ids))}


def one(field, op, value=None, **extra) -> dict:
    cond = {"field": field, "op": op, **extra}
    if value is not None:
        cond["value"] = value
    return {"all": [cond]}


def tag(customer, name):
    t, _ = Tag.get_or_create(store=customer.store_id, name=name)
    CustomerTag.create(customer=customer, tag=t)


def event(customer, kind, at, amount=None, skus=(), n=_EVENT_SEQ):
    n[0] += 1
    ev = Event.create(
        store=customer.store_id,
        customer=customer,
        external_id=f"ev{n[0]}",
        type=kind,
        occurred_at=at,
        amount=Decimal(str(amount)) if amount is not None else None,
    )
    for sku in skus:
        EventItem.create(event=ev, customer=customer, sku=sku, name=sku, price=Decimal("10"))
    return ev


def product(store, sku, kind="stored_value"):
    return CardProduct.create(store=store, sku=sku, name=sku, kind=kind)


@pytest.fixture
def store(app):
    return make_store("kl", timezone="Asia/Kuala_Lumpur")


# ---------------------------------------------------------------- seed 002 and combinations


def test_seed_002_cosmetics_buyers_except_lipstick_matches_hand_count(store):
    recent, old = NOW - timedelta(days=5), NOW - timedelta(days=45)
    expected = set()
    for i in range(12):
        c = make_customer(store, name=f"c{i}")
        cosmetics = i % 2 == 0
        bought_recently = i % 3 != 0
        lipstick = i % 4 == 0
        if cosmetics:
            tag(c, "cosmetics")
        else:
            tag(c, "haircare")
        event(c, "purchase", recent if bought_recently else old, 80, ["SERUM"])
        if lipstick:
            event(c, "purchase", old, 40, ["LIPSTICK"])
        if cosmetics and bought_recently and not lipstick:
            expected.add(c.name)
    seed_002 = {
        "all": [
            {"field": "tags", "op": "has_any", "value": ["cosmetics"]},
            {"field": "products_bought", "op": "has_any", "value": ["SERUM"], "days": 30},
        ],
        "except": [{"field": "products_bought", "op": "has_any", "value": ["LIPSTICK"]}],
    }
    assert expected == {"c2", "c10"}
    assert names(store, seed_002) == expected
    assert audience.count(store.id, seed_002, NOW) == 2


def test_empty_audience_is_everyone_in_the_store_only(store):
    make_customer(store, name="Aisyah")
    make_customer(make_store("bkk"), name="Somchai")
    assert names(store, None) == {"Aisyah"}
    assert names(store, {}) == {"Aisyah"}
    assert names(store, {"all": []}) == {"Aisyah"}


def test_nested_any_all_except(store):
    make_customer(store, name="young_vip", level="vip", birthday=date(2000, 1, 10))
    make_customer(store, name="old_vip", level="vip", birthday=date(1960, 1, 10))
    make_customer(store, name="young_gold", level="gold", birthday=date(2001, 1, 10), gender="male")
    make_customer(
        store, name="young_gold_f", level="gold", birthday=date(2001, 1, 10), gender="female"
    )
    make_customer(store, name="silver", level="silver", birthday=date(2001, 1, 10))
    aud = {
        "any": [
            {"all": [{"field": "level", "op": "eq", "value": "vip"}]},
            {
                "all": [
                    {"field": "level", "op": "eq", "value": "gold"},
                    {"field": "age", "op": "lt", "value": 40},
                ],
                "except": [{"field": "gender", "op": "eq", "value": "male"}],
            },
        ],
        "except": [{"any": [{"field": "age", "op": "gte", "value": 60}]}],
    }
    assert names(store, aud) == {"young_vip", "young_gold_f"}


def test_except_alone_removes_matching_customers(store):
    make_customer(store, name="a", level="vip")
    make_customer(store, name="b", level="gold")
    make_customer(store, name="c")
    assert names(store, {"except": [{"field": "level", "op": "eq", "value": "vip"}]}) == {"b", "c"}


def test_customer_query_works_as_a_subquery_and_in_insert_select(store):
    make_customer(store, name="a", gender="female")
    make_customer(store, name="b", gender="male")
    q = audience.customer_query(store.id, one("gender", "eq", "female"), NOW)
    assert [c.name for c in Customer.select().where(Customer.id.in_(q))] == ["a"]
    target = Tag.create(store=store, name="picked")
    inserted = (
        CustomerTag.insert_from(
            audience.customer_query(store.id, one("gender", "eq", "female"), NOW).select(
                Customer.id, target.id, pw.Value("rule"), pw.Value(NOW.replace(tzinfo=None))
            ),
            [CustomerTag.customer, CustomerTag.tag, CustomerTag.source, CustomerTag.added_at],
        )
        .as_rowcount()
        .execute()
    )
    assert inserted == 1
    assert names(store, one("tags", "has_any", ["picked"])) == {"a"}


# ---------------------------------------------------------------- cards


def test_card_conditions_in_one_all_group_must_hold_on_the_same_card(store):
    c = make_customer(store, name="two_cards")
    make_card(c, "stored_value", balance=Decimal("100"), expires_on=date(2027, 2, 22))
    make_card(c, "stored_value", balance=Decimal("900"), expires_on=date(2026, 12, 4))
    d = make_customer(store, name="one_card")
    make_card(d, "stored_value", balance=Decimal("300"), expires_on=date(2026, 12, 10))
    aud = {
        "all": [
            {"field": "cards.balance", "op": "lte", "value": 500},
            {"field": "cards.expires_on", "op": "in_next_days", "value": 30},
        ]
    }
    assert names(store, aud) == {"one_card"}
    any_card = {"any": aud["all"]}
    assert names(store, any_card) == {"one_card", "two_cards"}
    separate = {"all": [{"all": [aud["all"][0]]}, {"all": [aud["all"][1]]}]}
    assert names(store, separate) == {"one_card", "two_cards"}


def test_card_conditions_consider_active_cards_unless_status_is_given(store):
    c = make_customer(store, name="expired_holder")
    make_card(c, "count", remaining_uses=3, status="expired")
    d = make_customer(store, name="active_holder")
    make_card(d, "count", remaining_uses=3)
    low = {"field": "cards.remaining_uses", "op": "lte", "value": 3}
    assert names(store, {"all": [low]}) == {"active_holder"}
    expired = {"field": "cards.status", "op": "eq", "value": "expired"}
    assert names(store, {"all": [low, expired]}) == {"expired_holder"}
    assert names(
        store, {"all": [low, {"field": "cards.status", "op": "in", "value": ["active", "expired"]}]}
    ) == {
        "active_holder",
        "expired_holder",
    }
    assert names(
        store, {"all": [low, {"field": "cards.status", "op": "ne", "value": "active"}]}
    ) == {"expired_holder"}


def test_card_product_kind_and_uses_operators(store):
    facial = product(store, "FACIAL10", "count")
    gold = product(store, "GOLD", "stored_value")
    a = make_customer(store, name="facial_low")
    make_card(a, product=facial, remaining_uses=1)
    b = make_customer(store, name="facial_many")
    make_card(b, product=facial, remaining_uses=8)
    c = make_customer(store, name="gold")
    make_card(c, "stored_value", product=gold, balance=Decimal("50.50"))
    make_customer(store, name="no_card")
    assert names(store, one("cards.product", "eq", "FACIAL10")) == {"facial_low", "facial_many"}
    assert names(store, one("cards.product", "in", ["GOLD", "NOPE"])) == {"gold"}
    assert names(store, one("cards.product", "not_in", ["GOLD"])) == {"facial_low", "facial_many"}
    assert names(store, one("cards.product", "ne", "FACIAL10")) == {"gold"}
    assert names(store, one("cards.kind", "eq", "count")) == {"facial_low", "facial_many"}
    assert names(store, one("cards.kind", "in", ["stored_value"])) == {"gold"}
    assert names(store, one("cards.kind", "not_in", ["stored_value"])) == {
        "facial_low",
        "facial_many",
    }
    assert names(store, one("cards.remaining_uses", "between", [1, 2])) == {"facial_low"}
    assert names(store, one("cards.remaining_uses", "gt", 1)) == {"facial_many"}
    assert names(store, one("cards.remaining_uses", "gte", 8)) == {"facial_many"}
    assert names(store, one("cards.remaining_uses", "lt", 8)) == {"facial_low"}
    assert names(store, one("cards.remaining_uses", "eq", 8)) == {"facial_many"}
    assert names(store, one("cards.remaining_uses", "ne", 8)) == {"facial_low", "gold"}
    assert names(store, one("cards.remaining_uses", "is_not_set")) == {"gold"}
    assert names(store, one("cards.balance", "is_set")) == {"gold"}
    assert names(store, one("cards.balance", "eq", "50.50")) == {"gold"}
    assert names(store, one("cards.balance", "gt", 50.49)) == {"gold"}
    assert names(store, one("cards.balance", "lt", 50.5)) == set()
    both = {
        "all": [
            {"field": "cards.product", "op": "eq", "value": "FACIAL10"},
            {"field": "cards.remaining_uses", "op": "lte", "value": 2},
        ]
    }
    assert names(store, both) == {"facial_low"}


def test_card_product_has_all_and_has_none_look_at_all_active_cards(store):
    facial, gold = product(store, "FACIAL10", "count"), product(store, "GOLD")
    a = make_customer(store, name="both")
    make_card(a, product=facial)
    make_card(a, "stored_value", product=gold)
    b = make_customer(store, name="facial_only")
    make_card(b, product=facial)
    c = make_customer(store, name="cancelled_gold")
    make_card(c, "stored_value", product=gold, status="cancelled")
    assert names(store, one("cards.product", "has_all", ["FACIAL10", "GOLD"])) == {"both"}
    assert names(store, one("cards.product", "has_any", ["GOLD"])) == {"both"}
    assert names(store, one("cards.product", "has_none", ["GOLD"])) == {
        "facial_only",
        "cancelled_gold",
    }


def test_card_expiry_date_operators(store):
    for name, expires in [
        ("past", date(2026, 11, 1)),
        ("today", date(2026, 11, 24)),
        ("soon", date(2026, 11, 30)),
        ("december", date(2026, 12, 20)),
        ("never", None),
    ]:
        make_card(make_customer(store, name=name), "period", expires_on=expires)
    assert names(store, one("cards.expires_on", "in_next_days", 0)) == {"today"}
    assert names(store, one("cards.expires_on", "in_next_days", 6)) == {"today", "soon"}
    assert names(store, one("cards.expires_on", "in_last_days", 30)) == {"past", "today"}
    assert names(store, one("cards.expires_on", "not_in_last_days", 10)) == {"past", "never"}
    assert names(store, one("cards.expires_on", "this_month")) == {"past", "today", "soon"}
    assert names(store, one("cards.expires_on", "between", ["2026-11-24", "2026-11-30"])) == {
        "today",
        "soon",
    }
    assert names(store, one("cards.expires_on", "lt", "2026-11-24")) == {"past"}
    assert names(store, one("cards.expires_on", "lte", "2026-11-24")) == {"past", "today"}
    assert names(store, one("cards.expires_on", "gt", "2026-11-30")) == {"december"}
    assert names(store, one("cards.expires_on", "gte", "2026-11-30")) == {"soon", "december"}
    assert names(store, one("cards.expires_on", "eq", "2026-11-30")) == {"soon"}
    assert names(store, one("cards.expires_on", "is_not_set")) == {"never"}
    assert names(store, one("cards.expires_on", "is_set")) == {"past", "today", "soon", "december"}


# ---------------------------------------------------------------- birthday and age


def test_birthday_in_next_days_wraps_across_year_end(store):
    for name, born in [
        ("dec28", date(1990, 12, 28)),
        ("dec31", date(1985, 12, 31)),
        ("jan3", date(1999, 1, 3)),
        ("jan4", date(1999, 1, 4)),
        ("dec27", date(1990, 12, 27)),
    ]:
        make_customer(store, name=name, birthday=born)
    now = utc(2026, 12, 28, 2, 0)  # 10:00 on 28 December in Kuala Lumpur
    assert names(store, one("birthday", "in_next_days", 6), now) == {"dec28", "dec31", "jan3"}
    assert names(store, one("birthday", "eq", "today"), now) == {"dec28"}
    assert names(store, one("birthday", "this_month"), now) == {"dec28", "dec31", "dec27"}
    assert names(store, one("birthday", "eq", "01-04"), now) == {"jan4"}


def test_birthday_on_29_february_counts_on_28_february_in_a_non_leap_year(store):
    make_customer(store, name="leapling", birthday=date(2000, 2, 29))
    make_customer(store, name="feb28", birthday=date(1990, 2, 28))
    make_customer(store, name="mar1", birthday=date(1990, 3, 1))
    feb28_2027 = utc(2027, 2, 28, 2, 0)
    assert names(store, one("birthday", "eq", "today"), feb28_2027) == {"leapling", "feb28"}
    assert names(store, one("birthday", "in_next_days", 1), utc(2027, 2, 27, 2, 0)) == {
        "leapling",
        "feb28",
    }
    mar1_2027 = utc(2027, 3, 1, 2, 0)
    assert names(store, one("birthday", "eq", "today"), mar1_2027) == {"mar1"}
    assert names(store, one("birthday", "in_next_days", 3), mar1_2027) == {"mar1"}
    # In a leap year the leapling has their own day.
    assert names(store, one("birthday", "eq", "today"), utc(2028, 2, 28, 2, 0)) == {"feb28"}
    assert names(store, one("birthday", "eq", "today"), utc(2028, 2, 29, 2, 0)) == {"leapling"}
    assert names(store, one("birthday", "this_month"), feb28_2027) == {"leapling", "feb28"}


def test_birthday_set_and_unset(store):
    make_customer(store, name="known", birthday=date(1990, 5, 5))
    make_customer(store, name="unknown")
    assert names(store, one("birthday", "is_set")) == {"known"}
    assert names(store, one("birthday", "is_not_set")) == {"unknown"}


def test_age_in_whole_years_turns_on_the_birthday(store):
    make_customer(store, name="turns30_today", birthday=date(1996, 11, 24))
    make_customer(store, name="turns30_tomorrow", birthday=date(1996, 11, 25))
    make_customer(store, name="age45", birthday=date(1981, 1, 1))
    make_customer(store, name="no_birthday")
    assert names(store, one("age", "gte", 30)) == {"turns30_today", "age45"}
    assert names(store, one("age", "eq", 29)) == {"turns30_tomorrow"}
    assert names(store, one("age", "lt", 30)) == {"turns30_tomorrow"}
    assert names(store, one("age", "lte", 30)) == {"turns30_today", "turns30_tomorrow"}
    assert names(store, one("age", "gt", 30)) == {"age45"}
    assert names(store, one("age", "between", [30, 45])) == {"turns30_today", "age45"}
    assert names(store, one("age", "ne", 45)) == {
        "turns30_today",
        "turns30_tomorrow",
        "no_birthday",
    }
    assert names(store, one("age", "is_not_set")) == {"no_birthday"}
    assert names(store, one("age", "is_set")) == {"turns30_today", "turns30_tomorrow", "age45"}


def test_age_of_a_leapling_in_a_non_leap_year(store):
    make_customer(store, name="leapling", birthday=date(2000, 2, 29))
    assert names(store, one("age", "gte", 27), utc(2027, 2, 27, 2, 0)) == set()
    assert names(store, one("age", "gte", 27), utc(2027, 2, 28, 2, 0)) == {"leapling"}
    assert names(store, one("age", "eq", 28), utc(2028, 2, 29, 2, 0)) == {"leapling"}
    assert names(store, one("age", "eq", 27), utc(2028, 2, 28, 2, 0)) == {"leapling"}


# ---------------------------------------------------------------- timezone and recency


def test_today_is_the_store_local_day_in_new_york(app):
    ny = make_store("nyc", timezone="America/New_York", region="US", currency="USD")
    now = utc(2026, 11, 24, 3, 0)  # 22:00 on Monday 23 November in New York
    make_customer(ny, name="born_23", birthday=date(1990, 11, 23))
    make_customer(ny, name="born_24", birthday=date(1990, 11, 24))
    make_customer(ny, name="came_this_morning", last_visit_at=utc(2026, 11, 23, 15, 0))
    make_customer(ny, name="came_last_night", last_visit_at=utc(2026, 11, 23, 4, 0))
    assert names(ny, one("birthday", "eq", "today"), now) == {"born_23"}
    assert names(ny, one("last_visit_at", "in_last_days", 0), now) == {"came_this_morning"}
    assert names(ny, one("last_visit_at", "eq", "2026-11-22"), now) == {"came_last_night"}
    assert names(ny, one("last_visit_at", "in_last_days", 1), now) == {
        "came_this_morning",
        "came_last_night",
    }


def test_not_in_last_days_includes_customers_who_never_visited(store):
    make_customer(store, name="never")
    make_customer(store, name="long_ago", last_visit_at=NOW - timedelta(days=90))
    make_customer(store, name="recent", last_visit_at=NOW - timedelta(days=10))
    assert names(store, one("last_visit_at", "not_in_last_days", 60)) == {"never", "long_ago"}
    assert names(store, one("last_visit_at", "in_last_days", 60)) == {"recent"}
    assert names(store, one("last_visit_at", "is_not_set")) == {"never"}


def test_in_last_days_starts_at_local_midnight_n_days_ago(store):
    boundary = utc(2026, 11, 13, 16, 0)  # 00:00 on 14 November in Kuala Lumpur = today − 10
    make_customer(store, name="at_boundary", last_visit_at=boundary)
    make_customer(store, name="just_before", last_visit_at=boundary - timedelta(seconds=1))
    make_customer(store, name="future", last_visit_at=NOW + timedelta(hours=1))
    assert names(store, one("last_visit_at", "in_last_days", 10)) == {"at_boundary"}
    assert names(store, one("last_visit_at", "not_in_last_days", 10)) == {"just_before"}


def test_joined_at_date_operators(store):
    make_customer(store, name="oct", joined_at=utc(2026, 10, 15, 3, 0))
    make_customer(store, name="nov1_local", joined_at=utc(2026, 10, 31, 17, 0))
    make_customer(store, name="nov20", joined_at=utc(2026, 11, 20, 3, 0))
    assert names(store, one("joined_at", "this_month")) == {"nov1_local", "nov20"}
    assert names(store, one("joined_at", "eq", "2026-11-01")) == {"nov1_local"}
    assert names(store, one("joined_at", "lt", "2026-11-01")) == {"oct"}
    assert names(store, one("joined_at", "lte", "2026-11-01")) == {"oct", "nov1_local"}
    assert names(store, one("joined_at", "gt", "2026-11-01")) == {"nov20"}
    assert names(store, one("joined_at", "gte", "2026-11-01")) == {"nov1_local", "nov20"}
    assert names(store, one("joined_at", "between", ["2026-10-01", "2026-11-01"])) == {
        "oct",
        "nov1_local",
    }
    assert names(store, one("joined_at", "in_last_days", 7)) == {"nov20"}
    assert names(store, one("joined_at", "in_next_days", 3)) == set()
    assert names(store, one("first_visit_at", "is_set")) == set()


# ---------------------------------------------------------------- simple customer fields


def test_text_fields_eq_ne_in_not_in_and_set(store):
    make_customer(store, name="f", gender="female", level="gold", source="instagram")
    make_customer(store, name="m", gender="male", level="silver", source="walk-in")
    make_customer(store, name="x")
    assert names(store, one("gender", "eq", "female")) == {"f"}
    assert names(store, one("gender", "ne", "female")) == {"m", "x"}
    assert names(store, one("gender", "in", ["female", "male"])) == {"f", "m"}
    assert names(store, one("gender", "not_in", ["female"])) == {"m", "x"}
    assert names(store, one("gender", "is_set")) == {"f", "m"}
    assert names(store, one("gender", "is_not_set")) == {"x"}
    assert names(store, one("level", "in", ["gold"])) == {"f"}
    assert names(store, one("level", "is_not_set")) == {"x"}
    assert names(store, one("source", "eq", "walk-in")) == {"m"}
    assert names(store, one("source", "not_in", ["walk-in"])) == {"f", "x"}
    assert names(store, one("name", "in", ["f", "x"])) == {"f", "x"}


def test_address_fields_is_set(store):
    make_customer(store, name="with_email", email="a@example.test")
    make_customer(store, name="no_phone", phone=None, line_id="line1")
    assert names(store, one("email", "is_set")) == {"with_email"}
    assert names(store, one("phone", "is_not_set")) == {"no_phone"}
    assert names(store, one("line_id", "is_set")) == {"no_phone"}


def test_tags_has_any_all_none_by_name_within_the_store(store):
    a = make_customer(store, name="a")
    b = make_customer(store, name="b")
    make_customer(store, name="untagged")
    tag(a, "VIP")
    tag(a, "cosmetics")
    tag(b, "cosmetics")
    other = make_customer(make_store("bkk"), name="other")
    tag(other, "VIP")
    assert names(store, one("tags", "has_any", ["VIP"])) == {"a"}
    assert names(store, one("tags", "has_any", ["VIP", "cosmetics"])) == {"a", "b"}
    assert names(store, one("tags", "has_all", ["VIP", "cosmetics"])) == {"a"}
    assert names(store, one("tags", "has_none", ["VIP"])) == {"b", "untagged"}
    assert names(store, one("tags", "has_all", ["VIP", "missing"])) == set()
    assert names(store, one("tags", "is_set")) == {"a", "b"}
    assert names(store, one("tags", "is_not_set")) == {"untagged"}


def test_assigned_staff_by_email(store):
    mei = make_staff("employee", [store], email="mei@example.test")
    farah = make_staff("manager", [store], email="farah@example.test")
    make_customer(store, name="meis", assigned_staff=mei)
    make_customer(store, name="farahs", assigned_staff=farah)
    make_customer(store, name="nobodys")
    assert names(store, one("assigned_staff", "eq", "mei@example.test")) == {"meis"}
    assert names(
        store, one("assigned_staff", "in", ["mei@example.test", "farah@example.test"])
    ) == {
        "meis",
        "farahs",
    }
    assert names(store, one("assigned_staff", "not_in", ["mei@example.test"])) == {
        "farahs",
        "nobodys",
    }
    assert names(store, one("assigned_staff", "ne", "mei@example.test")) == {"farahs", "nobodys"}
    assert names(store, one("assigned_staff", "is_set")) == {"meis", "farahs"}
    assert names(store, one("assigned_staff", "is_not_set")) == {"nobodys"}


def test_store_by_key(store):
    make_customer(store, name="kl_customer")
    assert names(store, one("store", "eq", "kl")) == {"kl_customer"}
    assert names(store, one("store", "in", ["bkk"])) == set()
    assert names(store, one("store", "ne", "bkk")) == {"kl_customer"}
    assert names(store, one("store", "not_in", ["kl"])) == set()


def test_points_and_cached_counts(store):
    make_customer(store, name="rich", points=500, visit_count=12, total_spend=Decimal("3200.50"))
    make_customer(store, name="poor", points=10, visit_count=1, total_spend=Decimal("20"))
    assert names(store, one("points", "gte", 100)) == {"rich"}
    assert names(store, one("points", "between", [0, 10])) == {"poor"}
    assert names(store, one("points", "ne", 10)) == {"rich"}
    assert names(store, one("visit_count", "gt", 10)) == {"rich"}
    assert names(store, one("visit_count", "eq", 1)) == {"poor"}
    assert names(store, one("total_spend", "gte", "3200.50")) == {"rich"}
    assert names(store, one("total_spend", "lt", 3200.5)) == {"poor"}
    assert names(store, one("total_spend", "lte", 20)) == {"poor"}


def test_visit_count_with_a_period_counts_local_visit_days(store):
    a = make_customer(store, name="thrice", visit_count=50)
    b = make_customer(store, name="once_recent", visit_count=50)
    c = make_customer(store, name="once_old", visit_count=50)
    make_customer(store, name="never")
    for days_ago in (1, 5, 20):
        Visit.create(
            customer=a, store=store, day=date(2026, 11, 24) - timedelta(days=days_ago), first_at=NOW
        )
    Visit.create(customer=b, store=store, day=date(2026, 11, 24), first_at=NOW)
    Visit.create(customer=c, store=store, day=date(2026, 9, 1), first_at=NOW)
    assert names(store, one("visit_count", "gte", 2, days=30)) == {"thrice"}
    assert names(store, one("visit_count", "eq", 1, days=30)) == {"once_recent"}
    assert names(store, one("visit_count", "lt", 1, days=30)) == {"once_old", "never"}
    assert names(store, one("visit_count", "between", [0, 1], days=30)) == {
        "once_recent",
        "once_old",
        "never",
    }
    assert names(store, one("visit_count", "ne", 0, days=30)) == {"thrice", "once_recent"}
    assert names(store, one("visit_count", "eq", 1, days=0)) == {"once_recent"}
    assert names(store, one("visit_count", "gte", 2)) == {"thrice", "once_recent", "once_old"}


def test_total_spend_with_a_period_sums_events_including_refunds(store):
    a = make_customer(store, name="big", total_spend=Decimal("0"))
    b = make_customer(store, name="refunded", total_spend=Decimal("9999"))
    c = make_customer(store, name="old_spender", total_spend=Decimal("9999"))
    make_customer(store, name="nothing")
    event(a, "purchase", NOW - timedelta(days=3), "300.10")
    event(a, "service_completed", NOW - timedelta(days=10), "200")
    event(a, "appointment_booked", NOW - timedelta(days=10))
    event(b, "purchase", NOW - timedelta(days=3), "800")
    event(b, "refund", NOW - timedelta(days=2), "-700")
    event(c, "purchase", NOW - timedelta(days=100), "5000")
    assert names(store, one("total_spend", "gte", 500, days=30)) == {"big"}
    assert names(store, one("total_spend", "eq", "500.10", days=30)) == {"big"}
    assert names(store, one("total_spend", "between", [50, 100], days=30)) == {"refunded"}
    assert names(store, one("total_spend", "lt", 100, days=30)) == {"old_spender", "nothing"}
    assert names(store, one("total_spend", "lte", 100, days=30)) == {
        "refunded",
        "old_spender",
        "nothing",
    }
    assert names(store, one("total_spend", "lte", "0.1", days=30)) == {"old_spender", "nothing"}
    assert names(store, one("total_spend", "gt", "500.09", days=30)) == {"big"}
    assert names(store, one("total_spend", "gte", 1000, days=365)) == {"old_spender"}


def test_products_bought_has_any_all_none_with_and_without_period(store):
    a = make_customer(store, name="shampoo_and_mask")
    b = make_customer(store, name="shampoo_long_ago")
    make_customer(store, name="nothing")
    event(a, "purchase", NOW - timedelta(days=2), 50, ["SHAMPOO", "MASK"])
    event(b, "purchase", NOW - timedelta(days=200), 50, ["SHAMPOO"])
    assert names(store, one("products_bought", "has_any", ["SHAMPOO"])) == {
        "shampoo_and_mask",
        "shampoo_long_ago",
    }
    assert names(store, one("products_bought", "has_any", ["SHAMPOO"], days=30)) == {
        "shampoo_and_mask"
    }
    assert names(store, one("products_bought", "has_all", ["SHAMPOO", "MASK"])) == {
        "shampoo_and_mask"
    }
    assert names(store, one("products_bought", "has_none", ["MASK"])) == {
        "shampoo_long_ago",
        "nothing",
    }
    assert names(store, one("products_bought", "has_none", ["SHAMPOO"], days=30)) == {
        "shampoo_long_ago",
        "nothing",
    }


def test_channel_needs_consent_an_address_and_an_unflagged_phone(store):
    ok = make_customer(store, name="whatsapp_ok")
    Consent.create(customer=ok, channel="whatsapp", granted=True)
    flagged = make_customer(store, name="flagged", phone_flagged_at=NOW - timedelta(days=1))
    Consent.create(customer=flagged, channel="whatsapp", granted=True)
    withdrawn = make_customer(store, name="withdrawn", email="w@example.test")
    Consent.create(customer=withdrawn, channel="whatsapp", granted=False)
    Consent.create(customer=withdrawn, channel="email", granted=True)
    no_line = make_customer(store, name="no_line_id")
    Consent.create(customer=no_line, channel="line", granted=True)
    both = make_customer(store, name="both", line_id="both-line")
    Consent.create(customer=both, channel="whatsapp", granted=True)
    Consent.create(customer=both, channel="line", granted=True)
    assert names(store, one("channel", "eq", "whatsapp")) == {"whatsapp_ok", "both"}
    assert names(store, one("channel", "has_any", ["line", "email"])) == {"withdrawn", "both"}
    assert names(store, one("channel", "has_all", ["whatsapp", "line"])) == {"both"}
    assert names(store, one("channel", "has_none", ["whatsapp", "line", "sms", "email"])) == {
        "flagged",
        "no_line_id",
    }
    assert names(store, one("channel", "has_any", ["sms"])) == set()


def test_attributes_compare_text_and_numbers(store):
    for name, car, mileage in [
        ("suv", "suv", "9000"),
        ("sedan", "sedan", "12000"),
        ("weird", "van", "n/a"),
        ("none", None, None),
    ]:
        c = make_customer(store, name=name)
        if car:
            CustomerAttribute.create(customer=c, key="car_type", value=car)
            CustomerAttribute.create(customer=c, key="mileage", value=mileage)
    assert names(store, one("attributes.car_type", "eq", "suv")) == {"suv"}
    assert names(store, one("attributes.car_type", "ne", "suv")) == {"sedan", "weird", "none"}
    assert names(store, one("attributes.car_type", "in", ["suv", "van"])) == {"suv", "weird"}
    assert names(store, one("attributes.car_type", "not_in", ["suv", "van"])) == {"sedan", "none"}
    assert names(store, one("attributes.car_type", "is_set")) == {"suv", "sedan", "weird"}
    assert names(store, one("attributes.car_type", "is_not_set")) == {"none"}
    assert names(store, one("attributes.mileage", "gt", 10000)) == {"sedan"}
    assert names(store, one("attributes.mileage", "lte", 9000)) == {"suv"}
    assert names(store, one("attributes.mileage", "between", [5000, 20000])) == {"suv", "sedan"}
    assert names(store, one("attributes.mileage", "eq", 9000)) == {"suv"}
    assert names(store, one("attributes.car_type", "gte", "suv")) == {"suv", "weird"}
    assert names(store, one("attributes.car_type", "lt", "suv")) == {"sedan"}


# ---------------------------------------------------------------- segments


def test_custom_segment_is_evaluated_at_run_time(store):
    Segment.create(
        store=store,
        key="big_spenders",
        name="Big spenders",
        audience={"all": [{"field": "total_spend", "op": "gte", "value": 1000}]},
    )
    make_customer(store, name="early", total_spend=Decimal("1500"))
    aud = one("segment", "in", ["big_spenders"])
    assert names(store, aud) == {"early"}
    late = make_customer(store, name="late", total_spend=Decimal("0"))
    late.total_spend = Decimal("2000")
    late.save()
    assert names(store, aud) == {"early", "late"}
    assert names(store, one("segment", "not_in", ["big_spenders"])) == set()


def test_smart_segment_works_without_a_segment_row(store):
    make_customer(
        store,
        name="active",
        last_visit_at=NOW - timedelta(days=3),
        joined_at=NOW - timedelta(days=300),
    )
    make_customer(
        store,
        name="sleepy",
        last_visit_at=NOW - timedelta(days=200),
        joined_at=NOW - timedelta(days=300),
    )
    assert names(store, one("segment", "eq", "active")) == {"active"}
    assert names(store, one("segment", "ne", "active")) == {"sleepy"}


def test_segment_cycles_and_unknown_segments_are_errors(store):
    Segment.create(store=store, key="a", name="A", audience=one("segment", "eq", "b"))
    Segment.create(store=store, key="b", name="B", audience=one("segment", "eq", "a"))
    with pytest.raises(AudienceError) as cycle:
        audience.count(
            store.id,
            {
                "all": [
                    {"field": "level", "op": "eq", "value": "x"},
                    {"field": "segment", "op": "eq", "value": "a"},
                ]
            },
            NOW,
        )
    assert cycle.value.errors[0]["field"] == "audience.all[1]"
    assert "a → b → a" in cycle.value.errors[0]["message"]
    with pytest.raises(AudienceError) as unknown:
        audience.count(store.id, one("segment", "in", ["ghost"]), NOW)
    assert unknown.value.errors[0]["field"] == "audience.all[0]"


# ---------------------------------------------------------------- validation and catalogue


def test_validation_errors_name_the_path():
    bad = {
        "all": [
            {"field": "tags", "op": "has_any", "value": ["VIP"]},
            {"field": "shoe_size", "op": "eq", "value": 40},
            {"field": "age", "op": "has_any", "value": 30},
            {"any": [{"field": "gender", "op": "eq", "value": "robot"}]},
            {"field": "visit_count", "op": "gte", "value": 2, "days": -1},
            {"field": "points", "op": "between", "value": [10, 1]},
            {"field": "birthday", "op": "eq", "value": "02-30"},
            {"field": "cards.expires_on", "op": "lt", "value": "soon"},
            {"field": "level", "op": "eq"},
            {"field": "gender", "op": "eq", "value": "female", "days": 3},
            "not a condition",
        ],
        "except": [],
    }
    fields = {e["field"] for e in audience.validate(bad)}
    assert fields == {
        "audience.all[1].field",
        "audience.all[2].op",
        "audience.all[3].any[0].value",
        "audience.all[4].days",
        "audience.all[5].value",
        "audience.all[6].value",
        "audience.all[7].value",
        "audience.all[8].value",
        "audience.all[9].days",
        "audience.all[10]",
        "audience.except",
    }
    with pytest.raises(AudienceError) as raised:
        audience.where(1, bad, NOW)
    assert raised.value.errors == audience.validate(bad)


def test_validate_never_raises_and_accepts_good_audiences():
    assert audience.validate(None) == []
    assert (
        audience.validate({"all": [{"field": "attributes.car_type", "op": "eq", "value": "suv"}]})
        == []
    )
    assert audience.validate(["not", "a", "dict"])[0]["field"] == "audience"
    assert audience.validate({"all": [], "any": [{"field": "points", "op": "gt", "value": 1}]})
    assert audience.validate({"weird": 1})[0]["field"] == "audience.weird"
    deep = {"all": []}
    node = deep
    for _ in range(20):
        child = {"all": []}
        node["all"].append(child)
        node = child
    assert audience.validate(deep)


def test_fields_catalogue_lists_every_contract_field_with_operators():
    catalogue = {entry["field"]: entry for entry in audience.fields_catalogue()}
    for field in (
        "gender age birthday level tags source assigned_staff store joined_at last_visit_at "
        "visit_count total_spend products_bought cards.product cards.balance "
        "cards.remaining_uses cards.expires_on points channel segment attributes.<key>"
    ).split():
        assert field in catalogue
        assert catalogue[field]["ops"]
        assert isinstance(catalogue[field]["label"], str)
    assert catalogue["visit_count"]["period"] is True
    assert catalogue["gender"]["period"] is False
    assert "in_next_days" in catalogue["birthday"]["ops"]
    assert catalogue["channel"]["options"] == ["whatsapp", "line", "sms", "email"]


def test_each_condition_selects_the_same_customers_alone_under_or_and_negated(store):
    facial = product(store, "FACIAL10", "count")
    rich = make_customer(
        store,
        name="rich",
        gender="female",
        total_spend=Decimal("900"),
        last_visit_at=NOW - timedelta(days=1),
    )
    tag(rich, "VIP")
    make_card(rich, product=facial, remaining_uses=1)
    event(rich, "purchase", NOW - timedelta(days=1), 900, ["SERUM"])
    Consent.create(customer=rich, channel="whatsapp", granted=True)
    CustomerAttribute.create(customer=rich, key="car_type", value="suv")
    make_customer(store, name="plain", gender="male")
    everyone = {"rich", "plain"}
    for cond in [
        {"field": "tags", "op": "has_any", "value": ["VIP"]},
        {"field": "tags", "op": "has_all", "value": ["VIP"]},
        {"field": "products_bought", "op": "has_any", "value": ["SERUM"], "days": 7},
        {"field": "cards.remaining_uses", "op": "lte", "value": 2},
        {"field": "cards.product", "op": "has_all", "value": ["FACIAL10"]},
        {"field": "channel", "op": "eq", "value": "whatsapp"},
        {"field": "attributes.car_type", "op": "eq", "value": "suv"},
        {"field": "total_spend", "op": "gte", "value": 500, "days": 30},
        {"field": "segment", "op": "in", "value": ["active", "vip"]},
    ]:
        alone = names(store, {"all": [cond]})
        assert alone == names(store, {"any": [cond]}), cond
        assert alone == names(store, {"any": [{"all": [cond]}, {"all": [cond]}]}), cond
        assert names(store, {"except": [cond]}) == everyone - alone, cond
        expr = audience.where(store.id, {"all": [cond]}, NOW, conjunctive=False)
        query = Customer.select(Customer.name).where(Customer.store == store.id, expr)
        assert {c.name for c in query} == alone, cond
    assert names(store, one("segment", "in", ["active", "vip"])) == {"rich"}
