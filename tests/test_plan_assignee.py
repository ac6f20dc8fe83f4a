"""Who gets a plan's follow-ups: the form's choice, its validation (form and API), the engine."""

from datetime import timedelta

import pytest

from app import clock
from app.models import FollowUp, Plan
from app.services import plans as service
from app.services import scheduler, tokens
from app.services.validation import ValidationError
from tests import test_plans_ui
from tests.factories import login, make_staff, make_store
from tests.test_api import Api, assert_problem
from tests.test_plans_ui import HX, card_expiry_form
from tests.world import build_world

salon = test_plans_ui.salon  # the builder tests' store: a manager, an employee, three clients


def fields_of(exc_info) -> list[str]:
    return [e["field"] for e in exc_info.value.errors]


def test_new_plan_form_offers_the_rules_with_the_default_chosen(client, salon):
    _, farah, aisyah, _ = salon
    login(client, farah)
    page = client.get("/plans/new?template=card_expiry").get_data(as_text=True)
    assert '<option value="default" selected>' in page
    for rule in ("last_served", "round_robin", "staff", "manager_queue"):
        assert f'<option value="{rule}" ' in page
    assert f'<option value="{aisyah.id}" >Aisyah</option>' in page


def test_fixed_staff_chosen_in_the_form_is_saved_and_shown_when_editing(client, salon):
    store, farah, aisyah, _ = salon
    login(client, farah)
    form = card_expiry_form(assignee_rule="staff", assignee=str(aisyah.id))
    assert client.post("/plans/new?template=card_expiry", data=form).status_code == 303
    plan = Plan.get(Plan.store == store.id)
    assert plan.action["assignee_rule"] == "staff" and plan.action["assignee"] == aisyah.id
    page = client.get(f"/plans/{plan.id}/edit").get_data(as_text=True)
    assert '<option value="staff" selected>' in page
    assert f'<option value="{aisyah.id}" selected>Aisyah</option>' in page
    # Saving the unchanged form is not a new version; choosing another rule is.
    client.post(f"/plans/{plan.id}/edit", data=form)
    assert Plan.get_by_id(plan.id).version == 1
    client.post(f"/plans/{plan.id}/edit", data={**form, "assignee_rule": "round_robin"})
    plan = Plan.get_by_id(plan.id)
    assert plan.version == 2
    assert (plan.action["assignee_rule"], plan.action["assignee"]) == ("round_robin", None)
    page = client.get(f"/plans/{plan.id}/edit").get_data(as_text=True)
    assert '<option value="round_robin" selected>' in page


def test_form_refuses_another_stores_staff_and_unknown_rules_next_to_the_select(client, salon):
    store, farah, _, _ = salon
    other = make_staff("employee", [make_store("bkk", name="Bangkok")], name="Somsak")
    login(client, farah)
    form = card_expiry_form(assignee_rule="staff", assignee=str(other.id))
    resp = client.post("/plans/new?template=card_expiry", data=form, headers=HX)
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert 'data-error-for="action.assignee"' in html and "<html" not in html
    assert '<option value="staff" selected>' in html
    resp = client.post(
        "/plans/new?template=card_expiry", data=card_expiry_form(assignee_rule="whoever")
    )
    assert resp.status_code == 422
    assert 'data-error-for="action.assignee_rule"' in resp.get_data(as_text=True)
    resp = client.post(
        "/plans/new?template=card_expiry", data=card_expiry_form(assignee_rule="staff")
    )
    assert resp.status_code == 422
    assert 'data-error-for="action.assignee"' in resp.get_data(as_text=True)
    assert Plan.select().where(Plan.store == store.id).count() == 0


def test_service_validates_rule_and_store_membership_of_the_fixed_staff(app):
    store, elsewhere = make_store("kl"), make_store("bkk")
    mine = make_staff("employee", [store], email="mine@example.test")
    gone = make_staff("employee", [store], email="gone@example.test")
    gone.active = False
    gone.save()
    theirs = make_staff("employee", [elsewhere])
    now = clock.now()

    def plan(action, steps=None):
        body = {"template": "card_expiry", "name": "x", "action": {"kind": "followup", **action}}
        if steps is not None:
            body["steps"] = steps
        return service.create_plan(store, body, now)

    with pytest.raises(ValidationError) as exc:
        plan({"assignee_rule": "favourite"})
    assert fields_of(exc) == ["action.assignee_rule"]
    for who in (theirs.id, gone.id, None, "nobody@example.test"):
        with pytest.raises(ValidationError) as exc:
            plan({"assignee_rule": "staff", "assignee": who})
        assert fields_of(exc) == ["action.assignee"], who
    with pytest.raises(ValidationError) as exc:
        plan({"assignee_rule": f"staff:{theirs.id}"})
    assert fields_of(exc) == ["action.assignee"]
    with pytest.raises(ValidationError) as exc:
        plan({}, steps=[{"after_days": 0, "action": {"assignee_rule": "nope"}}])
    assert fields_of(exc) == ["steps.0.action.assignee_rule"]
    assert plan({"assignee_rule": "staff", "assignee": "mine@example.test"}).id
    assert plan({"assignee_rule": f"staff:{mine.id}"}).id
    for rule in ("default", "assigned", "last_served", "round_robin", "manager_queue"):
        assert plan({"assignee_rule": rule}).action["assignee_rule"] == rule


def test_api_refuses_a_fixed_staff_member_of_another_store(client, app):
    world = build_world()
    api_a = Api(client, tokens.create_token(world.store_a, "POS")[1])
    body = {
        "template": "member_day",
        "name": "Member day",
        "action": {"kind": "followup", "assignee_rule": "staff", "assignee": world.manager_b.id},
    }
    problem = assert_problem(api_a.post("/api/v1/plans", json=body), 422)
    assert [e["field"] for e in problem["errors"]] == ["action.assignee"], problem
    body["action"]["assignee"] = world.employee_a2.id
    resp = api_a.post("/api/v1/plans", json=body)
    assert resp.status_code == 201, resp.get_json()
    assert Plan.get_by_id(resp.get_json()["id"]).action["assignee"] == world.employee_a2.id


def test_plan_made_in_the_form_gives_the_fixed_staff_member_the_followups(client, salon):
    store, farah, aisyah, people = salon
    lina = make_staff("employee", [store], name="Lina")
    login(client, farah)
    form = card_expiry_form(assignee_rule="staff", assignee=str(lina.id))
    client.post("/plans/new?template=card_expiry", data=form)
    plan = Plan.get(Plan.store == store.id)
    client.post(f"/plans/{plan.id}/status", data={"status": "active", "backfill": "1"})
    plan = Plan.get_by_id(plan.id)
    scheduler.tick(now=plan.next_run_at + timedelta(minutes=1))
    rows = list(FollowUp.select().where(FollowUp.plan == plan.id))
    assert sorted(f.customer_id for f in rows) == sorted(c.id for c in people)
    # Every customer is assigned to Aisyah, yet the plan's fixed choice wins.
    assert {(f.assignee_id, f.assigned_by_rule) for f in rows} == {(lina.id, "staff")}
