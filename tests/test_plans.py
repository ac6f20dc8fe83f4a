"""The plans service: validation, versions, status changes, counts, previews and forecasts."""

import pytest

from app.models import PlanVersion
from app.services import plans
from app.services.validation import ValidationError
from tests.factories import make_customer, make_store, utc
from tests.test_scenarios import reachable


def fields_of(exc):
    return {e["field"] for e in exc.value.errors}


def test_member_day_plan_next_runs_on_the_17th_at_ten_store_time(app):
    store = make_store(timezone="Asia/Shanghai")
    plan = plans.create_plan(
        store, {"template": "member_day", "name": "会员日", "status": "active"}, now=utc(2022, 5, 1)
    )
    assert plan.next_run_at == utc(2022, 5, 17, 2)
    assert (
        plan.schedule["rrule"] == "FREQ=MONTHLY;BYMONTHDAY=18" and plan.schedule["offset_days"] == 1
    )
    assert PlanVersion.get(PlanVersion.plan == plan.id).version == 1
    shown = plans.plan_dict(plan)
    assert shown["status"] == "active" and shown["params"]["day_of_month"] == 18


def test_invalid_plans_name_every_bad_field(app):
    store = make_store()
    with pytest.raises(ValidationError) as exc:
        plans.create_plan(
            store,
            {
                "template": "member_day",
                "name": "",
                "params": {"day_of_month": 40, "at": "25:00", "colour": 1},
                "action": {"kind": "fax"},
                "holdout_percent": 120,
            },
            now=utc(2026, 5, 1),
        )
    assert {
        "name",
        "params.day_of_month",
        "params.at",
        "params.colour",
        "action.kind",
        "holdout_percent",
    } <= fields_of(exc)
    with pytest.raises(ValidationError) as exc:
        plans.create_plan(
            store,
            {"name": "x", "type": "behaviour", "trigger": {"event": "dance"}},
            now=utc(2026, 5, 1),
        )
    assert "trigger.event" in fields_of(exc)
    with pytest.raises(ValidationError) as exc:
        plans.create_plan(store, {"template": "nope", "name": "x"}, now=utc(2026, 5, 1))
    assert "template" in fields_of(exc)


def test_bad_audience_is_rejected_with_its_path(app):
    store = make_store()
    with pytest.raises(ValidationError) as exc:
        plans.create_plan(
            store,
            {
                "template": "birthday",
                "name": "B",
                "audience": {"all": [{"field": "shoe_size", "op": "eq", "value": 1}]},
            },
            now=utc(2026, 5, 1),
        )
    assert any(f.startswith("audience") for f in fields_of(exc))


def test_service_interval_promo_must_come_after_the_reminder(app):
    store = make_store()
    with pytest.raises(ValidationError) as exc:
        plans.create_plan(
            store,
            {
                "template": "service_interval",
                "name": "S",
                "params": {"days_after_last_visit": 200, "promo_days_after_last_visit": 195},
            },
            now=utc(2026, 5, 1),
        )
    assert "params.promo_days_after_last_visit" in fields_of(exc)


def test_pausing_clears_next_run_and_changing_params_makes_a_version(app):
    store = make_store(timezone="UTC")
    plan = plans.create_plan(
        store, {"template": "member_day", "name": "MD", "status": "active"}, now=utc(2026, 5, 1)
    )
    plan = plans.update_plan(plan, {"params": {"day_of_month": 31}}, now=utc(2026, 5, 2))
    assert plan.version == 2 and plan.next_run_at == utc(2026, 5, 30, 10)
    plan = plans.update_plan(plan, {"status": "paused"}, now=utc(2026, 5, 3))
    assert plan.status == "paused" and plan.next_run_at is None
    plan = plans.update_plan(plan, {"status": "active"}, now=utc(2026, 6, 1))
    assert plan.next_run_at == utc(2026, 6, 29, 10)
    assert PlanVersion.select().where(PlanVersion.plan == plan.id).count() == 2


def test_custom_weekly_and_last_day_plans(app):
    store = make_store(timezone="UTC")
    weekly = plans.create_plan(
        store,
        {
            "name": "Mon+Thu",
            "type": "recurring",
            "schedule": {"frequency": "weekly", "weekdays": [0, 3], "at": "09:30"},
            "action": {"kind": "followup", "script": "hi"},
            "status": "active",
        },
        now=utc(2026, 11, 24),
    )
    assert weekly.next_run_at == utc(2026, 11, 26, 9, 30)
    last = plans.create_plan(
        store,
        {
            "name": "Month end",
            "type": "recurring",
            "schedule": {"frequency": "last_day", "at": "18:00"},
            "action": {"kind": "message", "script": "hi"},
            "status": "active",
        },
        now=utc(2027, 2, 1),
    )
    assert last.next_run_at == utc(2027, 2, 28, 18)


def test_audience_count_preview_and_forecast(app):
    store = make_store(timezone="UTC", name="Salon Cantik")
    women = [reachable(make_customer(store, name=f"Aminah {i}", gender="female")) for i in range(3)]
    make_customer(store, name="Ali", gender="male")
    audience = {"all": [{"field": "gender", "op": "eq", "value": "female"}]}
    plan = plans.create_plan(
        store,
        {
            "name": "Daily",
            "type": "recurring",
            "schedule": {"frequency": "daily", "at": "10:00"},
            "audience": audience,
            "action": {"kind": "message", "script": "Hi {first_name} from {store_name}"},
            "status": "active",
        },
        now=utc(2026, 5, 1),
    )
    assert plans.audience_count(plan, None, utc(2026, 5, 1)) == 3
    assert plans.audience_count(store, {}, utc(2026, 5, 1)) == 4
    shown = plans.preview(plan, utc(2026, 5, 1), limit=2)
    assert [text for _, text in shown] == ["Hi Aminah from Salon Cantik"] * 2
    assert {c.id for c, _ in shown} <= {w.id for w in women}
    days = plans.forecast(plan, utc(2026, 5, 1), days=3)
    assert [d["date"] for d in days] == ["2026-05-01", "2026-05-02", "2026-05-03"]
    assert all(d["count"] == 3 and d["channel"] == "message" for d in days)
