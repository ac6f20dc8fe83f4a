"""The channels page on a 360×640 phone: sending rate per second or minute, errors inline, order."""

import pytest

from app.models import Store
from app.services import messaging
from tests.browser.test_console import sign_in
from tests.factories import make_staff, make_store

pytestmark = pytest.mark.browser


def test_manager_sets_a_per_minute_whatsapp_rate_and_the_order_on_a_phone(csrf_app, phone, shoot):
    store = make_store("kl", name="Bunga Beauty KL", timezone="Asia/Kuala_Lumpur")
    make_staff("manager", [store], name="Farah", email="farah@example.test")
    sign_in(phone, "farah@example.test")
    phone.goto("/messages/channels")
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    form = phone.locator("#channel-whatsapp form")
    assert form.locator("input[name=rate_limit]").get_attribute("placeholder") == "80"
    form.locator("input[name=rate_limit]").fill("200000")
    form.locator("button[type=submit]").click()
    phone.locator("#err-whatsapp-rate_limit").wait_for()
    shoot(phone, "channels-phone-rate-error", full_page=True)
    form = phone.locator("#channel-whatsapp form")
    form.locator("input[name=rate_limit]").fill("180")
    form.locator("select[name=rate_unit]").select_option("minute")
    form.locator("button[type=submit]").click()
    phone.locator("text=Channel settings saved.").wait_for()
    setting = messaging.channel_setting(store.id, "whatsapp")
    assert (setting.rate_limit, setting.rate_unit) == (180, "minute")
    order = phone.locator("#channel-order select[name=order]")
    order.nth(0).select_option("sms")
    order.nth(1).select_option("whatsapp")
    for i in range(2, order.count()):
        order.nth(i).select_option("")
    phone.locator("#channel-order button[type=submit]").click()
    phone.locator("text=Channel order saved.").wait_for()
    assert Store.get_by_id(store.id).setting("channel_order") == ["sms", "whatsapp"]
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    shoot(phone, "channels-phone-saved", full_page=True)
