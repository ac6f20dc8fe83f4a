"""Cards (products, issue, use, top-up) and events (idempotent, visits, aggregates)."""

import threading
from datetime import date
from decimal import Decimal

import pytest

from app.models import CardLedger, CardProduct, Customer, CustomerCard, Event, EventItem, Visit
from app.services import cards, events, hooks
from app.services.validation import ValidationError
from tests.factories import make_card, make_customer, make_staff, make_store, utc
from tests.test_customers_service import empty_tables

NOW = utc(2026, 11, 24, 4, 0)


@pytest.fixture
def app(schema):
    """Empty tables and an open connection; these services need no Flask app."""
    empty_tables(schema)
    with schema.connection_context():
        yield schema


@pytest.fixture
def fired(monkeypatch):
    """Record the events handed to the plan engine's hook instead of running the engine."""
    calls = []
    monkeypatch.setattr(hooks, "after_event", lambda event, now: calls.append(event.external_id))
    return calls


def event_body(customer, external_id, occurred_at, type_="visit", **extra):
    body = {
        "external_id": external_id,
        "type": type_,
        "customer": {"id": customer.id},
        "occurred_at": occurred_at,
    }
    body.update(extra)
    return body


def test_upsert_product_creates_then_updates_by_sku(app):
    store = make_store()
    product, created = cards.upsert_product(
        store, {"sku": "LASH10", "name": "Lash refill x10", "kind": "count", "uses": 10}, NOW
    )
    assert created and product.uses == 10
    again, created = cards.upsert_product(
        store, {"sku": "LASH10", "name": "Lash refill x10", "price": "450", "valid_days": 365}, NOW
    )
    assert not created and again.id == product.id
    assert again.price == Decimal("450.00") and again.valid_days == 365
    assert CardProduct.select().count() == 1


def test_upsert_product_lists_every_bad_field(app):
    store = make_store()
    with pytest.raises(ValidationError) as info:
        cards.upsert_product(store, {"sku": "X", "kind": "magic", "price": "abc", "uses": 0}, NOW)
    assert {e["field"] for e in info.value.errors} == {"name", "kind", "price", "uses"}
    assert CardProduct.select().count() == 0


def test_issue_card_takes_defaults_from_product_and_writes_ledger(app):
    store = make_store(timezone="Asia/Kuala_Lumpur")
    make_customer(store, phone="+60123456789")
    cards.upsert_product(
        store,
        {"sku": "CAT3", "name": "Deworming x3", "kind": "count", "uses": 3, "valid_days": 30},
        NOW,
    )
    # 2026-11-24 20:00 UTC is already the 25th in Kuala Lumpur.
    card = cards.issue_card(
        store,
        {
            "customer": {"phone": "012-345 6789"},
            "product": "CAT3",
            "issued_at": "2026-11-24T20:00:00Z",
        },
        NOW,
    )
    assert card.remaining_uses == 3
    assert card.expires_on == date(2026, 12, 25)
    ledger = CardLedger.get(CardLedger.card == card.id)
    assert (ledger.kind, ledger.delta_uses, ledger.uses_after) == ("issue", 3, 3)
    data = cards.card_dict(card)
    assert data["product"] == "CAT3" and data["kind"] == "count"


def test_issue_card_is_idempotent_on_external_id(app):
    store = make_store()
    customer = make_customer(store)
    cards.upsert_product(
        store, {"sku": "SV", "name": "Stored 500", "kind": "stored_value", "value": 500}, NOW
    )
    body = {"external_id": "C-1", "customer": {"id": customer.id}, "product": "SV"}
    first = cards.issue_card(store, body, NOW)
    second = cards.issue_card(store, body, NOW)
    assert first.id == second.id
    assert first.balance == Decimal("500.00")
    assert CustomerCard.select().count() == 1 and CardLedger.select().count() == 1


def test_issue_card_reports_unknown_product_and_customer_of_other_store(app):
    store, other = make_store(), make_store()
    theirs = make_customer(other)
    with pytest.raises(ValidationError) as info:
        cards.issue_card(store, {"customer": {"id": theirs.id}, "product": "NOPE"}, NOW)
    fields = {e["field"]: e["message"] for e in info.value.errors}
    assert fields["product"] == "unknown card product 'NOPE'"
    assert "in this store" in fields["customer"]
    assert CustomerCard.select().count() == 0


def test_use_count_card_deducts_uses_and_marks_used_up_at_zero(app):
    store = make_store()
    card = make_card(make_customer(store), "count", remaining_uses=2)
    card = cards.use_card(card, NOW)
    assert card.remaining_uses == 1 and card.status == "active"
    card = cards.use_card(card, NOW)
    assert card.remaining_uses == 0 and card.status == "used_up"
    with pytest.raises(ValidationError) as info:
        cards.use_card(card, NOW)
    assert "used up" in str(info.value)
    assert [r.uses_after for r in CardLedger.select().order_by(CardLedger.id)] == [1, 0]


