"""Points follow recorded events end to end: record_event → hooks.after_event → loyalty."""

from app.models import Customer, PointsEntry
from app.services import events
from tests.factories import make_customer, make_store, utc

NOW = utc(2026, 11, 24, 3, 0)


def _post(store, customer, external_id, type_="purchase", amount="120"):
    return events.record_event(
        store,
        {
            "external_id": external_id,
            "type": type_,
            "customer": {"id": customer.id},
            "occurred_at": "2026-11-24T10:00:00",
            "amount": amount,
        },
        NOW,
    )


def test_a_recorded_purchase_earns_points_once(app):
    store = make_store("kl")
    customer = make_customer(store)
    _post(store, customer, "ORDER-1001")
    _post(store, customer, "ORDER-1001")
    assert Customer.get_by_id(customer.id).points == 120
    assert PointsEntry.select().where(PointsEntry.kind == "earn").count() == 1


def test_a_recorded_refund_naming_its_order_reverses_exactly_its_points(app):
    store = make_store("kl")
    customer = make_customer(store)
    _post(store, customer, "ORDER-1", amount="80")
    _post(store, customer, "ORDER-2", amount="45.50")
    _post(store, customer, "refund:ORDER-2", type_="refund", amount="-45.50")
    assert Customer.get_by_id(customer.id).points == 80


def test_a_cancelled_order_posted_without_an_amount_takes_back_all_its_points(app):
    store = make_store("kl")
    customer = make_customer(store)
    _post(store, customer, "ORDER-1", amount="80")
    _post(store, customer, "ORDER-2", amount="45.50")
    _post(store, customer, "ORDER-1:refund", type_="refund", amount=None)
    assert Customer.get_by_id(customer.id).points == 45


def test_a_recorded_partial_refund_takes_back_only_its_share(app):
    store = make_store("kl")
    customer = make_customer(store)
    _post(store, customer, "ORDER-1", amount="200")
    _post(store, customer, "refund:ORDER-1", type_="refund", amount="50")
    _post(store, customer, "refund:ORDER-1", type_="refund", amount="50")  # a retry
    assert Customer.get_by_id(customer.id).points == 150
