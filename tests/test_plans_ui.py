"""The managers' plan builder: list, step form, audience builder, count, preview, detail."""

from datetime import date, timedelta

import pytest

from app import clock
from app.models import Decision, FollowUp, Plan, PlanVersion
from app.routes.plans import apply_builder, audience_from_tree, tree_from_audience
from app.services import plans as service
from app.services import scheduler
from tests.factories import login, make_card, make_customer, make_staff, make_store

HX = {"HX-Request": "true"}


@pytest.fixture
def salon(app):
    store = make_store("kl", name="Bunga Beauty KL")
    farah = make_staff("manager", [store], name="Farah")
    aisyah = make_staff("employee", [store], name="Aisyah")
    today = clock.now().date()
    people = []
    for i, gender in enumerate(("female", "female", "male")):
        c = make_customer(store, name=f"Client {i}", gender=gender, assigned_staff=aisyah)
        make_card(c, "stored_value", expires_on=today + timedelta(days=10 + i))
        people.append(c)
    make_customer(store, name="No card", gender="female")
    return store, farah, aisyah, people


def card_expiry_form(**extra):
    data = {
        "template": "card_expiry",
        "name": "Card expiry",
        "params.days_before": "30",
        "params.at": "10:00",
        "action_kind": "followup",
        "due_in_hours": "8",
        "script": "Hi {first_name}, your {card_name} expires on {expiry_date}.",
        "holdout_percent": "0",
        "window_days": "30",
        "a.r.mode": "all",
    }
    data.update(extra)
    return data


def test_gallery_lists_every_template_with_its_translated_name(client, salon):
    _, farah, _, _ = salon
    login(client, farah)
    page = client.get("/plans").get_data(as_text=True)
    assert "Card expiry reminder" in page and "Remind customers before a card expires." in page
    assert page.count('data-template="') == 10
    fragment = client.get("/plans", headers=HX).get_data(as_text=True)
    assert "<html" not in fragment and 'id="plan-list"' in fragment


def test_creating_card_expiry_plan_from_the_form_saves_params_and_audience(client, salon):
    store, farah, _, _ = salon
    login(client, farah)
    form = card_expiry_form(
        **{
            "params.days_before": "14",
            "a.r.0.field": "gender",
            "a.r.0.op": "eq",
            "a.r.0.value": "female",
        }
    )
    resp = client.post("/plans/new?template=card_expiry", data=form)
    assert resp.status_code == 303
    plan = Plan.get(Plan.store == store.id)
    assert plan.params["days_before"] == 14
    assert plan.audience == {"all": [{"field": "gender", "op": "eq", "value": "female"}]}
    assert plan.action["kind"] == "followup" and plan.status == "draft"
    assert resp.headers["Location"].endswith(f"/plans/{plan.id}")


def test_service_validation_errors_are_shown_next_to_inputs_with_422(client, salon):
    _, farah, _, _ = salon
    login(client, farah)
    form = card_expiry_form(
        **{
            "params.days_before": "soon",
            "a.r.0.field": "visit_count",
            "a.r.0.op": "gt",
            "a.r.0.value": "many",
        }
    )
    resp = client.post("/plans/new?template=card_expiry", data=form, headers=HX)
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "<html" not in html and 'id="plan-form"' in html
    assert 'data-error-for="params.days_before"' in html
    # The audience error sits inside the condition it belongs to.
    cond = html.split('id="cond-r-0"', 1)[1].split("</div>", 3)
    assert "Must be a whole number." in "".join(cond)
    assert Plan.select().count() == 0


def test_builder_adds_condition_group_and_except_without_javascript(client, salon):
    _, farah, _, _ = salon
    login(client, farah)
    form = card_expiry_form(builder="add:r")
    page = client.post("/plans/new?template=card_expiry", data=form)
    assert page.status_code == 200 and "<html" in page.get_data(as_text=True)
    assert 'name="a.r.0.field"' in page.get_data(as_text=True)
    assert Plan.select().count() == 0
    form = card_expiry_form(
        **{"a.r.0.field": "gender", "a.r.0.op": "eq", "a.r.0.value": "male", "builder": "group:r"}
    )
    html = client.post("/plans/audience", data=form, headers=HX).get_data(as_text=True)
    assert 'name="a.r.1.mode"' in html and 'name="a.r.1.0.field"' in html
    assert "<html" not in html