def test_use_card_refuses_overdraw_and_says_what_is_left(app):
    store = make_store()
    card = make_card(make_customer(store), "count", remaining_uses=2)
    with pytest.raises(ValidationError) as info:
        cards.use_card(card, NOW, uses=3)
    assert "only 2 uses left" in info.value.errors[0]["message"]
    assert CustomerCard.get_by_id(card.id).remaining_uses == 2
    assert CardLedger.select().count() == 0


def test_stored_value_card_deducts_balance_and_refuses_more_than_balance(app):
    store = make_store()
    card = make_card(make_customer(store), "stored_value", balance=Decimal("100"))
    card = cards.use_card(card, NOW, amount=Decimal("30.50"))
    assert card.balance == Decimal("69.50")
    with pytest.raises(ValidationError) as info:
        cards.use_card(card, NOW, amount=Decimal("70"))
    assert "69.50" in str(info.value)
    card = cards.use_card(card, NOW, amount=Decimal("69.50"))
    assert card.status == "used_up"
    card = cards.top_up(card, Decimal("200"), NOW)
    assert card.balance == Decimal("200.00") and card.status == "active"
    kinds = [(r.kind, r.delta_balance) for r in CardLedger.select().order_by(CardLedger.id)]
    assert kinds == [
        ("use", Decimal("-30.50")),
        ("use", Decimal("-69.50")),
        ("top_up", Decimal("200.00")),
    ]


def test_expired_card_is_refused(app):
    store = make_store()
    card = make_card(make_customer(store), "count", expires_on=date(2026, 11, 1))
    with pytest.raises(ValidationError) as info:
        cards.use_card(card, NOW)
    assert "expired on 2026-11-01" in str(info.value)


