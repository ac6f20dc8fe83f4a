"""The client list: filter by tags together with the search, and bulk tag edits on that list."""

import re

import pytest

from app.models import AuditLog, CustomerTag, Tag
from tests.factories import login, make_customer, make_staff, make_store

HX = {"HX-Request": "true"}


@pytest.fixture
def salon(app):
    store = make_store("kl", name="Bunga Beauty KL")
    other = make_store("pg", name="Bunga Beauty Penang")
    vip, lash, nails = (Tag.create(store=store, name=n) for n in ("VIP", "Lash", "Nails"))
    foreign = Tag.create(store=other, name="VIP")
    people = {}
    for name, tags in [
        ("Nurul Aisyah", [vip, lash]),
        ("Nurul Huda", [vip]),
        ("Siti Rahmah", [lash]),
        ("陈美玲", [vip, lash, nails]),
        ("สมศรี ใจดี", []),
    ]:
        c = make_customer(store, name=name)
        for t in tags:
            CustomerTag.create(customer=c, tag=t)
        people[name] = c
    stranger = make_customer(other, name="Nurul Other")
    CustomerTag.create(customer=stranger, tag=foreign)
    manager = make_staff("manager", [store], name="Mei")
    employee = make_staff("employee", [store], name="Aisyah")
    return {
        "store": store,
        "tags": {"vip": vip, "lash": lash, "nails": nails, "foreign": foreign},
        "people": people,
        "manager": manager,
        "employee": employee,
    }


def names(resp) -> list[str]:
    return re.findall(r"<strong>([^<]+)</strong>", resp.get_data(as_text=True))


def test_list_filters_by_one_tag(client, salon):
    login(client, salon["employee"])
    resp = client.get("/customers", query_string={"tag": salon["tags"]["vip"].id}, headers=HX)
    assert resp.status_code == 200 and "<html" not in resp.get_data(as_text=True)
    assert names(resp) == ["Nurul Aisyah", "Nurul Huda", "陈美玲"]


def test_several_tags_mean_all_of_them_unless_any_is_chosen(client, salon):
    login(client, salon["employee"])
    vip, lash = salon["tags"]["vip"].id, salon["tags"]["lash"].id
    both = client.get("/customers", query_string={"tag": [vip, lash]})
    assert both.status_code == 200 and "<html" in both.get_data(as_text=True)
    assert names(both) == ["Nurul Aisyah", "陈美玲"]
    either = client.get("/customers", query_string={"tag": [vip, lash], "match": "any"})
    assert names(either) == ["Nurul Aisyah", "Nurul Huda", "Siti Rahmah", "陈美玲"]


def test_tag_filter_combines_with_the_name_search(client, salon):
    login(client, salon["employee"])
    resp = client.get(
        "/customers", query_string={"q": "nurul", "tag": salon["tags"]["lash"].id}, headers=HX
    )
    assert names(resp) == ["Nurul Aisyah"]


def test_another_stores_tag_is_ignored_not_leaked(client, salon):
    login(client, salon["employee"])
    resp = client.get("/customers", query_string={"q": "nurul", "tag": salon["tags"]["foreign"].id})
    assert names(resp) == ["Nurul Aisyah", "Nurul Huda"]


def test_manager_adds_a_tag_to_every_client_of_the_filtered_list(client, salon):
    login(client, salon["manager"])
    vip, nails = salon["tags"]["vip"], salon["tags"]["nails"]
    page = client.get("/customers", query_string={"q": "nurul", "tag": vip.id})
    assert "2 clients match." in page.get_data(as_text=True)
    assert "Apply to all 2 clients" in page.get_data(as_text=True)
    resp = client.post(
        "/customers/bulk-tag",
        data={"q": "nurul", "tag": vip.id, "bulk_tag": nails.id, "action": "add"},
        headers=HX,
    )
    assert resp.status_code == 200
    assert "“Nails” added to 2 clients." in resp.get_data(as_text=True)
    tagged = {ct.customer.name for ct in CustomerTag.select().where(CustomerTag.tag == nails.id)}
    assert tagged == {"Nurul Aisyah", "Nurul Huda", "陈美玲"}
    entry = AuditLog.get(AuditLog.action == "tag.bulk_add")
    assert entry.detail["count"] == 2 and entry.detail["q"] == "nurul"


def test_manager_removes_a_tag_from_the_filtered_list_only(client, salon):
    login(client, salon["manager"])
    vip, lash = salon["tags"]["vip"], salon["tags"]["lash"]
    resp = client.post(
        "/customers/bulk-tag",
        data={"tag": [vip.id, lash.id], "match": "all", "bulk_tag": lash.id, "action": "remove"},
    )
    assert resp.status_code == 200 and "<html" in resp.get_data(as_text=True)
    left = {ct.customer.name for ct in CustomerTag.select().where(CustomerTag.tag == lash.id)}
    assert left == {"Siti Rahmah"}


def test_bulk_tag_needs_a_tag_and_a_manager(client, salon):
    login(client, salon["manager"])
    vip = salon["tags"]["vip"]
    missing = client.post("/customers/bulk-tag", data={"tag": vip.id, "action": "add"}, headers=HX)
    assert missing.status_code == 422 and "Choose a tag." in missing.get_data(as_text=True)
    foreign = client.post(
        "/customers/bulk-tag",
        data={"tag": vip.id, "bulk_tag": salon["tags"]["foreign"].id, "action": "add"},
    )
    assert foreign.status_code == 422
    client.post("/logout")
    login(client, salon["employee"])
    denied = client.post(
        "/customers/bulk-tag", data={"tag": vip.id, "bulk_tag": vip.id, "action": "remove"}
    )
    assert denied.status_code == 403
    assert CustomerTag.select().where(CustomerTag.tag == vip.id).count() == 3