def test_builder_tree_round_trips_nested_and_or_except():
    audience = {
        "all": [
            {"field": "gender", "op": "eq", "value": "female"},
            {
                "any": [
                    {"field": "tags", "op": "has_any", "value": ["VIP", "New"]},
                    {"field": "visit_count", "op": "between", "value": [2, 5], "days": 90},
                ]
            },
            {"field": "attributes.car_type", "op": "eq", "value": "suv"},
        ],
        "except": [{"field": "products_bought", "op": "has_any", "value": ["LIP1"]}],
    }
    tree = tree_from_audience(audience)
    rebuilt, _ = audience_from_tree(tree)
    assert rebuilt == audience
    tree = apply_builder(tree, "remove:r.1")
    rebuilt, _ = audience_from_tree(tree)
    assert [c["field"] for c in rebuilt["all"]] == ["gender", "attributes.car_type"]


def test_audience_count_changes_as_a_condition_is_added(client, salon):
    _, farah, _, _ = salon
    login(client, farah)
    everyone = client.post("/plans/audience-count", data=card_expiry_form(), headers=HX)
    assert everyone.status_code == 200 and 'data-count="4"' in everyone.get_data(as_text=True)
    assert 'data-qualifying="3"' in everyone.get_data(as_text=True)
    form = card_expiry_form(**{"a.r.0.field": "gender", "a.r.0.op": "eq", "a.r.0.value": "male"})
    men = client.post("/plans/audience-count", data=form, headers=HX).get_data(as_text=True)
    assert 'data-count="1"' in men and 'data-qualifying="1"' in men and "<html" not in men
    page = client.post("/plans/audience-count", data=form).get_data(as_text=True)
    assert "<html" in page and 'data-count="1"' in page


def test_invalid_condition_gives_422_count_fragment(client, salon):
    _, farah, _, _ = salon
    login(client, farah)
    form = card_expiry_form(**{"a.r.0.field": "age", "a.r.0.op": "gt", "a.r.0.value": "old"})
    resp = client.post("/plans/audience-count", data=form, headers=HX)
    assert resp.status_code == 422 and "Fix these conditions" in resp.get_data(True)


def test_preview_shows_scripts_and_forecast_with_message_cost(client, salon):
    store, farah, _, people = salon
    from app.models import ChannelSetting

    ChannelSetting.create(store=store, channel="sms", price="0.25")
    login(client, farah)
    form = card_expiry_form(action_kind="message", channel="sms")
    html = client.post("/plans/preview", data=form, headers=HX).get_data(as_text=True)
    assert "<html" not in html and 'id="plan-preview"' in html
    assert "Hi Client, your stored_value card" in html
    assert "SMS" in html and "0.75" in html  # 3 customers × 0.25 on the first day


def test_script_preview_warns_about_empty_variables(client, salon):
    _, farah, _, people = salon
    login(client, farah)
    form = card_expiry_form(script="Hi {first_name}, you have {points} points, {nmae}")
    form["preview_customer"] = str(people[0].id)
    html = client.post("/plans/script-preview", data=form, headers=HX).get_data(as_text=True)
    assert "Hi Client, you have 0 points" in html
    form = card_expiry_form(script="Hi {first_name}, last seen {last_visit_date} {nmae}")
    form["preview_q"] = "No card"
    html = client.post("/plans/script-preview", data=form, headers=HX).get_data(as_text=True)
    assert "Hi No, last seen" in html
    assert "{last_visit_date}" in html.split("Empty for", 1)[1]
    assert "{nmae}" in html.split("Not a variable", 1)[1]


