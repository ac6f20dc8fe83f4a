"""First load of Today on a phone: what the browser really transfers stays under 100 KB."""

from datetime import timedelta

import pytest

from app import clock
from app.models import FollowUp, Plan
from tests.factories import PASSWORD, make_customer, make_reason, make_staff, make_store

pytestmark = pytest.mark.browser

BUDGET = 100 * 1024


@pytest.fixture
def busy_employee(csrf_app):
    """An employee with 200 open follow-ups (overdue, today and upcoming) in Thai and Chinese."""
    store = make_store("bkk", name="ร้านเสริมสวย Happy Lash", timezone="Asia/Bangkok", region="TH")
    staff = make_staff("employee", [store], email="malee@example.test", name="มาลี")
    plan = Plan.create(store=store, name="บัตรใกล้หมดอายุ", template="card_expiry", type="recurring")
    now = clock.now()
    for n in range(200):
        name = f"สมศรี ใจดีมาก {n}" if n % 2 else f"陈小红美容 {n}"
        customer = make_customer(store, name=name, phone=f"+668123{n:05d}")
        f = FollowUp.create(
            store=store,
            customer=customer,
            plan=plan,
            assignee=staff,
            due_at=now + timedelta(hours=n - 100),
            open_customer=customer.id,
            script="สวัสดีค่ะ",
        )
        make_reason(f, plan, text="card", script=f.script)
    return staff


def test_first_load_of_today_transfers_under_100_kb(browser, live_server, busy_employee):
    login = browser.new_context(base_url=live_server, viewport={"width": 360, "height": 640})
    page = login.new_page()
    page.goto("/login")
    page.fill("input[name=email]", busy_employee.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url("**/today")
    state = login.storage_state()
    login.close()

    # A new context has an empty cache: the page, its CSS and its JS all come over the wire.
    fresh = browser.new_context(
        base_url=live_server, viewport={"width": 360, "height": 640}, storage_state=state
    )
    page = fresh.new_page()
    responses = []
    page.on("response", lambda response: responses.append(response))
    page.goto("/today", wait_until="networkidle")
    assert page.locator("article.fu").count() >= 50

    sent = {}
    for response in responses:
        if response.request.resource_type == "font":
            continue
        sizes = response.request.sizes()
        sent[response.url] = sizes["responseBodySize"] + sizes["responseHeadersSize"]
    fresh.close()
    kinds = {url.rsplit("/", 1)[-1].split("?")[0] for url in sent}
    assert {"today", "app.css", "app.js", "htmx-2.0.11.min.js"} <= kinds
    total = sum(sent.values())
    assert total < BUDGET, f"{total} bytes: {sent}"
