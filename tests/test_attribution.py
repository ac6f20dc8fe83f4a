"""Return attribution recorded when the visit or booking arrives, read back by the dashboard."""

from decimal import Decimal

import pytest

from app.models import ContactLog, Decision, FollowUp, Message, Occurrence, Plan
from app.services import events, reports
from tests.factories import make_customer, make_staff, make_store, utc

NOW = utc(2026, 11, 28, 4, 0)
START, END = utc(2026, 11, 1), utc(2026, 12, 1)
_seq = iter(range(1, 10_000))


@pytest.fixture
def salon(app):
    """A store with a 14-day-window plan, a holdout plan, and one employee."""
    store = make_store("kl")
    staff = make_staff("employee", [store], name="Aisyah")
    plan = Plan.create(
        store=store,
        name="Second visit",
        template="second_visit",
        type="behaviour",
        status="active",
        window_days=14,
    )
    holdout = Plan.create(
        store=store,
        name="Birthday",
        template="birthday",
        type="recurring",
        status="active",
        window_days=7,
        holdout_percent=10,
    )
    return dict(store=store, staff=staff, plan=plan, holdout=holdout)


def contacted(salon, at, status="done"):
    """A follow-up completed (with its contact log) at `at` for a new customer."""
    customer = make_customer(salon["store"])
    f = FollowUp.create(
        store=salon["store"],
        customer=customer,
        plan=salon["plan"],
        assignee=salon["staff"],
        due_at=at,
        status=status,
        completed_at=at if status == "done" else None,
        open_customer=None,
        created_at=at,
        updated_at=at,
    )
    if status == "done":
        ContactLog.create(
            followup=f, customer=customer, staff=salon["staff"], outcome="reached", at=at
        )
    return f


def event(store, customer, when, type_="visit", amount=None, **kw):
    body = {
        "external_id": f"e{next(_seq)}",
        "type": type_,
        "customer": {"id": customer.id},
        "occurred_at": when.isoformat(),
    }
    if amount is not None:
        body["amount"] = amount
    return events.record_event(store, body, NOW, **kw)[0]


def returns(salon):
    return reports.dashboard(salon["store"], START, END, NOW)["returns"]


def test_visit_inside_the_window_marks_the_followup_returned_with_its_amount(salon):
    f = contacted(salon, utc(2026, 11, 6, 2))
    event(salon["store"], f.customer, utc(2026, 11, 10, 3), amount="100.00")
    f = FollowUp.get_by_id(f.id)
    assert f.returned_at == utc(2026, 11, 10, 3)
    assert f.return_revenue == Decimal("100.00")
    assert returns(salon) == {"contacts": 1, "returns": 1, "revenue": Decimal("100.00")}


def test_visit_after_the_window_or_before_the_contact_does_not_count(salon):
    late = contacted(salon, utc(2026, 11, 2, 2))
    event(salon["store"], late.customer, utc(2026, 11, 17, 3), amount="50.00")  # day 15
    early = contacted(salon, utc(2026, 11, 12, 2))
    event(salon["store"], early.customer, utc(2026, 11, 11, 3), amount="50.00")
    assert FollowUp.get_by_id(late.id).returned_at is None
    assert FollowUp.get_by_id(early.id).returned_at is None
    assert returns(salon) == {"contacts": 2, "returns": 0, "revenue": Decimal("0.00")}


def test_second_visit_adds_revenue_but_not_a_second_return(salon):
    f = contacted(salon, utc(2026, 11, 6, 2))
    event(salon["store"], f.customer, utc(2026, 11, 8, 3), amount="40.00")
    event(salon["store"], f.customer, utc(2026, 11, 8, 5), "purchase", amount="10.00")  # same day
    event(salon["store"], f.customer, utc(2026, 11, 15, 3), amount="25.00")
    f = FollowUp.get_by_id(f.id)
    assert f.returned_at == utc(2026, 11, 8, 3)
    assert returns(salon) == {"contacts": 1, "returns": 1, "revenue": Decimal("75.00")}


def test_the_same_event_sent_twice_is_counted_once(salon):
    f = contacted(salon, utc(2026, 11, 6, 2))
    body = {
        "external_id": "pos-1",
        "type": "purchase",
        "customer": {"id": f.customer_id},
        "occurred_at": utc(2026, 11, 9).isoformat(),
        "amount": "60.00",
    }
    events.record_event(salon["store"], body, NOW)
    events.record_event(salon["store"], body, NOW)
    assert returns(salon) == {"contacts": 1, "returns": 1, "revenue": Decimal("60.00")}


def test_booking_in_the_window_is_a_return_without_revenue(salon):
    f = contacted(salon, utc(2026, 11, 6, 2))
    event(salon["store"], f.customer, utc(2026, 11, 7), "appointment_booked")
    assert FollowUp.get_by_id(f.id).returned_at == utc(2026, 11, 7)
    assert returns(salon) == {"contacts": 1, "returns": 1, "revenue": Decimal("0.00")}


