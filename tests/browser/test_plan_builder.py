"""A manager builds a card-expiry plan in a real browser, at desktop width and on a 360 px phone."""

import re
from datetime import timedelta

import pytest

from app import clock
from app.models import FollowUp, Plan
from app.services import scheduler
from tests.browser.helpers import htmx_idle, no_horizontal_scroll, sign_in
from tests.factories import make_card, make_customer, make_staff, make_store

pytestmark = pytest.mark.browser


@pytest.fixture
def salon(csrf_app):
    store = make_store("kl", name="Bunga Beauty KL", settings={"followup_hour": "10:00"})
    farah = make_staff("manager", [store], email="farah@example.test", name="Farah")
    aisyah = make_staff("employee", [store], email="aisyah@example.test", name="Aisyah")
    mei = make_staff("employee", [store], email="mei@example.test", name="Mei Ling")
    today = clock.now().date()
    clients = {}
    for name, gender, staff, days in (
        ("小红", "female", aisyah, 12),
        ("Nurul Aisyah binti Ahmad", "female", mei, 20),
        ("Ahmad", "male", aisyah, 25),
    ):
        c = make_customer(store, name=name, gender=gender, assigned_staff=staff)
        make_card(c, "stored_value", expires_on=today + timedelta(days=days))
        clients[name] = c
    make_customer(store, name="Siti (no card)", gender="female")
    return store, farah, aisyah, mei, clients


def count_of(page) -> str:
    return page.locator("#audience-count .aud-count-n").get_attribute("data-count") or ""


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_manager_builds_card_expiry_plan_and_staff_get_followups(open_page, salon, shoot, size):
    store, farah, aisyah, mei, clients = salon
    page = open_page(size)
    sign_in(page, farah.email)
    page.goto("/plans")
    assert no_horizontal_scroll(page)
    shoot(page, f"plans-list-empty-{size}", full_page=True)
    page.click('a[data-template="card_expiry"]')
    page.wait_for_url("**/plans/new?template=card_expiry")
    page.locator("#plan-form").wait_for()
    page.fill("input[name=name]", "Card expiry · women")
    page.check("#kind-followup")
    assert page.locator("input[name=due_in_hours]").is_visible()
    assert not page.locator("select[name=channel]").is_visible()
    page.wait_for_function("document.querySelector('#audience-count .aud-count-n[data-count]')")
    assert count_of(page) == "4"  # everyone in the store
    assert page.locator("#audience-count [data-qualifying]").get_attribute("data-qualifying") == "3"
    assert no_horizontal_scroll(page)
    shoot(page, f"plans-form-{size}", full_page=True)

    # Add a condition: gender is female; the count follows without a page load.
    page.evaluate("window.__noReload = true")
    page.click('button[name=builder][value="add:r"]')
    page.locator('select[name="a.r.0.field"]').wait_for()
    htmx_idle(page)
    page.select_option('select[name="a.r.0.field"]', "gender")
    page.locator('input[name="a.r.0.value"]').wait_for()
    htmx_idle(page)
    page.fill('input[name="a.r.0.value"]', "female")
    page.locator('input[name="a.r.0.value"]').dispatch_event("change")
    page.wait_for_function(
        "document.querySelector('#audience-count .aud-count-n')?.dataset.count === '3'"
    )
    qualifying = page.locator("#audience-count [data-qualifying]").get_attribute("data-qualifying")
    assert qualifying == "2"
    assert page.evaluate("window.__noReload") is True
    assert no_horizontal_scroll(page)
    shoot(page, f"plans-builder-{size}", full_page=True)
    page.locator("#audience-builder").scroll_into_view_if_needed()
    shoot(page, f"plans-builder-view-{size}")

    # Variable chip inserts at the cursor; the script preview shows a real customer.
    page.fill("#script-a", "Hi , your card expires on {expiry_date}.")
    page.locator("#script-a").evaluate("a => { a.focus(); a.setSelectionRange(3, 3); }")
    page.click('.var-chip[data-var="{first_name}"]')
    assert page.input_value("#script-a") == "Hi {first_name}, your card expires on {expiry_date}."
    page.click("text=Preview script")
    page.wait_for_function(
        "document.querySelector('#script-preview .script')?.textContent.startsWith('Hi 小红')"
    )

    # Preview and forecast.
    page.click("text=Show who gets what (next 14 days)")
    page.locator("#plan-preview table.forecast").wait_for()
    assert "小红" in page.locator("#plan-preview").inner_text()
    shoot(page, f"plans-preview-{size}", full_page=True)

    page.click("#plan-form button.primary")
    page.wait_for_url(re.compile(r"/plans/\d+$"))
    plan = Plan.get(Plan.store == store.id)
    assert plan.audience == {"all": [{"field": "gender", "op": "eq", "value": "female"}]}
    assert plan.action["kind"] == "followup"
    page.click("text=Switch on…")
    page.wait_for_url(f"**/plans/{plan.id}/activate")
    assert page.locator("[data-qualifying]").get_attribute("data-qualifying") == "2"
    page.check('input[name=backfill][value="1"]')
    assert no_horizontal_scroll(page)
    shoot(page, f"plans-activate-{size}", full_page=True)
    page.click("#plan-activate button.primary")
    page.wait_for_url(f"**/plans/{plan.id}")
    plan = Plan.get_by_id(plan.id)
    assert plan.status == "active" and plan.backfill

    scheduler.tick(now=plan.next_run_at + timedelta(minutes=1))
    followups = {
        f.customer_id: f.assignee_id for f in FollowUp.select().where(FollowUp.plan == plan.id)
    }
    assert followups == {
        clients["小红"].id: aisyah.id,
        clients["Nurul Aisyah binti Ahmad"].id: mei.id,
    }
    page.reload()
    assert "Follow-up created" in page.locator("#plan-detail").inner_text()
    assert no_horizontal_scroll(page)
    shoot(page, f"plans-detail-{size}", full_page=True)
    page.goto("/plans")
    row = page.locator(f"#plan-{plan.id}")
    assert row.locator(".plan-figs div").first.locator("dd").inner_text() == "2"
    shoot(page, f"plans-list-{size}", full_page=True)

    staff_page = open_page(size)
    sign_in(staff_page, aisyah.email)
    staff_page.goto("/today")
    text = staff_page.locator("main").inner_text()
    assert "小红" in text and "Nurul" not in text