def test_concurrent_use_of_last_use_lets_only_one_succeed(app):
    store = make_store()
    card = make_card(make_customer(store), "count", remaining_uses=1)
    database = app
    barrier = threading.Barrier(2)
    outcomes = []

    def use():
        with database.connection_context():
            barrier.wait()
            try:
                cards.use_card(card, NOW)
                outcomes.append("ok")
            except ValidationError:
                outcomes.append("refused")

    threads = [threading.Thread(target=use) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok", "refused"]
    assert CustomerCard.get_by_id(card.id).remaining_uses == 0
    assert CardLedger.select().count() == 1


def test_same_external_id_twice_is_one_event_and_changes_nothing(app, fired):
    store = make_store()
    customer = make_customer(store)
    body = event_body(customer, "POS-1", "2026-11-20T10:00:00", "purchase", amount="120.00")
    first, created = events.record_event(store, body, NOW)
    second, created_again = events.record_event(store, dict(body, amount="999"), NOW)
    assert created and not created_again
    assert first.id == second.id
    customer = Customer.get_by_id(customer.id)
    assert customer.total_spend == Decimal("120.00") and customer.visit_count == 1
    assert Event.select().count() == 1
    assert fired == ["POS-1"]


def test_history_events_do_not_reach_the_plan_engine(app, fired):
    store = make_store()
    customer = make_customer(store)
    event, created = events.record_event(
        store, event_body(customer, "H-1", "2025-01-01T10:00:00"), NOW, triggers_plans=False
    )
    assert created and event.triggers_plans is False
    assert fired == []


def test_events_on_one_local_day_are_one_visit_and_midnight_splits_days(app, fired):
    store = make_store(timezone="Asia/Kuala_Lumpur")
    customer = make_customer(store)
    events.record_event(store, event_body(customer, "a", "2026-11-20T10:00:00"), NOW)
    events.record_event(
        store, event_body(customer, "b", "2026-11-20T15:00:00", "purchase", amount="50"), NOW
    )
    events.record_event(store, event_body(customer, "c", "2026-11-20T23:30:00"), NOW)
    events.record_event(store, event_body(customer, "d", "2026-11-21T00:30:00"), NOW)
    # Booking an appointment is not a visit.
    events.record_event(
        store,
        event_body(
            customer,
            "e",
            "2026-11-22T09:00:00",
            "appointment_booked",
            appointment_at="2026-12-01T10:00",
        ),
        NOW,
    )
    customer = Customer.get_by_id(customer.id)
    assert customer.visit_count == 2
    assert sorted(v.day for v in Visit.select()) == [date(2026, 11, 20), date(2026, 11, 21)]
    assert customer.last_visit_at == utc(2026, 11, 20, 16, 30)
    assert customer.total_spend == Decimal("50.00")


def test_out_of_order_events_keep_first_and_last_visit_right(app, fired):
    store = make_store(timezone="Asia/Kuala_Lumpur")
    customer = make_customer(store)
    events.record_event(store, event_body(customer, "new", "2026-10-01T10:00:00+08:00"), NOW)
    events.record_event(store, event_body(customer, "old", "2025-03-01T10:00:00+08:00"), NOW)
    events.record_event(store, event_body(customer, "mid", "2026-01-01T10:00:00+08:00"), NOW)
    customer = Customer.get_by_id(customer.id)
    assert customer.last_visit_at == utc(2026, 10, 1, 2, 0)
    assert customer.first_visit_at == utc(2025, 3, 1, 2, 0)
    assert customer.visit_count == 3


def test_refund_reduces_total_spend(app, fired):
    store = make_store()
    customer = make_customer(store)
    events.record_event(
        store, event_body(customer, "p", "2026-11-20T10:00", "purchase", amount="200"), NOW
    )
    events.record_event(
        store, event_body(customer, "r", "2026-11-21T10:00", "refund", amount="50"), NOW
    )
    assert Customer.get_by_id(customer.id).total_spend == Decimal("150.00")
    assert Event.get(Event.external_id == "r").amount == Decimal("-50.00")


def test_card_used_event_deducts_card_and_links_ledger(app, fired):
    store = make_store()
    customer = make_customer(store)
    staff = make_staff("employee", [store], email="mei@example.test")
    card = make_card(customer, "count", remaining_uses=3, external_id="CARD-7")
    event, _ = events.record_event(
        store,
        event_body(
            customer,
            "use-1",
            "2026-11-20T10:00:00",
            "card_used",
            card={"external_id": "CARD-7", "uses": 2},
            staff="mei@example.test",
        ),
        NOW,
    )
    assert CustomerCard.get_by_id(card.id).remaining_uses == 1
    ledger = CardLedger.get(CardLedger.card == card.id)
    assert ledger.event_id == event.id and ledger.delta_uses == -2
    assert Visit.get().staff_id == staff.id
    assert events.event_dict(event)["staff"] == "mei@example.test"


def test_card_used_event_refusing_overdraw_writes_nothing(app, fired):
    store = make_store()
    customer = make_customer(store)
    card = make_card(customer, "count", remaining_uses=2)
    with pytest.raises(ValidationError) as info:
        events.record_event(
            store,
            event_body(
                customer, "x", "2026-11-20T10:00", "card_used", card={"id": card.id, "uses": 3}
            ),
            NOW,
        )
    assert "only 2 uses left" in str(info.value)
    assert Event.select().count() == 0 and Visit.select().count() == 0
    assert Customer.get_by_id(customer.id).visit_count == 0
    assert fired == []


def test_top_up_event_adds_to_stored_value_card(app, fired):
    store = make_store()
    customer = make_customer(store)
    card = make_card(customer, "stored_value", balance=Decimal("10"))
    events.record_event(
        store,
        event_body(customer, "t", "2026-11-20T10:00", "top_up", amount="300", card={"id": card.id}),
        NOW,
    )
    assert CustomerCard.get_by_id(card.id).balance == Decimal("310.00")
    assert Visit.select().count() == 0


def test_event_validation_names_each_bad_field_and_writes_nothing(app, fired):
    store, other = make_store(), make_store()
    theirs = make_customer(other)
    with pytest.raises(ValidationError) as info:
        events.record_event(
            store,
            {
                "external_id": "bad",
                "type": "teleport",
                "customer": {"id": theirs.id},
                "occurred_at": "yesterday-ish",
                "amount": "lots",
                "items": [{"sku": "A1"}, {"name": "no sku"}, {"sku": "B", "quantity": 0}],
                "staff": "ghost@example.test",
            },
            NOW,
        )
    fields = {e["field"] for e in info.value.errors}
    assert fields == {
        "type",
        "customer",
        "occurred_at",
        "amount",
        "items[1].sku",
        "items[2].quantity",
        "staff",
    }
    assert Event.select().count() == 0


def test_event_requires_external_id(app, fired):
    store = make_store()
    customer = make_customer(store)
    with pytest.raises(ValidationError) as info:
        events.record_event(store, {"type": "visit", "customer": {"id": customer.id}}, NOW)
    assert {e["field"] for e in info.value.errors} == {"external_id", "occurred_at"}


def test_event_items_are_stored_with_the_customer(app, fired):
    store = make_store()
    customer = make_customer(store)
    event, _ = events.record_event(
        store,
        event_body(
            customer,
            "p1",
            "2026-11-20T10:00",
            "purchase",
            items=[{"sku": "LIP", "name": "Lipstick", "quantity": 2, "price": "35.5"}],
        ),
        NOW,
    )
    item = EventItem.get()
    assert (item.customer_id, item.sku, item.quantity, item.price) == (
        customer.id,
        "LIP",
        2,
        Decimal("35.50"),
    )
    assert event.items == [{"sku": "LIP", "name": "Lipstick", "quantity": 2, "price": "35.50"}]


def test_same_external_id_in_two_stores_is_two_events(app, fired):
    one, two = make_store(), make_store()
    a, b = make_customer(one), make_customer(two)
    events.record_event(one, event_body(a, "E", "2026-11-20T10:00"), NOW)
    _, created = events.record_event(two, event_body(b, "E", "2026-11-20T10:00"), NOW)
    assert created and Event.select().count() == 2
