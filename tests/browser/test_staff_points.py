"""Points at the counter on a phone: the client's profile shows the balance, staff redeem a
reward and mark the coupon used; the manager's loyalty console counts it."""

import pytest

from app import clock
from app.models import Coupon, Customer, Reward
from app.services import loyalty
from tests.browser.helpers import htmx_idle, no_horizontal_scroll, sign_in
from tests.factories import make_customer, make_staff, make_store

pytestmark = pytest.mark.browser


@pytest.fixture
def counter(csrf_app):
    store = make_store("kl", name="Bunga Beauty KL", timezone="Asia/Kuala_Lumpur", currency="MYR")
    aisyah = make_staff("employee", [store], name="Aisyah", email="aisyah@example.test")
    farah = make_staff("manager", [store], name="Farah", email="farah@example.test")
    Reward.create(store=store, name="Free hair mask", points_price=200)
    Reward.create(store=store, name="Free haircut", points_price=800)
    customer = make_customer(store, name="Nurul Huda")
    loyalty.adjust(customer, 320, "Opening balance", farah, clock.now())
    return Customer.get_by_id(customer.id), aisyah, farah


def test_staff_redeem_from_the_profile_and_the_console_counts_it(phone, counter, open_page):
    customer, aisyah, farah = counter
    sign_in(phone, aisyah.email)
    phone.goto(f"/customers/{customer.id}")
    points = phone.locator(f"#points-{customer.id}")
    points.wait_for()
    assert points.locator("[data-points]").get_attribute("data-points") == "320"
    assert "480 more points to Free haircut" in points.inner_text()
    assert no_horizontal_scroll(phone)

    redeem = points.locator("li", has_text="Free hair mask").locator("button")
    assert redeem.bounding_box()["height"] >= 40
    redeem.tap()
    htmx_idle(phone)
    coupon = Coupon.get(Coupon.customer == customer.id)
    points = phone.locator(f"#points-{customer.id}")
    assert coupon.code in points.inner_text() and coupon.issued_by_id == aisyah.id
    assert points.locator("[data-points]").get_attribute("data-points") == "120"

    points.locator("li", has_text=coupon.code).locator("button", has_text="Mark used").tap()
    htmx_idle(phone)
    assert Coupon.get_by_id(coupon.id).status == "used"
    assert "used" in phone.locator(f"#points-{customer.id} [role=status]").inner_text()

    console = open_page("phone")
    sign_in(console, farah.email)
    console.goto("/loyalty")
    assert console.locator("[data-stat=redeemed]").inner_text() == "200"
    assert console.locator("[data-stat=outstanding]").inner_text() == "120"
    assert no_horizontal_scroll(console)


def test_a_client_reads_out_a_coupon_code_and_staff_find_and_use_it_on_a_phone(
    phone, counter, shoot
):
    customer, aisyah, _farah = counter
    reward = Reward.get(Reward.name == "Free hair mask")
    coupon = loyalty.redeem(customer, reward, clock.now(), source="portal")
    sign_in(phone, aisyah.email)
    phone.goto("/customers")
    phone.fill("#customer-q", coupon.code.lower())
    card = phone.locator("#coupon-match")
    card.wait_for()
    assert "Free hair mask" in card.inner_text() and "Nurul Huda" in card.inner_text()
    assert no_horizontal_scroll(phone)
    shoot(phone, "coupon-lookup-phone", full_page=True)
    button = card.locator("button", has_text="Mark used")
    assert button.bounding_box()["height"] >= 40
    button.tap()
    phone.wait_for_url(f"**/customers/{customer.id}/points")
    assert f"Coupon {coupon.code} used." in phone.locator(".flash").inner_text()
    assert Coupon.get_by_id(coupon.id).status == "used"
