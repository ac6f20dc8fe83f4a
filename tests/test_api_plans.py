"""JSON API v1: plan templates, plans, audience counts, audience fields, the summary report."""

from datetime import timedelta

import pytest

from app import clock
from app.models import ContactLog, FollowUp, Message, Plan, Visit
from app.services import schedule, tokens
from tests.factories import make_customer
from tests.test_api import Api, assert_problem
from tests.world import build_world


@pytest.fixture
def world(app):
    return build_world()


@pytest.fixture
def api_a(client, world):
    return Api(client, tokens.create_token(world.store_a, "POS")[1])


@pytest.fixture
def api_b(app, world):
    return Api(app.test_client(), tokens.create_token(world.store_b, "POS")[1])


def test_plan_templates_list_every_template_with_parameters(api_a):
    items = api_a.get("/api/v1/plan-templates").get_json()["items"]
    by_key = {t["key"]: t for t in items}
    for key in (
        "member_day",
        "second_visit",
        "post_service",
        "card_use_reminder",
        "card_expiry",
        "count_card_low",
        "balance_low",
        "birthday",
        "service_interval",
        "points_reminder",
    ):
        assert key in by_key, key
    member_day = {p["name"]: p for p in by_key["member_day"]["params"]}
    assert member_day["day_of_month"]["default"] == 18
    assert by_key["second_visit"]["type"] == "behaviour"
    assert {p["name"]: p["default"] for p in by_key["service_interval"]["params"]}[
        "days_after_last_visit"
    ] == 173


def test_audience_fields_list_operators(api_a):
    items = api_a.get("/api/v1/audience-fields").get_json()["items"]
    fields = {f["field"]: f for f in items}
    assert "has_any" in fields["tags"]["ops"] and "eq" in fields["gender"]["ops"]
    for name in ("age", "birthday", "last_visit_at", "visit_count", "cards.balance", "segment"):
        assert name in fields, name


def test_plan_is_created_from_template_listed_read_and_paused(api_a, api_b):
    resp = api_a.post(
        "/api/v1/plans",
        json={
            "template": "birthday",
            "name": "Birthday wishes",
            "params": {"days_before": 3},
            "audience": {"all": [{"field": "tags", "op": "has_any", "value": ["VIP"]}]},
            "action": {"kind": "followup", "script": "Happy birthday {first_name}!"},
            "status": "active",
        },
    )
    assert resp.status_code == 201, resp.get_json()
    plan = resp.get_json()
    assert plan["status"] == "active" and plan["template"] == "birthday"
    assert plan["params"]["days_before"] == 3
    assert api_a.get(f"/api/v1/plans/{plan['id']}").get_json()["name"] == "Birthday wishes"
    listed = api_a.get("/api/v1/plans?status=active").get_json()["items"]
    assert plan["id"] in [p["id"] for p in listed]
    paused = api_a.patch(f"/api/v1/plans/{plan['id']}", json={"status": "paused"})
    assert paused.status_code == 200 and paused.get_json()["status"] == "paused"
    renamed = api_a.patch(f"/api/v1/plans/{plan['id']}", json={"name": "Birthdays"}).get_json()
    assert renamed["name"] == "Birthdays" and renamed["version"] == 2
    assert_problem(api_b.get(f"/api/v1/plans/{plan['id']}"), 404)
    assert_problem(api_b.patch(f"/api/v1/plans/{plan['id']}", json={"status": "active"}), 404)
    assert api_b.get("/api/v1/plans").get_json()["items"] == []
    assert Plan.get_by_id(plan["id"]).status == "paused"


def test_plan_validation_names_bad_fields(api_a):
    resp = api_a.post(
        "/api/v1/plans",
        json={
            "template": "member_day",
            "name": "Member day",
            "audience": {
                "all": [
                    {"field": "gender", "op": "eq", "value": "female"},
                    {"field": "tags", "op": "bogus", "value": []},
                ]
            },
            "action": {"kind": "followup"},
        },
    )
    body = assert_problem(resp, 422)
    assert [e["field"] for e in body["errors"]] == ["audience.all[1].op"], body
    assert_problem(
        api_a.post("/api/v1/plans", json={"template": "nope", "name": "x"}), 422, "template"
    )
    assert_problem(api_a.patch("/api/v1/plans/999999", json={"status": "active"}), 404)


