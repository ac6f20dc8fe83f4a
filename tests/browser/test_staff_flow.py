"""The staff flow on a 360×640 phone, in a real browser against the real server."""

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from babel.support import Translations

from app import clock
from app.models import (
    ContactLog,
    CustomerCard,
    CustomerTag,
    Event,
    FollowUp,
    Plan,
    Tag,
)
from tests.browser.helpers import htmx_idle, no_horizontal_scroll, sign_in
from tests.factories import make_card, make_customer, make_reason, make_staff, make_store

pytestmark = pytest.mark.browser

TRANSLATIONS = Path(__file__).resolve().parents[2] / "app" / "translations"
SCRIPT = "Hi 小红, your Lash card (RM 120.00 left) expires on 31 Dec. Book a refill?"


def make_followup(store, customer, staff, due_at, plan, script):
    f = FollowUp.create(
        store=store,
        customer=customer,
        plan=plan,
        assignee=staff,
        due_at=due_at,
        open_customer=customer.id,
        script=script,
    )
    make_reason(f, plan, text="Lash card expires on 31 Dec", script=script)
    return f


@pytest.fixture
def salon(csrf_app):
    store = make_store("kl", name="Bunga Beauty KL", settings={"followup_hour": "10:00"})
    aisyah = make_staff("employee", [store], email="aisyah@example.test", name="Aisyah")
    expiry = Plan.create(
        store=store, name="Card expiry", template="card_expiry", type="recurring", status="active"
    )
    second = Plan.create(
        store=store, name="Second visit", template="second_visit", type="behaviour", status="active"
    )
    xiaohong = make_customer(store, name="小红", phone="+60123456789", source="Google Maps")
    make_card(xiaohong, "stored_value", balance=Decimal("120.00"))
    nurul = make_customer(
        store, name="Nurul Aisyah binti Ahmad", phone="+60134445555", source="Instagram"
    )
    now = clock.now()
    overdue = make_followup(store, xiaohong, aisyah, now - timedelta(days=1), expiry, SCRIPT)
    make_followup(store, nurul, aisyah, now + timedelta(minutes=5), second, "Hi Nurul, come back?")
    return store, aisyah, xiaohong, overdue


def test_employee_logs_no_answer_undoes_then_books_from_today(phone, salon, shoot):
    _, aisyah, xiaohong, f = salon
    page = phone
    sign_in(page, aisyah.email)
    assert page.locator("#h-overdue").is_visible() and page.locator("#h-today").is_visible()
    assert page.locator("#count-overdue").inner_text() == "1"
    assert page.locator("#count-today").inner_text() == "1"
    assert no_horizontal_scroll(page)
    shoot(page, "today-360")
    page.evaluate("window.__noReload = true")

    # Tap 1: open the follow-up in place.
    page.click(f"#followup-{f.id} a.fu-open")
    card = page.locator(f"#followup-{f.id}.fu-card")
    card.wait_for()
    htmx_idle(page)
    assert SCRIPT in card.locator(".script").first.inner_text()
    assert no_horizontal_scroll(page)
    card.locator("button.copy").first.click()
    page.wait_for_function("document.querySelector('button.copy').dataset.copied === '1'")
    assert page.evaluate("navigator.clipboard.readText()") == SCRIPT
    shoot(page, "followup-card-in-today-360")

    # Tap 2: no answer. The card leaves the list with an undo, no reload.
    card.locator("button[value=no_answer]").click()
    strip = page.locator(f"#followup-{f.id}.fu-logged")
    strip.wait_for()
    assert "No answer" in strip.inner_text()
    page.wait_for_function("document.querySelector('#count-overdue').textContent.trim() === '0'")
    assert page.evaluate("window.__noReload") is True
    assert FollowUp.get_by_id(f.id).attempts == 1
    page.evaluate("window.scrollTo(0, 0)")
    shoot(page, "today-undo-360")

    # Undo brings it back.
    strip.locator("button.undo").click()
    card.wait_for()
    htmx_idle(page)
    page.wait_for_function("document.querySelector('#count-overdue').textContent.trim() === '1'")
    assert FollowUp.get_by_id(f.id).attempts == 0
    assert page.evaluate("window.__noReload") is True

    # Booked with a date: "Booked…" then the date, then "Save booking". The LINE button
    # tapped first makes LINE the logged channel.
    with page.context.expect_page() as popup:
        card.locator("a[data-channel=line]").click()
    popup.value.close()
    day = (clock.now() + timedelta(days=3)).date().isoformat()
    card.locator("details.booked > summary").click()
    card.locator("input[name=appointment_date]").fill(day)
    card.locator("input[name=appointment_time]").fill("15:00")
    card.locator("button[value=booked]").click()
    strip.wait_for()
    assert "Booked" in strip.inner_text()
    page.wait_for_function("document.querySelector('#count-overdue').textContent.trim() === '0'")
    assert FollowUp.get_by_id(f.id).outcome == "booked"
    assert ContactLog.get(ContactLog.followup == f.id).channel == "line"
    assert Event.get(Event.customer == xiaohong.id).type == "appointment_booked"

    # The strip goes away by itself; a fresh Today no longer lists the follow-up.
    page.wait_for_selector(f"#followup-{f.id}", state="detached", timeout=15_000)
    page.goto("/today")
    assert page.locator(f"#followup-{f.id}").count() == 0

    # The profile shows the booking in the timeline.
    page.goto(f"/customers/{xiaohong.id}")
    timeline = page.locator("ol.timeline")
    assert "Appointment booked" in timeline.inner_text()
    assert "Contacted" in timeline.inner_text()
    assert no_horizontal_scroll(page)
    shoot(page, "profile-360")
    page.evaluate("document.getElementById('timeline').scrollIntoView()")
    shoot(page, "profile-timeline-360")


