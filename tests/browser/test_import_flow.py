"""Importing a small CSV on a 360×640 phone: upload, map, check, run, progress and report."""

import pytest

from app.models import Customer
from tests.browser.helpers import no_horizontal_scroll
from tests.factories import PASSWORD, make_staff, make_store

pytestmark = pytest.mark.browser

CSV = (
    "姓名,手机,标签,Hair type\n"
    "小红,0123456789,VIP,Gold\n"
    "Nurul Aisyah binti Ahmad,0134445555,,Silver\n"
    "Broken,12,,\n"
)


def test_manager_imports_a_csv_on_a_phone(phone, csrf_app, shoot, tmp_path):
    store = make_store("kl", name="Bunga Beauty KL", region="MY")
    farah = make_staff("manager", [store], email="farah@example.test", name="Farah")
    upload = tmp_path / "clients.csv"
    upload.write_text(CSV, encoding="utf-8")
    page = phone
    page.goto("/login")
    page.fill("input[name=email]", farah.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_load_state()

    page.goto("/imports")
    assert no_horizontal_scroll(page)
    page.set_input_files("input[name=file]", str(upload))
    shoot(page, "import-1-upload")
    page.click("#import-upload button[type=submit]")
    page.wait_for_url("**/mapping")
    assert page.locator("select[name=col-0]").input_value() == "name"
    assert page.locator("select[name=col-1]").input_value() == "phone"
    assert page.locator("select[name=col-3]").input_value() == "attribute"
    assert no_horizontal_scroll(page)  # the mapping table scrolls inside its own box
    shoot(page, "import-2-mapping", full_page=True)

    page.click("#import-mapping button.primary")
    page.locator("li", has_text="would be created").wait_for()
    assert "2 would be created" in page.inner_text("#import-mapping")
    assert "Line 4" in page.inner_text("#import-mapping")
    shoot(page, "import-3-check", full_page=True)

    page.click("#import-mapping button.primary")  # Import now
    page.locator("text=Import finished.").wait_for()
    assert page.locator("#import-status progress").get_attribute("value") == "100"
    report = page.inner_text("#import-status")
    assert "2 created" in report and "1 rejected" in report and "lines 2–3" in report
    assert no_horizontal_scroll(page)
    shoot(page, "import-4-report", full_page=True)
    assert {c.name for c in Customer.select()} == {"小红", "Nurul Aisyah binti Ahmad"}


def test_the_check_of_a_big_file_shows_progress_until_the_worker_is_done(phone, csrf_app):
    from app.tasks import import_jobs as import_tasks

    store = make_store("kl", name="Bunga Beauty KL", region="MY")
    farah = make_staff("manager", [store], email="farah@example.test", name="Farah")
    page = phone
    page.goto("/login")
    page.fill("input[name=email]", farah.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_load_state()
    page.goto("/imports")
    page.set_input_files(
        "input[name=file]",
        files=[{"name": "clients.csv", "mimeType": "text/csv", "buffer": CSV.encode()}],
    )
    page.click("#import-upload button[type=submit]")
    page.wait_for_url("**/mapping")
    job_id = page.url.rstrip("/").split("/")[-2]

    import_tasks.huey.immediate = False  # the worker has not picked the check up yet
    try:
        import_tasks.huey.flush()
        page.click("#import-mapping button.primary")
        page.locator("text=Checking every row").wait_for()
        assert page.locator("#import-mapping progress").count() == 1
        assert Customer.select().count() == 0
        import_tasks.check_import.call_local(job_id)  # the worker runs it
        page.locator("li", has_text="would be created").wait_for(timeout=10_000)
    finally:
        import_tasks.huey.flush()
        import_tasks.huey.immediate = True
    assert "2 would be created" in page.inner_text("#import-mapping")
    assert page.locator("#import-mapping[hx-trigger]").count() == 0  # polling stopped
    page.click("#import-mapping button.primary")  # Import now
    page.locator("text=Import finished.").wait_for()
