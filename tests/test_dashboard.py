"""The manager's dashboard: every figure matches a hand count on a known set of work."""

from datetime import date
from decimal import Decimal

import pytest

from app.models import (
    CardProduct,
    ContactLog,
    CustomerCard,
    Decision,
    Event,
    FollowUp,
    Message,
    Occurrence,
    Plan,
    Visit,
)
from app.services import reports
from tests.factories import login, make_customer, make_staff, make_store, utc

# Tuesday 24 November 2026, 20:00 in Kuala Lumpur (UTC+8).
NOW = utc(2026, 11, 24, 12, 0)
START, END = utc(2026, 11, 1), utc(2026, 12, 1)
_seq = iter(range(1, 10_000))


def visit(customer, when, amount="0"):
    Visit.create(
        customer=customer, store=customer.store_id, day=when.date(), first_at=when, amount=amount
    )


def followup(store, plan, who, due, status="open", done_at=None, outcome=None, updated=None):
    customer = make_customer(store)
    f = FollowUp.create(
        store=store,
        customer=customer,
        plan=plan,
        assignee=who,
        due_at=due,
        status=status,
        open_customer=customer.id if status == "open" else None,
        completed_at=done_at,
        created_at=utc(2026, 10, 30),
        updated_at=updated or due,
    )
    if outcome:
        ContactLog.create(
            followup=f, customer=customer, staff=who, outcome=outcome, at=done_at or due
        )
    return f


def occurrence(plan, when, status="done"):
    return Occurrence.create(plan=plan, key=f"k{next(_seq)}", scheduled_for=when, status=status)


def decision(plan, occ, outcome, when, reason=""):
    customer = make_customer(plan.store)
    Decision.create(
        plan=plan,
        occurrence=occ,
        customer=customer,
        dedupe_key=f"d{next(_seq)}",
        outcome=outcome,
        reason=reason,
        created_at=when,
        updated_at=when,
    )
    return customer


def card(store, kind, expires_on, balance=None, uses=None, price=None, left=None, **kw):
    product = CardProduct.create(
        store=store, sku=f"sku{next(_seq)}", name="Card", kind=kind, price=price, uses=uses
    )
    return CustomerCard.create(
        store=store,
        customer=make_customer(store),
        product=product,
        balance=balance,
        remaining_uses=left,
        expires_on=expires_on,
        **kw,
    )


@pytest.fixture
def seeded(app):
    """A salon's November: two employees, two plans, messages, a holdout and expiring cards."""
    store = make_store("kl", timezone="Asia/Kuala_Lumpur", currency="MYR")
    other = make_store("bkk", timezone="Asia/Bangkok")
    e1 = make_staff("employee", [store], name="Aisyah")
    e2 = make_staff("employee", [store], name="Mei Ling")
    manager = make_staff("manager", [store], name="Farah")
    p = Plan.create(
        store=store,
        name="Second visit",
        template="second_visit",
        type="behaviour",
        status="active",
        window_days=14,
        holdout_percent=10,
    )
    q = Plan.create(
        store=store,
        name="Birthday",
        template="birthday",
        type="recurring",
        status="active",
        window_days=7,
    )
    f1 = followup(store, p, e1, utc(2026, 11, 5), "done", utc(2026, 11, 6), "reached")
    visit(f1.customer, utc(2026, 11, 10, 3), "100.00")
    f2 = followup(store, p, e1, utc(2026, 11, 7), "done", utc(2026, 11, 8), "booked")
    Event.create(
        store=store,
        customer=f2.customer,
        external_id="b1",
        type="appointment_booked",
        occurred_at=utc(2026, 11, 12),
    )
    followup(store, p, e2, utc(2026, 11, 10))  # open, overdue
    f4 = followup(store, q, e2, utc(2026, 11, 11), "done", utc(2026, 11, 11, 5), "reached")
    visit(f4.customer, utc(2026, 11, 20), "80.00")  # after the 7-day window
    followup(store, q, e1, utc(2026, 11, 20), "withdrawn", updated=utc(2026, 11, 20))
    followup(store, p, e2, utc(2026, 12, 2))  # due after the period
    followup(store, p, None, utc(2026, 11, 1, 1), "done", utc(2026, 11, 2), "no_answer")
    # another store's work never shows
    followup(
        other,
        Plan.create(store=other, name="X", template="t", type="behaviour"),
        None,
        utc(2026, 11, 5),
    )
    m1 = make_customer(store)
    Message.create(
        store=store,
        customer=m1,
        plan=q,
        channel="sms",
        body="Hi",
        status="delivered",
        idempotency_key="m1",
        sent_at=utc(2026, 11, 15),
        delivered_at=utc(2026, 11, 15),
    )
    visit(m1, utc(2026, 11, 18), "50.50")
    Message.create(
        store=store,
        customer=make_customer(store),
        plan=q,
        channel="sms",
        body="Hi",
        status="failed",
        idempotency_key="m2",
        created_at=utc(2026, 11, 16),
    )
    occ = occurrence(p, utc(2026, 11, 3))
    for i in range(25):
        c = decision(p, occ, "followup", utc(2026, 11, 3))
        if i < 10:
            visit(c, utc(2026, 11, 5))
    for i in range(20):
        c = decision(p, occ, "held_out", utc(2026, 11, 3))
        if i < 4:
            visit(c, utc(2026, 11, 6))
    decision(p, occ, "withdrawn", utc(2026, 11, 20), "Booked (appointment_booked at …)")
    decision(p, occ, "withdrawn", utc(2026, 11, 20), "Bought (purchase at …)")
    occurrence(q, utc(2026, 11, 9), "missed")
    occurrence(q, utc(2026, 10, 1), "missed")
    card(store, "stored_value", date(2026, 12, 10), balance="200.00")
    card(store, "count", date(2027, 1, 10), uses=10, price="500.00", left=4)
    card(store, "stored_value", date(2027, 2, 15), balance="80.00")
    card(store, "stored_value", date(2026, 11, 1), balance="999.00")
    card(store, "stored_value", date(2026, 12, 1), balance="999.00", status="cancelled")
    # The rows above were written directly, not through events: record their returns the way
    # the migration backfills existing data.
    reports.attribute_returns(store)
    return dict(store=store, e1=e1, e2=e2, manager=manager, p=p, q=q)


