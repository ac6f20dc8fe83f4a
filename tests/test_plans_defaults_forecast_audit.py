"""Plan builder fixes: the store's default hold-out, a forecast that counts each customer once,
and the audit trail of plan changes."""

from datetime import date

import pytest

from app.models import AuditLog, Plan
from app.services import plans
from tests.factories import login, make_card, make_customer, make_staff, make_store, utc

HX = {"HX-Request": "true"}
NOW = utc(2026, 5, 1, 0, 0)  # before the 10:00 run of 1 May (store time = UTC)


# ---------------------------------------------------------------- default hold-out


def test_new_plan_takes_the_stores_default_holdout(app):
    store = make_store(settings={"default_holdout": 10})
    plan = plans.create_plan(store, {"template": "card_expiry", "name": "Expiry"}, NOW)
    assert plan.holdout_percent == 10
    chosen = plans.create_plan(
        store, {"template": "card_expiry", "name": "No holdout", "holdout_percent": 0}, NOW
    )
    assert chosen.holdout_percent == 0
    edited = plans.update_plan(chosen, {"name": "Renamed"}, NOW)
    assert edited.holdout_percent == 0  # editing never brings the default back


def test_store_without_a_default_holdout_starts_at_zero(app):
    plan = plans.create_plan(make_store(), {"template": "card_expiry", "name": "Expiry"}, NOW)
    assert plan.holdout_percent == 0


def test_builder_form_prefills_the_default_holdout(client, app):
    store = make_store("kl", settings={"default_holdout": 15})
    farah = make_staff("manager", [store])
    login(client, farah)
    page = client.get("/plans/new?template=card_expiry").get_data(as_text=True)
    assert 'name="holdout_percent" value="15"' in page


# ---------------------------------------------------------------- forecast


def test_forecast_counts_each_expiring_card_once_on_the_day_it_enters_the_window(app):
    store = make_store(timezone="UTC")
    soon = make_customer(store, name="Expires 5 May")
    later = make_customer(store, name="Expires 5 June")
    far = make_customer(store, name="Expires 20 June")
    gone = make_customer(store, name="Expired in April")
    make_card(soon, "stored_value", expires_on=date(2026, 5, 5))
    make_card(later, "stored_value", expires_on=date(2026, 6, 5))
    make_card(far, "stored_value", expires_on=date(2026, 6, 20))
    make_card(gone, "stored_value", expires_on=date(2026, 4, 20))
    plan = plans.create_plan(
        store,
        {"template": "card_expiry", "name": "Expiry", "params": {"days_before": 30}},
        NOW,
    )

    days = plans.forecast(plan, NOW, days=14)

    # By hand: 5 May is inside 1 May + 30 days from the first run; 5 June enters the window on
    # 6 May (5 June - 30 days); 20 June only on 21 May, after the 14 days; April is over.
    counts = {d["date"]: d["count"] for d in days}
    assert len(days) == 14
    assert counts["2026-05-01"] == 1 and counts["2026-05-06"] == 1
    assert sum(counts.values()) == 2
    assert all(n == 0 for day, n in counts.items() if day not in ("2026-05-01", "2026-05-06"))


def test_forecast_of_a_monthly_plan_counts_each_firing(app):
    store = make_store(timezone="UTC")
    for i in range(3):
        make_customer(store, name=f"Member {i}")
    plan = plans.create_plan(
        store,
        {
            "name": "Weekly news",
            "type": "recurring",
            "schedule": {"frequency": "weekly", "weekdays": ["MO"], "at": "10:00"},
            "action": {"kind": "message", "script": "Hi {first_name}"},
        },
        NOW,
    )
    days = plans.forecast(plan, NOW, days=14)
    # Mondays 4 and 11 May: every member is contacted at each firing.
    assert [(d["date"], d["count"]) for d in days] == [("2026-05-04", 3), ("2026-05-11", 3)]


# ---------------------------------------------------------------- audit


def test_plan_create_edit_switch_on_pause_and_archive_are_audited(client, app):
    store = make_store("kl")
    farah = make_staff("manager", [store], name="Farah")
    plan = plans.create_plan(
        store, {"template": "card_expiry", "name": "Expiry"}, NOW, created_by=farah.id
    )
    plans.update_plan(plan, {"params": {"days_before": 14}}, NOW, staff=farah.id)
    plans.set_status(plan, "active", NOW, backfill=False, staff=farah.id)
    plans.set_status(plan, "paused", NOW, staff=farah.id)
    plans.set_status(plan, "archived", NOW)

    rows = list(
        AuditLog.select()
        .where((AuditLog.object_type == "plan") & (AuditLog.object_id == str(plan.id)))
        .order_by(AuditLog.id)
    )
    assert [r.action for r in rows] == [
        "plan.created",
        "plan.updated",
        "plan.switched_on",
        "plan.paused",
        "plan.archived",
    ]
    assert [r.staff_id for r in rows] == [farah.id] * 4 + [None]
    assert rows[1].detail == {"version": 2, "changed": ["params"]}
    assert rows[2].detail["backfill"] is False
    assert {r.store_id for r in rows} == {store.id}

    login(client, farah)
    page = client.get(f"/settings/audit?plan={plan.id}&days=365").get_data(as_text=True)
    for action in ("plan.created", "plan.updated", "plan.switched_on", "plan.archived"):
        assert action in page


def test_switching_on_from_the_console_records_who_did_it(client, app):
    store = make_store("kl")
    farah = make_staff("manager", [store], name="Farah")
    plan = plans.create_plan(store, {"template": "card_expiry", "name": "Expiry"}, NOW)
    login(client, farah)
    resp = client.post(f"/plans/{plan.id}/status", data={"status": "active", "backfill": "0"})
    assert resp.status_code == 303
    row = AuditLog.get(AuditLog.action == "plan.switched_on")
    assert row.staff_id == farah.id and row.object_id == str(plan.id)
    assert Plan.get_by_id(plan.id).status == "active"


@pytest.mark.parametrize("status", ["paused", "archived"])
def test_an_unchanged_status_is_not_audited_twice(app, status):
    store = make_store()
    plan = plans.create_plan(store, {"template": "card_expiry", "name": "Expiry"}, NOW)
    plans.set_status(plan, status, NOW)
    plans.set_status(plan, status, NOW)
    assert AuditLog.select().where(AuditLog.action == f"plan.{status}").count() == 1
