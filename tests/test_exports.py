"""CSV exports: contents, filters, formula safety, BOM, streaming in chunks, store isolation."""

import csv
import io
from datetime import timedelta

import pytest

from app import clock
from app.models import ContactLog, Customer, CustomerAttribute, CustomerTag, FollowUp, Message, Tag
from app.services import exporting
from tests.factories import login, make_card, make_customer, make_staff, make_store
from tests.world import build_world

HX = {"HX-Request": "true"}


def _rows(resp) -> list[list[str]]:
    text = resp.get_data(as_text=True)
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


@pytest.fixture
def world(app):
    return build_world()


def _tag(customer, name):
    tag, _ = Tag.get_or_create(store=customer.store_id, name=name)
    CustomerTag.create(customer=customer, tag=tag)


def test_customer_export_has_tags_attributes_cards_and_neutralised_formulas(client, world):
    evil = make_customer(world.store_a, name="=cmd|' /C calc'!A0", phone="+60125550001")
    _tag(evil, "VIP")
    _tag(world.customer_a, "新客")
    CustomerAttribute.create(customer=world.customer_a, key="hair", value="@SUM(A1)")
    make_card(world.customer_a, "count", remaining_uses=7)
    login(client, world.manager_a)
    resp = client.get("/exports/customers.csv")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    rows = _rows(resp)
    header = rows[0]
    by_name = {r[header.index("name")]: dict(zip(header, r, strict=True)) for r in rows[1:]}
    assert "สมหญิง" not in by_name  # store B's customer
    assert by_name["'=cmd|' /C calc'!A0"]["tags"] == "VIP"
    xiaohong = by_name["小红"]
    assert xiaohong["tags"] == "新客"
    assert xiaohong["attributes"] == "hair=@SUM(A1)"
    assert xiaohong["cards"].endswith("active 7")
    assert xiaohong["phone"] == "'+60123456789"  # text in Excel: the + is kept, nothing runs


def test_attribute_cell_starting_with_a_formula_is_neutralised(client, world):
    CustomerAttribute.create(customer=world.customer_a, key="=x", value="1")
    login(client, world.manager_a)
    rows = _rows(client.get("/exports/customers.csv"))
    header = rows[0]
    cells = [r[header.index("attributes")] for r in rows[1:]]
    assert "'=x=1" in cells


def test_customer_export_filters_by_tag_source_last_visit_and_audience(client, world):
    now = clock.now()
    regular = make_customer(
        world.store_a, name="Regular", source="walk-in", last_visit_at=now - timedelta(days=3)
    )
    lapsed = make_customer(world.store_a, name="Lapsed", last_visit_at=now - timedelta(days=200))
    _tag(regular, "VIP")
    login(client, world.manager_a)

    def names(query: str) -> set[str]:
        rows = _rows(client.get(f"/exports/customers.csv?{query}"))
        return {r[rows[0].index("name")] for r in rows[1:]}

    assert names("tag=VIP") == {"Regular"}
    assert names("source=walk-in") == {"Regular"}
    since = (now - timedelta(days=30)).date().isoformat()
    assert names(f"visited_since={since}") == {"Regular"}
    assert lapsed.name in names(f"not_visited_since={since}")
    assert "Regular" not in names(f"not_visited_since={since}")
    audience = '{"all":[{"field":"tags","op":"has_any","value":["VIP"]}]}'
    assert names("audience=" + audience) == {"Regular"}


def test_bad_filters_answer_422_with_the_form(client, world):
    login(client, world.manager_a)
    resp = client.get("/exports/customers.csv?audience={nope", headers=HX)
    assert resp.status_code == 422 and b"<html" not in resp.data
    assert b"not valid JSON" in resp.data
    resp = client.get('/exports/customers.csv?audience={"all":[{"field":"zzz","op":"eq"}]}')
    assert resp.status_code == 422 and b"<html" in resp.data
    assert client.get("/exports/followups.csv?start=2026-13-01").status_code == 422
    assert client.get("/exports/nothing.csv").status_code == 404