def test_dashboard_figures_match_a_hand_count(seeded):
    d = reports.dashboard(seeded["store"], START, END, NOW)
    staff = {s["name"]: s for s in d["staff"]}
    assert staff["Aisyah"]["followups"] == dict(due=2, done=2, rate=100, overdue=0, withdrawn=1)
    assert staff["Mei Ling"]["followups"] == dict(due=2, done=1, rate=50, overdue=1, withdrawn=0)
    assert d["queue"]["due"] == 1 and d["queue"]["done"] == 1
    assert d["totals"] == dict(due=5, done=4, rate=80, overdue=1, withdrawn=1)
    plans = {p["name"]: p for p in d["plans"]}
    assert plans["Second visit"]["followups"]["due"] == 4
    assert plans["Second visit"]["followups"]["done"] == 3
    assert plans["Birthday"]["followups"] == dict(due=1, done=1, rate=100, overdue=0, withdrawn=1)
    assert d["outcomes"] == {"reached": 2, "booked": 1, "no_answer": 1}
    assert d["returns"] == {"contacts": 5, "returns": 3, "revenue": Decimal("150.50")}
    assert plans["Second visit"]["returns"] == {
        "contacts": 3,
        "returns": 2,
        "revenue": Decimal("100.00"),
    }
    assert plans["Birthday"]["returns"] == {
        "contacts": 2,
        "returns": 1,
        "revenue": Decimal("50.50"),
    }
    assert staff["Aisyah"]["returns"]["returns"] == 2
    assert staff["Mei Ling"]["returns"] == {"contacts": 1, "returns": 0, "revenue": Decimal("0")}
    assert d["withdrawn_booked"] == 1 and plans["Second visit"]["withdrawn_booked"] == 1
    assert d["missed"] == 1 and plans["Birthday"]["missed"] == 1
    assert d["at_risk"] == [
        {"days": 30, "value": Decimal("200.00"), "cards": 1},
        {"days": 60, "value": Decimal("400.00"), "cards": 2},
        {"days": 90, "value": Decimal("480.00"), "cards": 3},
    ]


def test_lift_compares_contacted_with_held_out_clients(seeded):
    d = reports.dashboard(seeded["store"], START, END, NOW)
    plans = {p["name"]: p for p in d["plans"]}
    lift = plans["Second visit"]["lift"]
    assert lift["contacted"] == [10, 25] and lift["held_out"] == [4, 20]
    assert lift["interval"] == {
        "per_100": 20,
        "low": -6,
        "high": 46,
        "contacted_rate": 40.0,
        "held_out_rate": 20.0,
    }
    assert plans["Birthday"]["lift"] is None


