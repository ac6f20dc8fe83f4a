"""Tags: CRUD, bulk add/remove on a filtered list, automatic rules and tag health."""

from datetime import timedelta

import pytest

from app.models import AuditLog, Customer, CustomerTag, Tag, TagRule
from app.services import tagging
from tests.factories import login, make_customer, make_staff, make_store, utc

NOW = utc(2026, 11, 24, 2, 0)


def tags_of(customer):
    return {
        t.name for t in Tag.select().join(CustomerTag).where(CustomerTag.customer == customer.id)
    }


@pytest.fixture
def salon(app):
    store = make_store("kl", timezone="Asia/Kuala_Lumpur")
    manager = make_staff("manager", [store])
    return store, manager


def test_bulk_add_then_remove_a_tag_on_clients_from_one_source(salon):
    store, manager = salon
    walkins = [make_customer(store, source="walk-in") for _ in range(3)]
    other = make_customer(store, source="facebook")
    vip = Tag.create(store=store, name="vip")
    aud = tagging.simple_audience([], "walk-in")
    assert tagging.bulk_edit(store, aud, vip, "add", manager, NOW) == 3
    assert tagging.bulk_edit(store, aud, vip, "add", manager, NOW) == 0  # already there
    assert all("vip" in tags_of(c) for c in walkins) and tags_of(other) == set()
    assert tagging.bulk_edit(store, aud, vip, "remove", manager, NOW) == 3
    assert CustomerTag.select().count() == 0
    assert AuditLog.select().where(AuditLog.action == "tag.bulk_add").count() == 2


def test_bulk_edit_page_counts_matching_clients_and_applies(client, salon):
    store, manager = salon
    for _ in range(2):
        make_customer(store, source="walk-in")
    vip = Tag.create(store=store, name="vip")
    login(client, manager)
    html = client.get("/tags/bulk?source=walk-in").get_data(as_text=True)
    assert "2 clients match." in html
    resp = client.post("/tags/bulk", data={"source": "walk-in", "tag": vip.id, "action": "add"})
    assert resp.status_code == 200
    assert "added to 2 clients" in resp.get_data(as_text=True)
    bad = client.post("/tags/bulk", data={"audience": "{nope", "tag": vip.id, "action": "add"})
    assert bad.status_code == 422


def test_preset_rules_tag_high_value_and_at_risk_and_drop_new(salon):
    store, manager = salon
    loyal = make_customer(
        store,
        visit_count=5,
        last_visit_at=NOW - timedelta(days=3),
        first_visit_at=NOW - timedelta(days=200),
    )
    lapsed = make_customer(
        store,
        visit_count=1,
        last_visit_at=NOW - timedelta(days=90),
        first_visit_at=NOW - timedelta(days=90),
    )
    fresh = make_customer(
        store,
        visit_count=1,
        last_visit_at=NOW - timedelta(days=5),
        first_visit_at=NOW - timedelta(days=5),
    )
    new = Tag.create(store=store, name="new")
    for c in (lapsed, fresh):
        CustomerTag.create(customer=c, tag=new, added_at=NOW - timedelta(days=90))
    for key in ("high_value", "at_risk", "at_risk_back", "new_expires"):
        tagging.save_rule(store, {"preset": key}, manager, NOW)
    tagging.run_rules(store, NOW)
    assert tags_of(loyal) == {"high value"}
    assert tags_of(lapsed) == {"at risk"}
    assert tags_of(fresh) == {"new"}
    assert TagRule.select().where(TagRule.last_run_at.is_null()).count() == 0


def test_rules_for_one_customer_touch_only_that_customer(salon):
    store, manager = salon
    a = make_customer(store, visit_count=4)
    b = make_customer(store, visit_count=4)
    tagging.save_rule(store, {"preset": "high_value"}, manager, NOW)
    assert tagging.run_rules_for_customer(Customer.get_by_id(a.id), NOW) == 1
    assert tags_of(a) == {"high value"} and tags_of(b) == set()


def test_rule_with_bad_conditions_is_refused_with_the_reason(client, salon):
    store, manager = salon
    tag = Tag.create(store=store, name="x")
    login(client, manager)
    resp = client.post(
        "/tags/rules",
        data={"tag": tag.id, "action": "add", "audience": '{"all": [{"field": "nope"}]}'},
        headers={"HX-Request": "true"},
    )
    assert resp.status_code == 422
    assert TagRule.select().count() == 0


def test_tag_crud_validates_colour_and_duplicate_names(client, salon):
    store, manager = salon
    login(client, manager)
    assert client.post("/tags", data={"name": "VIP", "colour": "#2563eb"}).status_code == 200
    dup = client.post("/tags", data={"name": "VIP", "colour": "#2563eb"})
    assert dup.status_code == 422 and "already exists" in dup.get_data(as_text=True)
    bad = client.post("/tags", data={"name": "Gold", "colour": "red"})
    assert bad.status_code == 422
    tag = Tag.get(Tag.name == "VIP")
    client.post(f"/tags/{tag.id}", data={"name": "VIP", "dimension": "Value", "colour": "#000000"})
    assert Tag.get_by_id(tag.id).dimension == "Value"
    client.post(f"/tags/{tag.id}/delete")
    assert not Tag.select().where(Tag.name == "VIP").exists()
    assert AuditLog.select().where(AuditLog.object_type == "tag").count() == 3


def test_tag_health_finds_unused_broad_and_near_duplicate_tags(salon):
    store, _manager = salon
    people = [make_customer(store) for _ in range(5)]
    broad = Tag.create(store=store, name="Member")
    stale = Tag.create(store=store, name="summer promo")
    Tag.create(store=store, name="Summer-Promo")
    Tag.create(store=store, name="empty")
    vip = Tag.create(store=store, name="vips")
    Tag.create(store=store, name="vip")
    for c in people[:3]:
        CustomerTag.create(customer=c, tag=broad, added_at=NOW - timedelta(days=1))
    CustomerTag.create(customer=people[4], tag=stale, added_at=NOW - timedelta(days=45))
    CustomerTag.create(customer=people[4], tag=vip, added_at=NOW - timedelta(days=2))
    h = tagging.health(store, NOW)
    unused = {t["name"] for t in h["unused"]}
    assert {"summer promo", "empty", "Summer-Promo", "vip"} == unused
    assert [t["name"] for t in h["broad"]] == ["Member"]
    pairs = {frozenset((a["name"], b["name"])) for a, b in h["duplicates"]}
    assert frozenset(("summer promo", "Summer-Promo")) in pairs
    assert frozenset(("vip", "vips")) in pairs
    assert frozenset(("Member", "empty")) not in pairs


def test_within_one_edit():
    assert tagging.within_one_edit("vip", "vips")
    assert tagging.within_one_edit("gold", "bold")
    assert not tagging.within_one_edit("gold", "bolt")