def test_export_page_full_and_fragment(client, world):
    login(client, world.manager_a)
    page = client.get("/exports")
    assert page.status_code == 200 and b"<html" in page.data and b"Second visit" in page.data
    fragment = client.get("/exports", headers=HX)
    assert fragment.status_code == 200 and b"<html" not in fragment.data
    assert b'id="export-forms"' in fragment.data


def test_followup_export_filters_by_status_plan_and_assignee(client, world):
    now = clock.now()
    world.followup_a2.status = "done"
    world.followup_a2.open_customer = None
    world.followup_a2.outcome = "booked"
    world.followup_a2.completed_at = now
    world.followup_a2.save()
    login(client, world.manager_a)
    rows = _rows(client.get("/exports/followups.csv"))
    header = rows[0]
    assert {r[header.index("id")] for r in rows[1:]} == {
        str(world.followup_a.id),
        str(world.followup_a2.id),
    }
    done = _rows(client.get("/exports/followups.csv?status=done"))
    assert len(done) == 2 and done[1][header.index("outcome")] == "booked"
    mine = _rows(client.get(f"/exports/followups.csv?assignee={world.employee_a.id}"))
    assert [r[header.index("id")] for r in mine[1:]] == [str(world.followup_a.id)]
    assert len(_rows(client.get(f"/exports/followups.csv?plan={world.plan_a.id}"))) == 3
    tomorrow = (now + timedelta(days=2)).date().isoformat()
    assert len(_rows(client.get(f"/exports/followups.csv?start={tomorrow}"))) == 1


def test_contact_log_and_message_exports(client, world):
    ContactLog.create(
        followup=world.followup_a,
        customer=world.customer_a,
        staff=world.employee_a,
        outcome="no_answer",
        note="+60 call later",
    )
    ContactLog.create(customer=world.customer_b, outcome="reached")
    Message.create(
        store=world.store_a,
        customer=world.customer_a,
        channel="sms",
        body="-2 days left",
        idempotency_key="k1",
        status="sent",
    )
    login(client, world.manager_a)
    logs = _rows(client.get("/exports/contacts.csv"))
    assert len(logs) == 2
    assert logs[1][logs[0].index("note")] == "'+60 call later"
    assert logs[1][logs[0].index("staff")] == "Aisyah"
    messages = _rows(client.get("/exports/messages.csv?status=sent"))
    assert len(messages) == 2 and messages[1][messages[0].index("body")] == "'-2 days left"
    assert len(_rows(client.get("/exports/messages.csv?status=failed"))) == 1


def test_export_of_20k_customers_streams_in_chunks(client, app):
    store = make_store("big")
    manager = make_staff("manager", [store])
    now = clock.now()
    rows = [
        {
            "store": store.id,
            "name": f"Member {n}",
            "phone": f"+6012{n:07d}",
            "joined_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for n in range(20_000)
    ]
    for start in range(0, len(rows), 1000):
        Customer.insert_many(rows[start : start + 1000]).execute()
    login(client, manager)
    resp = client.get("/exports/customers.csv")
    assert resp.is_streamed
    pieces = list(resp.response)
    assert len(pieces) >= 20  # a BOM + header piece, then one piece per chunk of rows
    body = "".join(p.decode() if isinstance(p, bytes) else p for p in pieces)
    assert body.count("\n") == 20_001
    chunks = exporting.customer_rows(store, {}, now, size=1000)
    first = next(chunks)
    assert first[2] == "Member 0"


def test_chunks_page_by_key_and_never_load_everything(app):
    store = make_store("pages")
    for n in range(25):
        make_customer(store, name=f"P{n}")
    query = Customer.select().where(Customer.store == store.id)
    pages = list(exporting._chunks(query, Customer.id, 10))
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [c.name for p in pages for c in p] == [f"P{n}" for n in range(25)]


def test_export_needs_a_manager(client, world):
    login(client, world.employee_a)
    assert client.get("/exports/customers.csv").status_code == 403
    assert FollowUp.select().count() == 2