def test_followup_card_page_has_contact_buttons_and_fits_the_phone(phone, salon, shoot):
    _, aisyah, _, f = salon
    page = phone
    sign_in(page, aisyah.email)
    page.goto(f"/followups/{f.id}")
    assert page.locator("a[href^='https://wa.me/60123456789?text=']").is_visible()
    assert page.locator("a[href^='https://line.me/R/msg/text/?']").is_visible()
    assert page.locator("a[href^='sms:+60123456789']").is_visible()
    assert page.locator("a[href='tel:+60123456789']").is_visible()
    assert no_horizontal_scroll(page)
    small = page.evaluate(
        """() => [...document.querySelectorAll('main button, main a.button, main summary')]
            .filter(el => el.offsetParent !== null)
            .filter(el => el.getBoundingClientRect().height < 44)
            .map(el => el.outerHTML.slice(0, 80))"""
    )
    assert small == []
    shoot(page, "followup-card-360")
    # The outcome buttons stay within thumb reach at the bottom of the screen.
    box = page.locator("button[value=no_answer]").bounding_box()
    assert box["y"] + box["height"] <= 640


def test_employee_of_another_store_gets_404_for_the_followup(phone, salon):
    _, _, _, f = salon
    other = make_store(
        "bkk", name="Happy Paws", timezone="Asia/Bangkok", region="TH", currency="THB"
    )
    somchai = make_staff("employee", [other], email="somchai@example.test", name="Somchai")
    page = phone
    sign_in(page, somchai.email)
    response = page.goto(f"/followups/{f.id}")
    assert response.status == 404


def test_counter_card_use_on_the_phone_shows_the_new_balance(phone, salon, shoot):
    _, aisyah, xiaohong, _ = salon
    card = make_card(xiaohong, "count", remaining_uses=3)
    page = phone
    sign_in(page, aisyah.email)
    page.goto(f"/customers/{xiaohong.id}")
    page.click("text=Record at the counter")
    page.wait_for_url(f"**/customers/{xiaohong.id}/counter")
    form = page.locator("#counter-card_used")
    form.locator("select[name=card]").select_option(str(card.id))
    form.locator("button[type=submit]").click()
    page.locator("#counter-card_used .flash").wait_for()
    assert "2 uses left" in page.locator("#counter-card_used .flash").inner_text()
    assert no_horizontal_scroll(page)
    page.locator("#counter-card_used").scroll_into_view_if_needed()
    shoot(page, "counter-360")
    assert CustomerCard.get_by_id(card.id).remaining_uses == 2


THAI_SCRIPT = "สวัสดีค่ะคุณสมศรี บัตรขนตาของคุณ (เหลือ ฿1,200.00) จะหมดอายุวันที่ 31 ธ.ค. จองเติมขนตาไหมคะ"


def thai() -> Translations:
    """The compiled Thai catalogue the app serves."""
    return Translations.load(str(TRANSLATIONS), ["th"])


