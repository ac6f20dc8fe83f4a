"""JSON API v1: tokens, customers, cards, events, follow-ups, messages, pagination, errors."""

import logging
from datetime import timedelta
from decimal import Decimal

import pytest

from app import clock
from app.models import (
    AuditLog,
    ContactLog,
    Customer,
    FollowUp,
    Message,
    Occurrence,
    Visit,
)
from app.services import hooks, tokens
from tests.factories import make_customer, make_reason, utc
from tests.world import build_world


class Api:
    """A test client that sends one store's bearer token."""

    def __init__(self, client, raw: str):
        self.client, self.raw = client, raw
        self.headers = {"Authorization": f"Bearer {raw}"}

    def get(self, url, **kw):
        return self.client.get(url, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def post(self, url, json=None, **kw):
        return self.client.post(
            url, json=json, headers={**self.headers, **kw.pop("headers", {})}, **kw
        )

    def patch(self, url, json=None, **kw):
        return self.client.patch(
            url, json=json, headers={**self.headers, **kw.pop("headers", {})}, **kw
        )


@pytest.fixture
def world(app):
    return build_world()


@pytest.fixture
def quiet_engine(monkeypatch):
    """Events are recorded without running the plan engine (its own tests cover it)."""
    monkeypatch.setattr(hooks, "after_event", lambda event, now: None)


@pytest.fixture
def api_a(client, world):
    return Api(client, tokens.create_token(world.store_a, "POS")[1])


@pytest.fixture
def api_b(app, world):
    return Api(app.test_client(), tokens.create_token(world.store_b, "POS")[1])


def assert_problem(resp, status, *fields):
    assert resp.status_code == status, resp.data[:500]
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert body["status"] == status and body["title"]
    named = [e["field"] for e in body.get("errors", [])]
    for field in fields:
        assert field in named, (field, body)
    return body


# --- tokens -----------------------------------------------------------------------------------


def test_request_without_token_is_401_problem(client, world):
    resp = client.get("/api/v1/customers")
    assert_problem(resp, 401)
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_wrong_and_revoked_tokens_are_401(client, world):
    token, raw = tokens.create_token(world.store_a)
    assert client.get("/api/v1/ping", headers={"Authorization": f"Bearer {raw}"}).status_code == 200
    assert_problem(client.get("/api/v1/ping", headers={"Authorization": f"Bearer {raw}x"}), 401)
    assert_problem(client.get("/api/v1/ping", headers={"Authorization": raw}), 401)
    tokens.revoke(token, clock.now())
    assert_problem(client.get("/api/v1/ping", headers={"Authorization": f"Bearer {raw}"}), 401)


def test_token_use_is_recorded_as_last_used(api_a, world):
    from app.models import ApiToken

    assert ApiToken.get(ApiToken.store == world.store_a.id).last_used_at is None
    assert api_a.get("/api/v1/ping").get_json() == {"store": "kl", "name": "Bunga Beauty KL"}
    assert ApiToken.get(ApiToken.store == world.store_a.id).last_used_at is not None


def test_token_never_appears_in_logs(api_a, caplog):
    caplog.set_level(logging.DEBUG)
    api_a.get("/api/v1/customers?limit=5")
    logging.getLogger("werkzeug").info(
        '"GET /api/v1/ping?access_token=%s HTTP/1.1" 200 -', api_a.raw
    )
    assert "/api/v1/ping" in caplog.text
    assert api_a.raw not in caplog.text
    assert api_a.raw[3:] not in caplog.text


# --- request ids ------------------------------------------------------------------------------


def test_request_id_is_echoed_when_sane_and_generated_otherwise(api_a, client):
    resp = api_a.get("/api/v1/ping", headers={"X-Request-Id": "pos-42.abc"})
    assert resp.headers["X-Request-Id"] == "pos-42.abc"
    resp = api_a.get("/api/v1/ping", headers={"X-Request-Id": "evil <script> x" + "a" * 300})
    generated = resp.headers["X-Request-Id"]
    assert len(generated) == 32 and "evil" not in generated
    assert client.get("/healthz").headers["X-Request-Id"]
    assert client.get("/login").headers["X-Request-Id"]
    assert client.get("/api/v1/customers").headers["X-Request-Id"]  # a 401 too


# --- customers --------------------------------------------------------------------------------


def test_customer_is_created_then_updated_by_normalised_phone(api_a, world):
    body = {
        "name": "Tan Mei Ling",
        "phone": "012-555 0101",
        "gender": "female",
        "birthday": "1990-03-18",
        "tags": ["VIP", "Facial"],
        "attributes": {"skin": "dry"},
        "consent": {"whatsapp": True},
        "assigned_staff": "aisyah@example.test",
    }
    resp = api_a.post("/api/v1/customers", json=body)
    assert resp.status_code == 201
    created = resp.get_json()
    assert created["phone"] == "+60125550101"
    assert created["tags"] == ["Facial", "VIP"]
    assert created["assigned_staff"] == "aisyah@example.test"
    resp = api_a.post(
        "/api/v1/customers",
        json={"name": "Tan Mei Ling", "phone": "+60 12-555 0101", "level": "gold"},
    )
    assert resp.status_code == 200
    assert resp.get_json()["id"] == created["id"]
    assert resp.get_json()["level"] == "gold"
    assert (
        Customer.select()
        .where(Customer.store == world.store_a.id, Customer.phone == "+60125550101")
        .count()
        == 1
    )


def test_customer_matched_by_external_id_first(api_a):
    first = api_a.post(
        "/api/v1/customers", json={"external_id": "POS-7", "name": "Ali", "phone": "0125550102"}
    )
    assert first.status_code == 201
    moved = api_a.post(
        "/api/v1/customers", json={"external_id": "POS-7", "name": "Ali", "phone": "0125550199"}
    )
    assert moved.status_code == 200
    assert moved.get_json()["id"] == first.get_json()["id"]
    assert moved.get_json()["phone"] == "+60125550199"


def test_customer_validation_names_each_bad_field(api_a):
    resp = api_a.post(
        "/api/v1/customers",
        json={"name": "X", "phone": "12345", "gender": "robot", "birthday": "1990-13-45"},
    )
    assert_problem(resp, 422, "phone", "gender", "birthday")
    assert_problem(api_a.post("/api/v1/customers", json={"phone": "0125550103"}), 422, "name")


def test_malformed_json_and_wrong_content_type_are_400(api_a):
    resp = api_a.post(
        "/api/v1/customers", data='{"name": "A",', headers={"Content-Type": "application/json"}
    )
    assert_problem(resp, 400)
    resp = api_a.post(
        "/api/v1/customers",
        data="name=A&phone=0125550104",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_problem(resp, 400)
    resp = api_a.post(
        "/api/v1/customers", data="[1, 2]", headers={"Content-Type": "application/json"}
    )
    assert_problem(resp, 400)


def test_customer_of_another_store_is_404(api_a, api_b, world):
    assert api_a.get(f"/api/v1/customers/{world.customer_a.id}").get_json()["name"] == "小红"
    body = assert_problem(api_b.get(f"/api/v1/customers/{world.customer_a.id}"), 404)
    assert "小红" not in str(body)
    assert_problem(api_a.get("/api/v1/customers/999999"), 404)


def test_customers_filter_by_phone_external_id_and_tag(api_a, api_b, world):
    api_a.post(
        "/api/v1/customers",
        json={"external_id": "E1", "name": "Siti", "phone": "0125550105", "tags": ["VIP"]},
    )
    api_a.post(
        "/api/v1/customers", json={"external_id": "E2", "name": "Wei", "phone": "0125550106"}
    )
    by_phone = api_a.get("/api/v1/customers?phone=012 555 0105").get_json()["items"]
    assert [c["name"] for c in by_phone] == ["Siti"]
    by_ext = api_a.get("/api/v1/customers?external_id=E2").get_json()["items"]
    assert [c["name"] for c in by_ext] == ["Wei"]
    by_tag = api_a.get("/api/v1/customers?tag=VIP").get_json()["items"]
    assert [c["name"] for c in by_tag] == ["Siti"]
    assert api_b.get("/api/v1/customers?tag=VIP").get_json()["items"] == []
    assert api_b.get("/api/v1/customers?phone=+60123456789").get_json()["items"] == []
    assert_problem(api_a.get("/api/v1/customers?phone=abc"), 422, "phone")


def test_pagination_follows_next_links_to_the_end(api_a, world):
    for n in range(7):
        make_customer(world.store_a, name=f"Page {n}", phone=f"+6012777{n:04d}")
    seen, url, pages = [], "/api/v1/customers?limit=3", 0
    while url:
        body = api_a.get(url).get_json()
        seen += [c["id"] for c in body["items"]]
        url = body.get("next")
        pages += 1
        assert url is None or (
            "cursor=" in url and "limit=3" in url and url.startswith("/api/v1/customers?")
        )
    total = Customer.select().where(Customer.store == world.store_a.id).count()
    assert total == 9 and pages == 3
    assert sorted(seen) == seen and len(set(seen)) == total
    assert_problem(api_a.get("/api/v1/customers?limit=501"), 422, "limit")
    assert_problem(api_a.get("/api/v1/customers?limit=0"), 422, "limit")
    assert_problem(api_a.get("/api/v1/customers?cursor=not-a-cursor"), 422, "cursor")


def test_default_page_is_fifty(api_a, world):
    Customer.insert_many(
        [
            {"store": world.store_a.id, "name": f"Bulk {n}", "phone": f"+6013888{n:04d}"}
            for n in range(60)
        ]
    ).execute()
    body = api_a.get("/api/v1/customers").get_json()
    assert len(body["items"]) == 50 and body["next"]
    rest = api_a.get(body["next"]).get_json()
    assert len(rest["items"]) == 12 and "next" not in rest


# --- cards ------------------------------------------------------------------------------------


def test_card_product_upsert_and_card_issue(api_a, world):
    resp = api_a.post(
        "/api/v1/card-products",
        json={"sku": "WASH10", "name": "10 washes", "kind": "count", "uses": 10, "price": 250},
    )
    assert resp.status_code == 201 and resp.get_json()["price"] == "250.00"
    resp = api_a.post(
        "/api/v1/card-products",
        json={"sku": "WASH10", "name": "Ten washes", "kind": "count", "uses": 10},
    )
    assert resp.status_code == 200 and resp.get_json()["name"] == "Ten washes"
    resp = api_a.post(
        "/api/v1/cards",
        json={"external_id": "C-1", "customer": {"phone": "012-345 6789"}, "product": "WASH10"},
    )
    assert resp.status_code == 201
    card = resp.get_json()
    assert card["customer"] == world.customer_a.id and card["remaining_uses"] == 10
    again = api_a.post(
        "/api/v1/cards",
        json={"external_id": "C-1", "customer": {"id": world.customer_a.id}, "product": "WASH10"},
    )
    assert again.status_code == 200 and again.get_json()["id"] == card["id"]


def test_card_errors_name_unknown_sku_and_foreign_customer(api_a, world):
    assert_problem(
        api_a.post("/api/v1/card-products", json={"sku": "X", "name": "X", "kind": "gift"}),
        422,
        "kind",
    )
    resp = api_a.post(
        "/api/v1/cards", json={"customer": {"id": world.customer_a.id}, "product": "NOPE"}
    )
    assert_problem(resp, 422, "product")
    resp = api_a.post(
        "/api/v1/cards", json={"customer": {"id": world.customer_b.id}, "product": "NOPE"}
    )
    body = assert_problem(resp, 422, "customer", "product")
    assert "สมหญิง" not in str(body)


# --- events -----------------------------------------------------------------------------------


def test_event_replay_answers_200_with_the_first_result(api_a, world, quiet_engine):
    body = {
        "external_id": "POS-1001",
        "type": "purchase",
        "customer": {"id": world.customer_a.id},
        "occurred_at": "2026-11-20T10:00:00",
        "amount": 120,
        "items": [{"sku": "HAIRCUT", "quantity": 1, "price": 120}],
    }
    first = api_a.post("/api/v1/events", json=body)
    assert first.status_code == 201
    assert (
        first.get_json()["occurred_at"] == "2026-11-20T02:00:00+00:00"
    )  # store time, Asia/Kuala_Lumpur
    replay = api_a.post("/api/v1/events", json={**body, "amount": 999})
    assert replay.status_code == 200
    assert replay.get_json() == first.get_json()
    customer = Customer.get_by_id(world.customer_a.id)
    assert customer.visit_count == 1 and customer.total_spend == Decimal("120.00")
    assert Visit.select().where(Visit.customer == customer.id).count() == 1


def test_event_errors_name_each_bad_field(api_a, api_b, world, quiet_engine):
    resp = api_a.post(
        "/api/v1/events",
        json={
            "external_id": "E-9",
            "type": "teleport",
            "customer": {"phone": "0000"},
            "occurred_at": "yesterday",
            "items": [{"name": "no sku"}],
        },
    )
    assert_problem(resp, 422, "type", "customer", "occurred_at", "items[0].sku")
    resp = api_b.post(
        "/api/v1/events",
        json={
            "external_id": "E-10",
            "type": "visit",
            "customer": {"id": world.customer_a.id},
            "occurred_at": "2026-11-20",
        },
    )
    assert_problem(resp, 422, "customer")


def test_card_used_event_deducts_uses(api_a, world, quiet_engine):
    api_a.post(
        "/api/v1/card-products", json={"sku": "C5", "name": "5 visits", "kind": "count", "uses": 5}
    )
    card = api_a.post(
        "/api/v1/cards",
        json={"external_id": "K-5", "customer": {"id": world.customer_a.id}, "product": "C5"},
    ).get_json()
    resp = api_a.post(
        "/api/v1/events",
        json={
            "external_id": "U-1",
            "type": "card_used",
            "customer": {"id": world.customer_a.id},
            "occurred_at": "2026-11-21T15:00:00+08:00",
            "card": {"external_id": "K-5", "uses": 2},
        },
    )
    assert resp.status_code == 201, resp.get_json()
    from app.models import CustomerCard

    assert CustomerCard.get_by_id(card["id"]).remaining_uses == 3


# --- follow-ups -------------------------------------------------------------------------------


def test_followups_list_with_reasons_and_filters(api_a, api_b, world):
    occurrence = Occurrence.create(
        plan=world.plan_a, key="2026-11-18", scheduled_for=utc(2026, 11, 18, 2)
    )
    make_reason(world.followup_a, world.plan_a, text="Member day", occurrence=occurrence)
    later = make_reason(world.followup_a, world.plan_a, text="Second visit")
    items = api_a.get("/api/v1/followups").get_json()["items"]
    assert [f["id"] for f in items] == [world.followup_a.id, world.followup_a2.id]
    first = items[0]
    assert first["assignee"] == "aisyah@example.test" and first["customer"] == world.customer_a.id
    assert (
        first["plan"] == world.plan_a.id
        and first["status"] == "open"
        and first["script"] == "Hi 小红"
    )
    assert first["reasons"] == [
        {"plan": world.plan_a.id, "occurrence": occurrence.id, "text": "Member day"},
        {
            "plan": world.plan_a.id,
            "occurrence": later.decision.occurrence_id,
            "text": "Second visit",
        },
    ]
    mine = api_a.get("/api/v1/followups?assignee=mei@example.test").get_json()["items"]
    assert [f["id"] for f in mine] == [world.followup_a2.id]
    soon = (world.followup_a.due_at + timedelta(minutes=30)).isoformat()
    due = api_a.get("/api/v1/followups", query_string={"due_before": soon}).get_json()["items"]
    assert [f["id"] for f in due] == [world.followup_a.id]
    assert (
        api_a.get(f"/api/v1/followups?customer={world.customer_a.id}&status=open").get_json()[
            "items"
        ][0]["id"]
        == world.followup_a.id
    )
    assert api_a.get("/api/v1/followups?status=done").get_json()["items"] == []
    assert api_b.get("/api/v1/followups").get_json()["items"] == []
    assert_problem(api_a.get("/api/v1/followups?status=later"), 422, "status")
    assert_problem(api_a.get("/api/v1/followups?due_before=soon"), 422, "due_before")


def test_logging_a_followup_closes_it_for_its_assignee(api_a, world):
    resp = api_a.post(
        f"/api/v1/followups/{world.followup_a.id}/logs",
        json={"outcome": "reached", "note": "Coming Friday", "channel": "whatsapp"},
    )
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["followup"]["status"] == "done" and body["followup"]["outcome"] == "reached"
    assert body["staff"] == "aisyah@example.test"
    log = ContactLog.get(ContactLog.followup == world.followup_a.id)
    assert log.staff_id == world.employee_a.id and log.channel == "whatsapp"
    audit = AuditLog.get(AuditLog.action == "api.followup_logged")
    assert audit.detail["source"] == "api" and audit.object_id == str(log.id)
    again = api_a.post(f"/api/v1/followups/{world.followup_a.id}/logs", json={"outcome": "reached"})
    assert_problem(again, 422, "outcome")


def test_followup_log_errors_and_other_store_404(api_a, api_b, world):
    assert_problem(
        api_b.post(f"/api/v1/followups/{world.followup_a.id}/logs", json={"outcome": "reached"}),
        404,
    )
    assert_problem(
        api_a.post(f"/api/v1/followups/{world.followup_a.id}/logs", json={"outcome": "maybe"}),
        422,
        "outcome",
    )
    assert_problem(
        api_a.post(f"/api/v1/followups/{world.followup_a.id}/logs", json={}), 422, "outcome"
    )
    past = api_a.post(
        f"/api/v1/followups/{world.followup_a.id}/logs",
        json={"outcome": "no_answer", "next_at": "2020-01-01T10:00:00"},
    )
    assert_problem(past, 422, "next_at")
    foreign = api_a.post(
        f"/api/v1/followups/{world.followup_a.id}/logs",
        json={"outcome": "reached", "staff": "somchai@example.test"},
    )
    assert_problem(foreign, 422, "staff")
    assert FollowUp.get_by_id(world.followup_a.id).status == "open"


def test_no_answer_with_next_time_in_store_timezone_keeps_followup_open(api_a, world):
    later = (clock.now() + timedelta(days=2)).astimezone().strftime("%Y-%m-%d") + "T10:00:00"
    resp = api_a.post(
        f"/api/v1/followups/{world.followup_a.id}/logs",
        json={"outcome": "no_answer", "next_at": later},
    )
    assert resp.status_code == 201
    body = resp.get_json()
    assert body["followup"]["status"] == "open"
    assert body["next_at"].endswith("T02:00:00+00:00")


# --- messages ---------------------------------------------------------------------------------


def test_messages_list_with_filters(api_a, api_b, world):
    now = clock.now()
    common = dict(
        store=world.store_a, customer=world.customer_a, plan=world.plan_a, channel="whatsapp"
    )
    sent = Message.create(
        **common, body="Hi 小红", status="sent", idempotency_key="m1", sent_at=now
    )
    Message.create(**common, body="Again", status="failed", idempotency_key="m2")
    Message.create(
        store=world.store_b,
        customer=world.customer_b,
        channel="line",
        body="สวัสดี",
        idempotency_key="m3",
    )
    items = api_a.get("/api/v1/messages").get_json()["items"]
    assert [m["body"] for m in items] == ["Hi 小红", "Again"]
    only_sent = api_a.get("/api/v1/messages?status=sent").get_json()["items"]
    assert len(only_sent) == 1
    item = only_sent[0]
    assert (
        item["id"] == sent.id
        and item["plan"] == world.plan_a.id
        and item["customer"] == world.customer_a.id
    )
    assert (
        item["channel"] == "whatsapp"
        and item["sent_at"]
        and item["created_at"]
        and item["occurrence"] is None
    )
    assert (
        api_a.get(
            f"/api/v1/messages?plan={world.plan_a.id}&customer={world.customer_a.id}"
        ).get_json()["items"][1]["status"]
        == "failed"
    )
    assert [m["body"] for m in api_b.get("/api/v1/messages").get_json()["items"]] == ["สวัสดี"]
    assert_problem(api_a.get("/api/v1/messages?status=lost"), 422, "status")
    assert_problem(api_a.get("/api/v1/messages?plan=x"), 422, "plan")


# --- errors in general ------------------------------------------------------------------------


def test_unknown_api_path_and_method_answer_problem_json(api_a):
    assert_problem(api_a.get("/api/v1/nothing-here"), 404)
    assert_problem(api_a.client.delete("/api/v1/customers", headers=api_a.headers), 405)


def test_event_through_the_plan_engine_is_recorded_once(api_a, world):
    body = {
        "external_id": "POS-2001",
        "type": "service_completed",
        "customer": {"external_id": None, "phone": "+60123456789"},
        "occurred_at": "2026-11-22T11:00:00+08:00",
        "amount": "88.00",
    }
    first = api_a.post("/api/v1/events", json=body)
    assert first.status_code == 201, first.get_json()
    again = api_a.post("/api/v1/events", json=body)
    assert again.status_code == 200 and again.get_json()["id"] == first.get_json()["id"]
    assert Customer.get_by_id(world.customer_a.id).total_spend == Decimal("88.00")


def test_filters_never_reach_into_another_store(api_a, api_b, world):
    assert api_b.get(f"/api/v1/followups?customer={world.customer_a.id}").get_json()["items"] == []
    assert api_b.get(f"/api/v1/followups?plan={world.plan_a.id}").get_json()["items"] == []
    assert api_b.get(f"/api/v1/messages?customer={world.customer_a.id}").get_json()["items"] == []
    assert api_b.get("/api/v1/customers?external_id=").get_json()["items"][0]["name"] == "สมหญิง"


def test_customer_list_items_match_the_single_customer_form(api_a, world):
    created = api_a.post(
        "/api/v1/customers",
        json={
            "external_id": "FULL-1",
            "name": "Lim Full",
            "phone": "0125550150",
            "gender": "male",
            "birthday": "1985-07-01",
            "source": "walk-in",
            "level": "gold",
            "tags": ["VIP", "Car"],
            "attributes": {"car_type": "suv", "plate": "WXY 123"},
            "consent": {"whatsapp": True, "sms": False},
            "assigned_staff": "mei@example.test",
            "email": "lim@example.test",
            "line_id": "limfull",
            "joined_at": "2024-01-05T09:00:00",
        },
    ).get_json()
    one = api_a.get(f"/api/v1/customers/{created['id']}").get_json()
    listed = api_a.get("/api/v1/customers?external_id=FULL-1").get_json()["items"]
    assert listed == [one] == [created]
    everyone = api_a.get("/api/v1/customers").get_json()["items"]
    for item in everyone:
        assert item == api_a.get(f"/api/v1/customers/{item['id']}").get_json()


def test_ids_beyond_any_column_are_not_found_not_a_crash(api_a, world, quiet_engine):
    assert_problem(api_a.get("/api/v1/customers/9223372036854775808"), 404)
    assert_problem(api_a.get("/api/v1/plans/2147483648"), 404)
    resp = api_a.post(
        "/api/v1/events",
        json={
            "external_id": "BIG-1",
            "type": "card_used",
            "customer": {"id": world.customer_a.id},
            "occurred_at": "2026-11-20",
            "card": {"id": 9223372036854775808, "uses": 1},
        },
    )
    assert_problem(resp, 422, "card")
