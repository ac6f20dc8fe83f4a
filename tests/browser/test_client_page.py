"""The client's own page on a phone: Thai, one thumb, redeem a reward, switch messages off."""

import pytest

from app import clock
from app.models import Consent, Coupon, Customer, Reward
from app.services import loyalty
from tests.browser.helpers import htmx_idle, no_horizontal_scroll
from tests.factories import make_card, make_customer, make_store

pytestmark = pytest.mark.browser


@pytest.fixture
def somying(csrf_app):
    store = make_store(
        "happy-paws",
        name="Happy Paws Animal Clinic",
        timezone="Asia/Bangkok",
        region="TH",
        currency="THB",
        locale="th",
    )
    Reward.create(store=store, name="อาบน้ำแมวฟรี", points_price=200)
    Reward.create(store=store, name="ตัดขนฟรี", points_price=500)
    customer = make_customer(store, name="สมหญิง ใจดี", phone="+66812345678", locale="th")
    make_card(customer, "count", remaining_uses=3)
    Consent.create(customer=customer, channel="line", granted=True, source="counter")
    loyalty.adjust(customer, 320, "Opening balance", None, clock.now())
    with csrf_app.app_context():
        return Customer.get_by_id(customer.id), loyalty.portal_path(customer, clock.now())


def test_client_redeems_and_opts_out_on_a_phone_in_thai(phone, somying, shoot):
    customer, path = somying
    phone.goto(path)
    assert phone.locator("html").get_attribute("lang").startswith("th")
    assert phone.locator("[data-points]").get_attribute("data-points") == "320"
    assert "ตัดขนฟรี" in phone.locator("#portal").inner_text()  # the next reward
    assert no_horizontal_scroll(phone)
    shoot(phone, "client-page-th", full_page=True)

    redeem = phone.locator(".reward", has_text="อาบน้ำแมวฟรี").locator("button")
    box = redeem.bounding_box()
    assert box["height"] >= 40  # a thumb-sized button
    redeem.tap()
    htmx_idle(phone)
    coupon = Coupon.get(Coupon.customer == customer.id)
    assert phone.locator("[role=status] .code").inner_text() == coupon.code
    assert phone.locator("[data-points]").get_attribute("data-points") == "120"

    phone.locator("form.switch", has_text="LINE").locator("button").tap()
    htmx_idle(phone)
    assert not Consent.get(Consent.customer == customer.id, Consent.channel == "line").granted
    assert no_horizontal_scroll(phone)
    shoot(phone, "client-page-th-after", full_page=True)
