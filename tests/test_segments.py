"""Smart segments from recency, frequency and spend; saved custom segments evaluated at run time."""

from datetime import timedelta
from decimal import Decimal

import pytest

from app.models import Customer, Segment
from app.services import audience, segments
from app.services.segments import SegmentError
from tests.factories import make_customer, make_staff, make_store, utc

NOW = utc(2026, 11, 24, 6, 0)


def members(store, key: str) -> set[str]:
    ids = audience.customer_query(
        store.id, {"all": [{"field": "segment", "op": "eq", "value": key}]}, NOW
    )
    return {c.name for c in Customer.select(Customer.name).where(Customer.id.in_(ids))}


def days_ago(n: int):
    return NOW - timedelta(days=n)


@pytest.fixture
def store(app):
    return make_store("kl", timezone="Asia/Kuala_Lumpur")


@pytest.fixture
def lifecycle(store):
    """One customer for each stage of the lifecycle."""
    make_customer(
        store, name="newbie", joined_at=days_ago(10), visit_count=1, last_visit_at=days_ago(9)
    )
    make_customer(
        store, name="regular", joined_at=days_ago(400), visit_count=6, last_visit_at=days_ago(20)
    )
    make_customer(
        store, name="slipping", joined_at=days_ago(400), visit_count=3, last_visit_at=days_ago(90)
    )
    make_customer(
        store, name="gone", joined_at=days_ago(400), visit_count=2, last_visit_at=days_ago(200)
    )
    make_customer(store, name="never_came", joined_at=days_ago(45), visit_count=0)
    make_customer(store, name="just_joined", joined_at=days_ago(2), visit_count=0)
    make_customer(
        store,
        name="big_spender",
        joined_at=days_ago(400),
        visit_count=4,
        total_spend=Decimal("3000"),
        last_visit_at=days_ago(5),
    )
    make_customer(
        store, name="loyal", joined_at=days_ago(700), visit_count=10, last_visit_at=days_ago(150)
    )
    return store


def test_smart_segments_with_default_thresholds(lifecycle):
    assert members(lifecycle, "new") == {"newbie", "just_joined"}
    assert members(lifecycle, "active") == {"newbie", "regular", "big_spender"}
    assert members(lifecycle, "at_risk") == {"slipping"}
    assert members(lifecycle, "dormant") == {"gone", "never_came", "loyal"}
    assert members(lifecycle, "vip") == {"big_spender", "loyal"}


def test_smart_segment_thresholds_come_from_store_settings(lifecycle):
    lifecycle.settings = {"segments": {"active_days": 100, "dormant_days": 180, "vip_spend": 5000}}
    lifecycle.save()
    assert members(lifecycle, "active") == {"newbie", "regular", "slipping", "big_spender"}
    assert members(lifecycle, "at_risk") == {"loyal"}
    assert members(lifecycle, "dormant") == {"gone", "never_came"}
    assert members(lifecycle, "vip") == {"loyal"}


def test_ensure_smart_segments_is_idempotent(store):
    assert segments.ensure_smart_segments(store) == 5
    assert segments.ensure_smart_segments(store) == 0
    rows = Segment.select().where(Segment.store == store.id)
    assert sorted(s.key for s in rows) == ["active", "at_risk", "dormant", "new", "vip"]
    assert {s.kind for s in rows} == {"smart"}


def test_smart_segment_row_is_still_computed_live(lifecycle):
    segments.ensure_smart_segments(lifecycle)
    assert members(lifecycle, "at_risk") == {"slipping"}
    make_customer(lifecycle, name="another", joined_at=days_ago(300), last_visit_at=days_ago(70))
    assert members(lifecycle, "at_risk") == {"slipping", "another"}


def test_save_segment_validates_and_updates(store):
    owner = make_staff("owner", [store])
    aud = {"all": [{"field": "level", "op": "eq", "value": "gold"}]}
    saved = segments.save_segment(store, "gold", "Gold members", aud, staff=owner)
    assert saved.kind == "custom" and saved.created_by_id == owner.id
    again = segments.save_segment(
        store, "gold", "Gold", {"all": [{"field": "level", "op": "in", "value": ["gold", "vip"]}]}
    )
    assert again.id == saved.id and again.name == "Gold"
    with pytest.raises(SegmentError) as bad:
        segments.save_segment(
            store, "bad key!", "", {"all": [{"field": "level", "op": "has_any", "value": 1}]}
        )
    assert {e["field"] for e in bad.value.errors} == {"key", "name", "audience.all[0].op"}
    with pytest.raises(SegmentError) as smart:
        segments.save_segment(store, "vip", "Mine", aud)
    assert smart.value.errors[0]["field"] == "key"


def test_save_segment_rejects_cycles_and_unknown_segments(store):
    segments.save_segment(store, "a", "A", {"all": [{"field": "level", "op": "eq", "value": "x"}]})
    segments.save_segment(
        store, "b", "B", {"all": [{"field": "segment", "op": "eq", "value": "a"}]}
    )
    with pytest.raises(SegmentError) as cycle:
        segments.save_segment(
            store, "a", "A", {"any": [{"field": "segment", "op": "in", "value": ["b"]}]}
        )
    assert "a → b → a" in cycle.value.errors[0]["message"]
    with pytest.raises(SegmentError) as itself:
        segments.save_segment(
            store, "c", "C", {"all": [{"field": "segment", "op": "eq", "value": "c"}]}
        )
    assert itself.value.errors[0]["field"] == "audience"
    with pytest.raises(SegmentError) as unknown:
        segments.save_segment(
            store, "d", "D", {"all": [{"field": "segment", "op": "eq", "value": "ghost"}]}
        )
    assert "ghost" in unknown.value.errors[0]["message"]
    assert (
        Segment.get(Segment.store == store.id, Segment.key == "a").audience["all"][0]["field"]
        == "level"
    )


def test_custom_segment_built_on_a_smart_one_admits_customers_who_qualify_now(lifecycle):
    segments.save_segment(
        lifecycle,
        "female_vip",
        "Female VIPs",
        {
            "all": [
                {"field": "segment", "op": "eq", "value": "vip"},
                {"field": "gender", "op": "eq", "value": "female"},
            ]
        },
    )
    assert members(lifecycle, "female_vip") == set()
    Customer.update(gender="female").where(Customer.name == "loyal").execute()
    assert members(lifecycle, "female_vip") == {"loyal"}


def test_segment_counts_cover_smart_and_custom_segments(lifecycle):
    segments.save_segment(
        lifecycle,
        "zero_visits",
        "Zero",
        {"all": [{"field": "visit_count", "op": "eq", "value": 0}]},
    )
    counts = segments.segment_counts(lifecycle, NOW)
    assert counts == {"new": 2, "active": 3, "at_risk": 1, "dormant": 3, "vip": 2, "zero_visits": 2}


def test_smart_segment_names_are_translated_strings():
    for key, info in segments.SMART_SEGMENTS.items():
        assert str(info["name"]) and str(info["description"]), key
    with pytest.raises(KeyError):
        segments.smart_audience(make_store_stub(), "unknown")


def make_store_stub():
    class Stub:
        def setting(self, name, default=None):
            return default

    return Stub()