def test_editing_active_plan_creates_version_and_detail_lists_it(client, salon):
    store, farah, _, _ = salon
    now = clock.now()
    plan = service.create_plan(
        store,
        {"template": "card_expiry", "name": "Expiry", "action": {"kind": "followup"}},
        now,
    )
    service.set_status(plan, "active", now)
    login(client, farah)
    form = card_expiry_form(name="Expiry", **{"params.days_before": "20"})
    resp = client.post(f"/plans/{plan.id}/edit", data=form)
    assert resp.status_code == 303
    plan = Plan.get_by_id(plan.id)
    assert plan.version == 2 and plan.params["days_before"] == 20
    assert PlanVersion.select().where(PlanVersion.plan == plan.id).count() == 2
    html = client.get(f"/plans/{plan.id}").get_data(as_text=True)
    assert "Version 2" in html and "Version 1" in html
    fragment = client.get(f"/plans/{plan.id}", headers=HX).get_data(as_text=True)
    assert "<html" not in fragment and 'id="plan-detail"' in fragment


def test_ab_scripts_are_saved_as_two_variants(client, salon):
    store, farah, _, _ = salon
    login(client, farah)
    form = card_expiry_form(ab="1", script="A text {name}", script_b="B text {name}")
    assert client.post("/plans/new?template=card_expiry", data=form).status_code == 303
    plan = Plan.get(Plan.store == store.id)
    assert plan.action["scripts"] == [
        {"variant": "A", "text": "A text {name}"},
        {"variant": "B", "text": "B text {name}"},
    ]


def test_switching_on_with_backfill_then_tick_creates_followups_for_assigned_staff(client, salon):
    store, farah, aisyah, people = salon
    login(client, farah)
    client.post("/plans/new?template=card_expiry", data=card_expiry_form())
    plan = Plan.get(Plan.store == store.id)
    page = client.get(f"/plans/{plan.id}/activate").get_data(as_text=True)
    assert 'data-qualifying="3"' in page
    resp = client.post(f"/plans/{plan.id}/status", data={"status": "active", "backfill": "1"})
    assert resp.status_code == 303
    plan = Plan.get_by_id(plan.id)
    assert plan.status == "active" and plan.backfill and plan.next_run_at
    scheduler.tick(now=plan.next_run_at + timedelta(minutes=1))
    mine = FollowUp.select().where((FollowUp.plan == plan.id) & (FollowUp.assignee == aisyah.id))
    assert sorted(f.customer_id for f in mine) == sorted(c.id for c in people)
    listing = client.get("/plans").get_data(as_text=True)
    assert f'id="plan-{plan.id}"' in listing
    stats = service.list_stats([store.id], plan.next_run_at + timedelta(days=2))[plan.id]
    assert stats["open"] == 3 and stats["overdue"] == 3
    detail = client.get(f"/plans/{plan.id}").get_data(as_text=True)
    assert "Follow-up created" in detail
    assert Decision.select().where(Decision.plan == plan.id).count() == 3


def test_pause_and_archive_from_the_list(client, salon):
    store, farah, _, _ = salon
    now = clock.now()
    plan = service.create_plan(store, {"template": "birthday", "name": "Birthday"}, now)
    service.set_status(plan, "active", now)
    login(client, farah)
    resp = client.post(f"/plans/{plan.id}/status", data={"status": "paused", "next": "list"})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/plans")
    assert Plan.get_by_id(plan.id).status == "paused"
    resp = client.post(f"/plans/{plan.id}/status", data={"status": "archived"}, headers=HX)
    assert resp.status_code == 204 and resp.headers["HX-Redirect"].endswith(f"/plans/{plan.id}")
    assert Plan.get_by_id(plan.id).status == "archived"
    assert "Birthday" not in client.get("/plans").get_data(as_text=True).split("templates")[0]


def test_custom_weekly_plan_from_scratch(client, salon):
    store, farah, _, _ = salon
    login(client, farah)
    form = {
        "name": "Weekly check",
        "type": "recurring",
        "frequency": "weekly",
        "weekdays": ["MO", "TH"],
        "at": "11:00",
        "action_kind": "followup",
        "due_in_hours": "4",
        "script": "Hi {name}",
        "a.r.mode": "all",
    }
    assert client.post("/plans/new", data=form).status_code == 303
    plan = Plan.get(Plan.store == store.id)
    assert "BYDAY=MO,TH" in plan.schedule["rrule"] and plan.schedule["at"] == "11:00"
    html = client.get(f"/plans/{plan.id}/edit").get_data(as_text=True)
    assert 'value="MO" checked' in html and 'value="TH" checked' in html


