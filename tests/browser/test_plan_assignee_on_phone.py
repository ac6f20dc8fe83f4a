"""On a 360 px phone the plan form's fixed-staff select appears only for "A fixed staff member",
and the plan saved keeps that staff member."""

import re

import pytest

from app.models import Plan
from tests.browser.helpers import htmx_idle
from tests.browser.test_plan_builder import no_horizontal_scroll, sign_in
from tests.factories import make_staff, make_store

pytestmark = pytest.mark.browser


def test_fixed_staff_select_shows_only_for_that_choice_on_a_phone(phone, csrf_app, shoot):
    store = make_store("kl", name="Bunga Beauty KL")
    farah = make_staff("manager", [store], email="farah@example.test", name="Farah")
    mei = make_staff("employee", [store], email="mei@example.test", name="Mei Ling")
    sign_in(phone, farah.email)
    phone.goto("/plans/new?template=card_expiry")
    phone.locator("#plan-form").wait_for()
    htmx_idle(phone)
    phone.check("#kind-followup")
    rule = phone.locator("select[name=assignee_rule]")
    assert rule.is_visible() and rule.input_value() == "default"
    assert not phone.locator("select[name=assignee]").is_visible()
    rule.select_option("staff")
    staff = phone.locator("select[name=assignee]")
    staff.wait_for(state="visible")
    staff.select_option(str(mei.id))
    assert no_horizontal_scroll(phone)
    shoot(phone, "plans-form-fixed-staff-phone", full_page=True)
    rule.select_option("manager_queue")
    staff.wait_for(state="hidden")
    rule.select_option("staff")
    phone.click("#plan-form button.primary")
    phone.wait_for_url(re.compile(r"/plans/\d+$"))
    plan = Plan.get(Plan.store == store.id)
    assert (plan.action["assignee_rule"], plan.action["assignee"]) == ("staff", mei.id)