def test_whatsapp_template_blocks_switching_on_until_meta_approves(open_page, salon, shoot):
    from app.models import MessageTemplate
    from app.services import message_templates, plans

    store, farah, _, _, _ = salon
    page = open_page("phone")
    sign_in(page, farah.email)
    page.goto("/message-templates")
    page.click("text=New template")
    # The chips' script is deferred: wait for the page's load, not only for the form's markup.
    page.wait_for_url("**/message-templates/new", wait_until="load")
    page.locator("#mt-form").wait_for()
    page.fill("input[name=name]", "Member day")
    page.select_option("select[name=channel]", "whatsapp")
    page.fill("input[name=wa_name]", "member_day_reminder")
    english = 'textarea[name="body.en"]'
    page.fill(english, "Hi , member day is {member_day}.")
    page.locator(english).evaluate("a => { a.focus(); a.setSelectionRange(3, 3); }")
    page.locator('.var-chip[data-var="{first_name}"]').first.click()
    assert page.input_value(english) == "Hi {first_name}, member day is {member_day}."
    page.fill('textarea[name="body.zh_Hans"]', "{first_name}您好,{member_day}是会员日!")
    page.click("#mt-form button.primary")
    page.wait_for_url(re.compile(r"/message-templates/\d+$"))
    template = MessageTemplate.get(MessageTemplate.store == store.id)
    assert page.locator(".mt-approval").first.get_attribute("data-approval") == "pending"
    assert "Hi {{1}}, member day is {{2}}." in page.locator("#variant-en").inner_text()
    page.fill("#mt-q", "小红")
    page.wait_for_function(
        "document.querySelector('#mt-preview .mt-rendered .script')?.textContent.startsWith('Hi 小红')"
    )
    assert no_horizontal_scroll(page)
    shoot(page, "message-template-phone", full_page=True)

    plan = plans.create_plan(
        store,
        {
            "template": "member_day",
            "name": "Member day push",
            "action": {"kind": "message", "channel": "whatsapp", "message_template": template.id},
        },
        clock.now(),
    )
    page.goto(f"/plans/{plan.id}/activate")
    assert "member_day_reminder" in page.locator(".activation-blocked").inner_text()
    page.click("#plan-activate button.primary")
    page.locator(".activation-blocked").wait_for()
    assert Plan.get_by_id(plan.id).status == "draft"
    shoot(page, "plans-activate-blocked-phone", full_page=True)

    for language in ("en", "zh_CN"):
        message_templates.handle_status_webhook(
            store,
            {
                "event": "APPROVED",
                "message_template_name": "member_day_reminder",
                "message_template_language": language,
                "reason": "NONE",
            },
            clock.now(),
        )
    page.goto(f"/plans/{plan.id}/activate")
    assert page.locator(".activation-blocked").count() == 0
    page.click("#plan-activate button.primary")
    page.wait_for_url(f"**/plans/{plan.id}")
    assert Plan.get_by_id(plan.id).status == "active"