def test_birthday_in_next_days_condition_counts(client, salon):
    store, farah, _, _ = salon
    soon = clock.now().date() + timedelta(days=3)
    make_customer(store, name="Birthday girl", birthday=date(1990, soon.month, soon.day))
    login(client, farah)
    form = card_expiry_form(
        **{"a.r.0.field": "birthday", "a.r.0.op": "in_next_days", "a.r.0.value": "7"}
    )
    html = client.post("/plans/audience-count", data=form, headers=HX).get_data(as_text=True)
    assert 'data-count="1"' in html


def test_detail_shows_ab_rates_decision_reasons_and_missed_occurrences(client, salon):
    from app.models import ContactLog, Occurrence, Visit

    store, farah, aisyah, people = salon
    now = clock.now()
    plan = service.create_plan(
        store,
        {
            "template": "card_expiry",
            "name": "Expiry AB",
            "action": {
                "kind": "followup",
                "scripts": [{"variant": "A", "text": "A {name}"}, {"variant": "B", "text": "B"}],
            },
        },
        now,
    )
    occ = Occurrence.create(plan=plan, key="2026-11-01", scheduled_for=now, status="done")
    Occurrence.create(plan=plan, key="2026-11-02", scheduled_for=now, status="missed")
    for customer, variant, status in zip(
        people, ("A", "A", "B"), ("done", "open", "done"), strict=True
    ):
        f = FollowUp.create(
            store=store,
            customer=customer,
            plan=plan,
            assignee=aisyah,
            due_at=now,
            status=status,
            variant=variant,
            outcome="booked" if status == "done" else None,
            completed_at=now if status == "done" else None,
            open_customer=None if status == "done" else customer.id,
        )
        if status == "done":
            ContactLog.create(followup=f, customer=customer, staff=aisyah, outcome="booked")
    Visit.create(customer=people[0], store=store, day=now.date(), first_at=now + timedelta(days=1))
    Decision.create(
        plan=plan,
        occurrence=occ,
        customer=people[1],
        dedupe_key="k1",
        outcome="skipped",
        reason="no reachable channel",
    )
    stats = {v["variant"]: v for v in service.variant_stats(plan)}
    assert stats["A"]["contacts"] == 2 and stats["A"]["done"] == 1 and stats["A"]["returned"] == 1
    assert stats["B"]["contacts"] == 1 and stats["B"]["returned"] == 0
    assert stats["A"]["return_rate"] == 1.0 and stats["B"]["reached_rate"] == 1.0
    login(client, farah)
    html = client.get(f"/plans/{plan.id}").get_data(as_text=True)
    assert 'class="variant-A"' in html and 'class="variant-B"' in html
    assert "no reachable channel" in html and "1 missed" in html


def test_custom_behaviour_plan_reports_missing_event_next_to_its_input(client, salon):
    store, farah, _, _ = salon
    login(client, farah)
    form = {
        "name": "After lashes",
        "type": "behaviour",
        "delay_days": "14",
        "trigger_at": "09:30",
        "products": "LASH1",
        "action_kind": "message",
        "channel": "whatsapp",
        "a.r.mode": "all",
    }
    resp = client.post("/plans/new", data=form, headers=HX)
    assert resp.status_code == 422
    assert 'data-error-for="trigger.event"' in resp.get_data(as_text=True)
    form["events"] = ["service_completed"]
    assert client.post("/plans/new", data=form).status_code == 303
    plan = Plan.get(Plan.store == store.id)
    assert plan.trigger == {
        "event": ["service_completed"],
        "delay_days": 14,
        "at": "09:30",
        "products": ["LASH1"],
    }
    assert plan.action["channel"] == "whatsapp"
    html = client.get(f"/plans/{plan.id}/edit").get_data(as_text=True)
    assert 'value="service_completed" checked' in html and 'value="LASH1"' in html