def test_audience_count_uses_the_body_or_the_plans_own(api_a, api_b, world):
    for n in range(3):
        make_customer(world.store_a, name=f"Lady {n}", gender="female")
    make_customer(world.store_a, name="Sir", gender="male")
    make_customer(world.store_b, name="Khun", gender="female")
    world.plan_a.audience = {"all": [{"field": "gender", "op": "eq", "value": "male"}]}
    world.plan_a.save()
    url = f"/api/v1/plans/{world.plan_a.id}/audience-count"
    female = {"all": [{"field": "gender", "op": "eq", "value": "female"}]}
    assert api_a.post(url, json=female).get_json() == {"count": 3}
    assert api_a.post(url).get_json() == {"count": 1}
    bad = api_a.post(url, json={"all": [{"field": "gender", "op": "between", "value": 3}]})
    assert_problem(bad, 422)
    assert_problem(api_b.post(url, json=female), 404)


def test_summary_report_counts_followups_outcomes_returns_and_messages(api_a, world):
    now = clock.now()
    today = schedule.local_date(now, world.store_a.timezone)
    fu = FollowUp.get_by_id(world.followup_a.id)
    fu.status, fu.outcome, fu.completed_at, fu.open_customer = (
        "done",
        "booked",
        now - timedelta(days=5),
        None,
    )
    fu.save()
    ContactLog.create(
        followup=fu,
        customer=fu.customer_id,
        staff=world.employee_a,
        outcome="booked",
        at=now - timedelta(days=5),
    )
    Visit.create(
        customer=world.customer_a,
        store=world.store_a,
        day=(now - timedelta(days=2)).date(),
        first_at=now - timedelta(days=2),
    )
    late = FollowUp.get_by_id(world.followup_a2.id)
    late.due_at = now - timedelta(hours=3)
    late.save()
    Message.create(
        store=world.store_a,
        customer=world.customer_a,
        plan=world.plan_a,
        channel="sms",
        body="Hi",
        status="delivered",
        idempotency_key="s1",
        sent_at=now - timedelta(days=1),
        delivered_at=now - timedelta(days=1),
    )
    Message.create(
        store=world.store_a,
        customer=world.customer_a,
        plan=world.plan_a,
        channel="sms",
        body="Hi",
        status="failed",
        idempotency_key="s2",
    )
    resp = api_a.get(
        "/api/v1/reports/summary",
        query_string={
            # The report's days are the store's (Kuala Lumpur, UTC+8), not UTC's.
            "from": (today - timedelta(days=10)).isoformat(),
            "to": today.isoformat(),
        },
    )
    assert resp.status_code == 200, resp.get_json()
    report = resp.get_json()
    plan = next(p for p in report["plans"] if p["plan"] == world.plan_a.id)
    assert plan["followups"] == {"created": 2, "done": 1, "overdue": 1}
    assert plan["outcomes"] == {"booked": 1}
    assert plan["return_visits"] == 1
    assert (
        plan["messages"]["sent"] == 1
        and plan["messages"]["delivered"] == 1
        and plan["messages"]["failed"] == 1
    )
    people = {p["staff"]: p for p in report["staff"]}
    assert people["aisyah@example.test"]["followups"]["done"] == 1
    assert people["aisyah@example.test"]["return_visits"] == 1
    assert people["mei@example.test"]["followups"]["overdue"] == 1


def test_summary_report_ignores_visits_outside_the_window(api_a, world):
    now = clock.now()
    fu = FollowUp.get_by_id(world.followup_a.id)
    fu.status, fu.completed_at, fu.open_customer = "done", now - timedelta(days=45), None
    fu.save()
    Visit.create(
        customer=world.customer_a,
        store=world.store_a,
        day=(now - timedelta(days=1)).date(),
        first_at=now - timedelta(days=1),
    )
    report = api_a.get(
        "/api/v1/reports/summary", query_string={"from": (now - timedelta(days=60)).isoformat()}
    ).get_json()
    plan = next(p for p in report["plans"] if p["plan"] == world.plan_a.id)
    assert plan["followups"]["done"] == 1 and plan["return_visits"] == 0  # window_days is 30


def test_summary_report_rejects_bad_bounds(api_a):
    assert_problem(api_a.get("/api/v1/reports/summary?from=someday"), 422, "from")
    assert_problem(api_a.get("/api/v1/reports/summary?from=2026-11-20&to=2026-11-01"), 422, "from")
