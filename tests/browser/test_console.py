"""The manager console in a real browser: the dashboard and bulk reassignment, phone and desktop."""

from datetime import timedelta

import pytest

from app import clock
from app.models import ContactLog, FollowUp, Plan, Visit
from app.services import reports
from tests.browser.helpers import no_horizontal_scroll, sign_in
from tests.factories import make_customer, make_staff, make_store

pytestmark = pytest.mark.browser


@pytest.fixture
def salon(csrf_app):
    store = make_store("kl", name="Bunga Beauty KL", timezone="Asia/Kuala_Lumpur")
    farah = make_staff("manager", [store], name="Farah", email="farah@example.test")
    aisyah = make_staff("employee", [store], name="Aisyah", email="aisyah@example.test")
    mei = make_staff("employee", [store], name="Mei Ling", email="mei@example.test")
    plan = Plan.create(
        store=store,
        name="Second visit",
        template="second_visit",
        type="behaviour",
        status="active",
        window_days=14,
    )
    now = clock.now()
    for i, name in enumerate(["王小红", "สมหญิง", "Nurul", "Siti", "Lim"]):
        c = make_customer(store, name=name)
        if i < 2:
            f = FollowUp.create(
                store=store,
                customer=c,
                plan=plan,
                assignee=aisyah,
                due_at=now - timedelta(days=3),
                status="done",
                completed_at=now - timedelta(days=3),
            )
            ContactLog.create(
                followup=f, customer=c, staff=aisyah, outcome="reached", at=now - timedelta(days=3)
            )
            Visit.create(
                customer=c,
                store=store,
                day=(now - timedelta(days=1)).date(),
                first_at=now - timedelta(days=1),
                amount="80.00",
            )
        else:
            FollowUp.create(
                store=store,
                customer=c,
                plan=plan,
                assignee=aisyah,
                due_at=now - timedelta(days=i),
                open_customer=c.id,
            )
    reports.attribute_returns(store)  # the visits above were written directly, not as events
    return store, farah, aisyah, mei


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_manager_reads_dashboard_and_drills_into_overdue_work(open_page, salon, shoot, size):
    store, farah, aisyah, mei = salon
    page = open_page(size)
    sign_in(page, farah.email)
    page.goto("/dashboard")
    assert page.locator("svg.bars").count() >= 2
    assert no_horizontal_scroll(page)
    shoot(page, f"console-dashboard-{size}", full_page=True)
    tiles = page.locator(".tiles .tile")
    assert "2" in tiles.nth(2).inner_text()  # came back
    page.click("text=Last 7 days")
    page.wait_for_url("**/dashboard?start=*")
    page.locator(".tile.warn").first.click()
    page.wait_for_url("**/team/followups?**")
    assert "3 follow-ups match." in page.inner_text("#team-followups")


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_manager_reassigns_selected_overdue_work_in_bulk(open_page, salon, shoot, size):
    store, farah, aisyah, mei = salon
    page = open_page(size)
    sign_in(page, farah.email)
    page.goto(f"/team/followups?assignee={aisyah.id}&status=open")
    assert no_horizontal_scroll(page)
    boxes = page.locator("input[name=ids]")
    assert boxes.count() == 3
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.select_option(".bulk-bar select[name=target]", str(mei.id))
    shoot(page, f"console-reassign-{size}", full_page=True)
    page.click(".bulk-bar button[type=submit]")
    page.locator("text=2 follow-ups reassigned.").wait_for()
    assert FollowUp.select().where(FollowUp.assignee == mei.id).count() == 2
    assert "1 follow-up matches." in page.inner_text("#team-followups")
    shoot(page, f"console-reassigned-{size}", full_page=True)


@pytest.mark.parametrize(
    "path",
    [
        "/team",
        "/tags",
        "/tags/bulk",
        "/reports",
        "/settings",
        "/settings/audit",
        "/settings/staff/new",
    ],
)
def test_console_pages_fit_a_360_px_phone(open_page, salon, shoot, path):
    store, farah, aisyah, mei = salon
    page = open_page("phone")
    sign_in(page, farah.email)
    page.goto(path)
    assert page.locator("main h1").count() >= 1
    assert no_horizontal_scroll(page)
    shoot(page, "console-phone" + path.replace("/", "-"), full_page=True)


def test_store_settings_fit_a_phone_and_show_errors_inline(open_page, salon, shoot):
    store, farah, aisyah, mei = salon
    page = open_page("phone")
    sign_in(page, farah.email)
    page.goto(f"/settings/stores/{store.id}")
    assert no_horizontal_scroll(page)
    page.fill("input[name=quiet_start]", "25:00")
    page.click(".settings-form button[type=submit]")
    page.locator("text=Enter a time as HH:MM").wait_for()
    shoot(page, "console-phone-store-settings-error", full_page=True)