def test_lift_says_not_enough_data_below_twenty_on_a_side():
    assert reports.lift_interval(5, 19, 1, 40) is None
    assert reports.lift_interval(30, 100, 20, 100)["per_100"] == 10


def test_dashboard_page_shows_figures_with_drill_down_links(seeded, client):
    login(client, seeded["manager"])
    resp = client.get("/dashboard?start=2026-11-01&end=2026-11-30")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "Mei Ling" in html and "50%" in html
    assert "/team/followups?" in html
    assert "<svg" in html
    assert "20 more returns per 100 clients" in html


def test_dashboard_fragment_answers_htmx_with_the_figures_only(seeded, client):
    login(client, seeded["manager"])
    resp = client.get("/dashboard?start=2026-11-01&end=2026-11-30", headers={"HX-Request": "true"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert 'id="dashboard-stats"' in html and "<html" not in html


def test_employee_cannot_open_the_dashboard(seeded, client):
    login(client, seeded["e1"])
    assert client.get("/dashboard").status_code == 403


def test_outcome_mix_counts_only_this_stores_logs_with_one_or_two_stores(app):
    kl = make_store("kl2")
    plan = Plan.create(store=kl, name="P", template="t", type="behaviour")
    who = make_staff("employee", [kl])
    followup(kl, plan, who, utc(2026, 11, 5), "done", utc(2026, 11, 5, 3), "reached")
    followup(kl, plan, who, utc(2026, 11, 6), "done", utc(2026, 11, 6, 3), "booked")
    assert reports.dashboard(kl, START, END, NOW)["outcomes"] == {"reached": 1, "booked": 1}
    bkk = make_store("bkk2")
    other = Plan.create(store=bkk, name="Q", template="t", type="behaviour")
    followup(bkk, other, None, utc(2026, 11, 7), "done", utc(2026, 11, 7, 3), "declined")
    assert reports.dashboard(kl, START, END, NOW)["outcomes"] == {"reached": 1, "booked": 1}
    assert reports.dashboard(bkk, START, END, NOW)["outcomes"] == {"declined": 1}


def test_completion_counts_work_of_someone_no_longer_in_the_store(app):
    store = make_store("kl3")
    moved = make_staff("employee", [make_store("pg")], name="Moved away")
    plan = Plan.create(store=store, name="P", template="t", type="behaviour")
    followup(store, plan, moved, utc(2026, 11, 5), "done", utc(2026, 11, 5, 3), "reached")
    followup(store, plan, moved, utc(2026, 11, 6))
    d = reports.dashboard(store, START, END, NOW)
    assert [(s["name"], s["followups"]["due"], s["followups"]["done"]) for s in d["staff"]] == [
        ("Moved away", 2, 1)
    ]
    assert d["totals"]["overdue"] == 1


def test_drill_downs_list_the_clients_behind_each_number(seeded, client):
    login(client, seeded["manager"])
    args = "start=2026-11-01&end=2026-11-30"
    p = seeded["p"].id
    returns = client.get(f"/dashboard/drill/returns?{args}&plan={p}").get_data(as_text=True)
    assert returns.count('class="row"') == 2 and "100.00" in returns
    held = client.get(f"/dashboard/drill/held_out?{args}&plan={p}").get_data(as_text=True)
    assert held.count('class="row"') == 20 and held.count("Came back") == 4
    cards = client.get(f"/dashboard/drill/cards?{args}&days=60").get_data(as_text=True)
    assert cards.count('class="row"') == 2
    other = client.get(f"/dashboard/drill/returns?{args}&plan=99999")
    assert other.status_code == 404


def test_sqlite_is_told_the_indexes_the_dashboard_reads(app):
    """Every index the SQLite hints name exists (else the planner's own choice is a slow one)."""
    from app.db import is_postgres

    if is_postgres():
        pytest.skip("the hints are for SQLite's planner")
    for columns in (
        reports.BY_STAFF_INDEX,
        reports.BY_PLAN_INDEX,
        reports.CONTACTS_BY_PLAN,
        reports.CONTACTS_BY_STAFF,
        ("store_id",),
    ):
        assert reports._sqlite_index(FollowUp, columns) is not None, columns