def test_imported_history_that_does_not_trigger_plans_still_counts(salon):
    """A visit is a fact: history imported with "do not trigger plans" brings contacts back too
    (plans themselves do not react to it)."""
    f = contacted(salon, utc(2026, 11, 6, 2))
    event(
        salon["store"],
        f.customer,
        utc(2026, 11, 9),
        "purchase",
        amount="30.00",
        source="import",
        triggers_plans=False,
    )
    assert returns(salon) == {"contacts": 1, "returns": 1, "revenue": Decimal("30.00")}


def test_withdrawn_or_open_followups_are_not_contacts(salon):
    withdrawn = contacted(salon, utc(2026, 11, 6, 2), status="withdrawn")
    event(salon["store"], withdrawn.customer, utc(2026, 11, 9), amount="30.00")
    assert FollowUp.get_by_id(withdrawn.id).returned_at is None
    assert returns(salon) == {"contacts": 0, "returns": 0, "revenue": Decimal("0.00")}


def test_message_and_holdout_decisions_are_attributed_when_the_visit_arrives(salon):
    store, plan = salon["store"], salon["holdout"]
    occ = Occurrence.create(plan=plan, key="d1", scheduled_for=utc(2026, 11, 3))
    sent, held, ignored = make_customer(store), make_customer(store), make_customer(store)
    message = Message.create(
        store=store,
        customer=sent,
        plan=plan,
        channel="sms",
        body="Hi",
        status="delivered",
        idempotency_key="m1",
        sent_at=utc(2026, 11, 3, 2),
        delivered_at=utc(2026, 11, 3, 2),
    )
    for customer, outcome in ((sent, "message"), (held, "held_out"), (ignored, "skipped")):
        Decision.create(
            plan=plan,
            occurrence=occ,
            customer=customer,
            dedupe_key="k",
            outcome=outcome,
            created_at=utc(2026, 11, 3, 1),
        )
    for customer in (sent, held, ignored):
        event(store, customer, utc(2026, 11, 5), amount="20.00")
    assert Message.get_by_id(message.id).return_revenue == Decimal("20.00")
    assert returns(salon) == {"contacts": 1, "returns": 1, "revenue": Decimal("20.00")}
    decisions = {d.outcome: d.returned_at for d in Decision.select()}
    assert decisions == {"message": utc(2026, 11, 5), "held_out": utc(2026, 11, 5), "skipped": None}
    rows = reports.lift_customers(store, START, END, plan.id, "held_out")
    assert [(r["customer"], r["returned"]) for r in rows] == [(held.id, True)]


def test_event_time_attribution_matches_a_full_recount(salon):
    """Whatever order the events came in, recounting from the facts gives the same flags."""
    followups = [contacted(salon, utc(2026, 11, d, 2)) for d in (2, 5, 9)]
    for f in followups:
        event(salon["store"], f.customer, utc(2026, 11, 12, 9), amount="15.00")
        event(salon["store"], f.customer, utc(2026, 11, 12, 1), "purchase", amount="5.00")
    before = [(f.returned_at, f.return_revenue) for f in FollowUp.select().order_by(FollowUp.id)]
    FollowUp.update(returned_at=None, return_revenue=None).execute()
    reports.attribute_returns(salon["store"])
    after = [(f.returned_at, f.return_revenue) for f in FollowUp.select().order_by(FollowUp.id)]
    assert after == before
    assert [r[1] for r in after] == [Decimal("20.00")] * 3


def test_returned_drill_down_lists_the_customers_behind_the_figure(salon):
    back = contacted(salon, utc(2026, 11, 6, 2))
    contacted(salon, utc(2026, 11, 6, 2))  # never came back
    event(salon["store"], back.customer, utc(2026, 11, 10), amount="100.00")
    rows = reports.returned_contacts(salon["store"], START, END, None, salon["staff"].id)
    assert [(r["customer"], r["amount"]) for r in rows] == [(back.customer_id, Decimal("100.00"))]


def test_nightly_recount_finds_a_visit_recorded_before_its_contact(salon):
    """A back-dated contact (an engine run for an earlier instant) lands after the visit it
    covers was recorded: the per-event recount never saw it, the nightly one does."""
    from unittest import mock

    from app.tasks import report_jobs

    customer = make_customer(salon["store"])
    event(salon["store"], customer, utc(2026, 11, 10, 3), amount="70.00")
    f = FollowUp.create(
        store=salon["store"],
        customer=customer,
        plan=salon["plan"],
        assignee=salon["staff"],
        due_at=utc(2026, 11, 6),
        status="done",
        completed_at=utc(2026, 11, 6, 2),
        created_at=utc(2026, 11, 6),
        updated_at=utc(2026, 11, 6),
    )
    assert FollowUp.get_by_id(f.id).returned_at is None
    with mock.patch("app.clock.now", return_value=utc(2026, 11, 20, 12)):  # 20:00 in KL
        assert report_jobs.nightly_return_recount.call_local() == {}
    with mock.patch("app.clock.now", return_value=utc(2026, 11, 20, 19, 40)):  # 03:40 in KL
        assert report_jobs.nightly_return_recount.call_local()["kl"]["follow_up"] == 1
    assert FollowUp.get_by_id(f.id).returned_at == utc(2026, 11, 10, 3)
    assert returns(salon)["revenue"] == Decimal("70.00")