@pytest.fixture
def thai_salon(csrf_app):
    store = make_store(
        "bkk",
        name="ร้านขนตาสวย สาขาอารีย์",
        timezone="Asia/Bangkok",
        region="TH",
        currency="THB",
        settings={"followup_hour": "10:00"},
    )
    malee = make_staff("employee", [store], email="malee@example.test", name="มาลี", locale="th")
    expiry = Plan.create(
        store=store, name="บัตรใกล้หมดอายุ", template="card_expiry", type="recurring", status="active"
    )
    somsri = make_customer(store, name="สมศรี ใจดี", phone="+66812345678", source="LINE OA")
    make_card(somsri, "stored_value", balance=Decimal("1200.00"))
    now = clock.now()
    f = make_followup(store, somsri, malee, now - timedelta(days=1), expiry, THAI_SCRIPT)
    return store, malee, somsri, f


def test_thai_employee_copies_the_script_and_books_from_today(phone, thai_salon):
    _, malee, somsri, f = thai_salon
    t = thai()
    overdue, booked = t.gettext("Overdue"), t.gettext("Booked")
    assert overdue != "Overdue" and booked != "Booked"  # the catalogue really is Thai
    page = phone
    sign_in(page, malee.email)
    assert page.locator("html").get_attribute("lang") == "th"
    assert page.locator("#h-overdue").inner_text().startswith(overdue)
    assert page.locator("#h-today").inner_text().startswith(t.gettext("Due today"))
    assert page.locator("#h-upcoming").inner_text().startswith(t.gettext("Upcoming"))
    assert no_horizontal_scroll(page)

    page.click(f"#followup-{f.id} a.fu-open")
    card = page.locator(f"#followup-{f.id}.fu-card")
    card.wait_for()
    htmx_idle(page)
    for outcome in ("Reached", "No answer", "Declined", "Wrong number", "Opted out"):
        value = outcome.lower().replace(" ", "_")
        assert card.locator(f"button[value={value}]").inner_text() == t.gettext(outcome)
    assert card.locator("details.booked > summary").inner_text().startswith(booked)
    assert card.locator("button.copy").first.inner_text() == t.gettext("Copy script")
    assert no_horizontal_scroll(page)

    card.locator("button.copy").first.click()
    page.wait_for_function("document.querySelector('button.copy').dataset.copied === '1'")
    assert page.evaluate("navigator.clipboard.readText()") == THAI_SCRIPT

    day = (clock.now() + timedelta(days=2)).date().isoformat()
    card.locator("details.booked > summary").click()
    card.locator("input[name=appointment_date]").fill(day)
    card.locator("input[name=appointment_time]").fill("14:30")
    card.locator("button[value=booked]").click()
    strip = page.locator(f"#followup-{f.id}.fu-logged")
    strip.wait_for()
    assert booked in strip.inner_text()
    page.wait_for_function("document.querySelector('#count-overdue').textContent.trim() === '0'")
    assert FollowUp.get_by_id(f.id).outcome == "booked"
    assert Event.get(Event.customer == somsri.id).type == "appointment_booked"

    page.wait_for_selector(f"#followup-{f.id}", state="detached", timeout=15_000)
    page.goto("/today")
    assert page.locator(f"#followup-{f.id}").count() == 0

    page.goto(f"/customers/{somsri.id}")
    timeline = page.locator("ol.timeline").inner_text()
    assert t.gettext("Appointment booked") != "Appointment booked"
    assert t.gettext("Appointment booked") in timeline
    assert no_horizontal_scroll(page)


def test_manager_filters_clients_by_tag_and_tags_them_all_on_the_phone(phone, salon, shoot):
    store, _, xiaohong, _ = salon
    vip, lash = Tag.create(store=store, name="VIP"), Tag.create(store=store, name="Lash")
    CustomerTag.create(customer=xiaohong, tag=vip)
    make_customer(store, name="Siti Rahmah")
    manager = make_staff("manager", [store], email="mei@example.test", name="Mei")
    page = phone
    sign_in(page, manager.email, landing=lambda url: "/login" not in url)
    page.goto("/customers")
    page.locator("details.tag-filter > summary").click()
    page.locator(f".tag-choices input[value='{vip.id}']").check()
    page.wait_for_function("document.querySelectorAll('#customer-results a.row').length === 1")
    htmx_idle(page)
    assert page.locator("#customer-results a.row strong").inner_text() == "小红"
    assert no_horizontal_scroll(page)

    form = page.locator("form.bulk-tag")
    form.locator("select[name=bulk_tag]").select_option(str(lash.id))
    form.locator("button[type=submit]").click()
    page.locator("#customer-results .flash").wait_for()
    assert "“Lash” added to 1 client." in page.locator("#customer-results .flash").inner_text()
    shoot(page, "clients-tagged-360", full_page=True)
    tagged = [ct.customer_id for ct in CustomerTag.select().where(CustomerTag.tag == lash.id)]
    assert tagged == [xiaohong.id]
