"""Import in the web UI: upload → mapping → check → run as a job → report; cancel, resume, 404s."""

import csv
import io
import os
from datetime import timedelta
from pathlib import Path

import pytest

from app import clock
from app.models import Customer, Event, FollowUp, PointsEntry
from app.services import import_jobs, importing, plans, scheduler, tokens
from app.tasks import import_jobs as import_tasks
from tests.factories import login, make_staff, make_store

DATA = Path(__file__).parent / "data"
HX = {"HX-Request": "true"}

CUSTOMERS = (
    "name,phone,tags,notes\n"
    "Aisyah,0123456789,VIP,=cmd|' /C calc'!A0\n"
    "Mei Ling,0129876543,,\n"
    "Bad Phone,12,,\n"
    "Farah,0133333333,New,\n"
)


@pytest.fixture
def shop(app):
    store = make_store("kl", region="MY", timezone="Asia/Kuala_Lumpur")
    manager = make_staff("manager", [store], email="farah@example.test")
    return store, manager


def _upload(client, kind: str, data: bytes, name: str = "clients.csv", headers=None, **form):
    body = {"kind": kind, "file": (io.BytesIO(data), name), **form}
    return client.post(
        "/imports", data=body, content_type="multipart/form-data", headers=headers or {}
    )


def _job_id(resp) -> str:
    location = resp.headers.get("HX-Redirect") or resp.headers["Location"]
    return location.rstrip("/").split("/")[-2]


def _mapping_form(client, job_id: str) -> dict:
    """The mapping form's suggested choices, as the browser would post them."""
    job = import_jobs.read_job(job_id)
    table = import_jobs.load_table(job)

    suggested = importing.suggest_mapping(job["kind"], table.headers)
    form = {}
    for index, header in enumerate(table.headers):
        target = suggested.get(header) or ""
        form[f"col-{index}"] = "attribute" if target.startswith("attributes.") else target
    return form


def _import(client, kind: str, data: bytes, name: str = "file.csv", **options) -> str:
    resp = _upload(client, kind, data, name)
    assert resp.status_code == 303, resp.data[:400]
    job_id = _job_id(resp)
    form = {**_mapping_form(client, job_id), **options}
    assert client.post(f"/imports/{job_id}/mapping", data=form).status_code == 200
    assert client.post(f"/imports/{job_id}/run").status_code == 303
    return job_id


def test_manager_uploads_maps_checks_runs_and_gets_the_report(client, shop):
    store, manager = shop
    login(client, manager)
    page = client.get("/imports")
    assert page.status_code == 200 and b"<html" in page.data
    fragment = client.get("/imports", headers=HX)
    assert fragment.status_code == 200 and b"<html" not in fragment.data
    assert b'id="import-upload"' in fragment.data

    resp = _upload(client, "customers", CUSTOMERS.encode(), headers=HX)
    assert resp.status_code == 204
    job_id = _job_id(resp)
    mapping = client.get(f"/imports/{job_id}/mapping")
    assert mapping.status_code == 200 and b"<html" in mapping.data
    text = mapping.get_data(as_text=True)
    assert "Aisyah" in text and 'value="phone" selected' in text
    assert b"<html" not in client.get(f"/imports/{job_id}/mapping", headers=HX).data

    form = _mapping_form(client, job_id)
    summary = client.post(f"/imports/{job_id}/mapping", data=form, headers=HX)
    assert summary.status_code == 200 and b"<html" not in summary.data
    job = import_jobs.read_job(job_id)
    assert job["state"] == "checked"
    assert (job["check"]["created"], job["check"]["rejected"]) == (3, 1)
    assert "Line 4" in summary.get_data(as_text=True)
    assert Customer.select().count() == 0  # the check saved nothing

    assert client.post(f"/imports/{job_id}/run").status_code == 303
    report = client.get(f"/imports/{job_id}")
    assert report.status_code == 200 and b"<html" in report.data
    job = import_jobs.read_job(job_id)
    assert job["state"] == "done"
    assert job["totals"]["created"] == 3 and job["totals"]["rejected"] == 1
    assert job["landed"] == [[2, 3], [5, 5]]
    assert set(Customer.select(Customer.name).tuples()) == {("Aisyah",), ("Mei Ling",), ("Farah",)}
    status = client.get(f"/imports/{job_id}/status", headers=HX)
    assert status.status_code == 200 and b"<html" not in status.data
    assert b'value="100"' in status.data and b"hx-trigger" not in status.data

    rejected = client.get(f"/imports/{job_id}/rejected.csv")
    assert rejected.status_code == 200 and rejected.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(rejected.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0] == ["name", "phone", "tags", "notes", "error"]
    assert rows[1][:2] == ["Bad Phone", "12"] and "line 4" in rows[1][-1]


def test_check_and_report_page_show_the_tags_the_import_created(client, shop):
    store, manager = shop
    login(client, manager)
    resp = _upload(client, "customers", CUSTOMERS.encode())
    job_id = _job_id(resp)
    check = client.post(f"/imports/{job_id}/mapping", data=_mapping_form(client, job_id))
    text = check.get_data(as_text=True)
    assert "Tags that would be created" in text
    assert "<code>New</code> · 1 client" in text and "<code>VIP</code> · 1 client" in text
    assert client.post(f"/imports/{job_id}/run").status_code == 303
    assert import_jobs.read_job(job_id)["tags_created"] == {"New": 1, "VIP": 1}
    for headers in ({}, HX):
        page = client.get(f"/imports/{job_id}", headers=headers)
        text = page.get_data(as_text=True)
        assert page.status_code == 200 and ("<html" in text) == (not headers)
        assert "Tags this import created" in text and "<code>VIP</code> · 1 client" in text

    again = _import(client, "customers", CUSTOMERS.encode())
    assert import_jobs.read_job(again)["tags_created"] == {}
    assert "Tags this import created" not in client.get(f"/imports/{again}").get_data(as_text=True)


def test_rejected_csv_neutralises_formulas(client, shop):
    store, manager = shop
    login(client, manager)
    data = b"name,phone,notes\n=HYPERLINK(\"x\"),12,=cmd|' /C calc'!A0\n"
    job_id = _import(client, "customers", data)
    body = client.get(f"/imports/{job_id}/rejected.csv").get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))
    assert rows[1][0] == '\'=HYPERLINK("x")'
    assert rows[1][2] == "'=cmd|' /C calc'!A0"


@pytest.mark.parametrize(
    ("name", "encoding", "header", "person"),
    [
        ("customers_gbk.csv", "gb18030", "姓名", "张伟"),
        ("customers_tis620.csv", "tis-620", "ชื่อ", "สมหญิง ใจดี"),
    ],
)
def test_gbk_and_tis620_files_import_through_the_ui(client, app, name, encoding, header, person):
    store = make_store(region="TH" if "tis" in name else "CN", timezone="Asia/Bangkok")
    manager = make_staff("manager", [store])
    login(client, manager)
    resp = _upload(client, "customers", (DATA / name).read_bytes(), name)
    job_id = _job_id(resp)
    page = client.get(f"/imports/{job_id}/mapping").get_data(as_text=True)
    assert header in page and person in page
    detected = import_jobs.load_table(import_jobs.read_job(job_id)).encoding
    assert detected.replace("_", "-").lower() in (encoding, "gbk", "gb2312", "tis-620", "cp874")
    form = _mapping_form(client, job_id)
    form["encoding"] = encoding
    assert client.post(f"/imports/{job_id}/mapping", data=form).status_code == 200
    client.post(f"/imports/{job_id}/run")
    assert import_jobs.read_job(job_id)["state"] == "done"
    assert Customer.get(Customer.name == person).store_id == store.id


def test_choosing_the_wrong_encoding_says_so(client, shop):
    store, manager = shop
    login(client, manager)
    job_id = _job_id(_upload(client, "customers", (DATA / "customers_gbk.csv").read_bytes()))
    resp = client.get(f"/imports/{job_id}/mapping?encoding=utf-8")
    assert resp.status_code == 200
    assert "not in this encoding" in resp.get_data(as_text=True)


def test_upload_answers_422_with_the_reason(client, shop):
    store, manager = shop
    login(client, manager)
    wrong = _upload(client, "customers", b"MZ\x90\x00", "virus.exe", headers=HX)
    assert wrong.status_code == 422 and b"CSV or Excel" in wrong.data
    assert b"<html" not in wrong.data
    empty = _upload(client, "customers", b"", "empty.csv", headers=HX)
    assert empty.status_code == 422 and b"empty" in empty.data
    header_only = _upload(client, "customers", b"name,phone\n", "h.csv")
    assert header_only.status_code == 422 and b"<html" in header_only.data
    no_file = client.post("/imports", data={"kind": "customers"}, headers=HX)
    assert no_file.status_code == 422 and b"Choose a file" in no_file.data


def test_mapping_without_name_or_phone_answers_422(client, shop):
    store, manager = shop
    login(client, manager)
    job_id = _job_id(_upload(client, "customers", CUSTOMERS.encode()))
    form = {f"col-{i}": "" for i in range(4)}
    resp = client.post(f"/imports/{job_id}/mapping", data=form, headers=HX)
    assert resp.status_code == 422 and b"<html" not in resp.data
    assert b"Map a column to the name, the phone or the external id." in resp.data
    twice = {"col-0": "name", "col-1": "name"}
    resp = client.post(f"/imports/{job_id}/mapping", data=twice)
    assert resp.status_code == 422 and b"More than one column" in resp.data
    assert import_jobs.read_job(job_id)["state"] == "uploaded"


def test_cancel_stops_the_import_and_resume_finishes_it(client, shop):
    store, manager = shop
    login(client, manager)
    job_id = _job_id(_upload(client, "customers", CUSTOMERS.encode()))
    client.post(f"/imports/{job_id}/mapping", data=_mapping_form(client, job_id))
    import_jobs.queue(job_id, clock.now())  # queued, the worker has not started yet
    resp = client.post(f"/imports/{job_id}/cancel", headers=HX)
    assert resp.status_code == 200 and b"<html" not in resp.data
    job = import_jobs.run(job_id, clock.now())
    assert job["state"] == "cancelled" and job["next_row"] == 0
    assert Customer.select().count() == 0
    page = client.get(f"/imports/{job_id}").get_data(as_text=True)
    assert "Resume" in page
    resp = client.post(f"/imports/{job_id}/resume", headers=HX)
    assert resp.status_code == 200
    job = import_jobs.read_job(job_id)
    assert job["state"] == "done" and job["totals"]["created"] == 3
    assert Customer.select().count() == 3


class Killed(BaseException):
    """The worker process dying mid-import."""


def _big_file(rows: int) -> bytes:
    lines = ["external id,name,phone,tags"]
    for n in range(rows):
        phone = "12" if n % 97 == 60 else f"012{n:07d}"
        ext = f"M{n % 1150}"  # the last 50 rows repeat earlier members: merged, never doubled
        lines.append(f"{ext},Member {n},{phone},tag{n % 3}")
    return ("\n".join(lines) + "\n").encode()


def test_resume_after_a_killed_worker_loses_and_doubles_nothing(client, app):
    data = _big_file(1200)
    totals = {}
    for key in ("straight", "killed"):
        store = make_store(key, region="MY")
        manager = make_staff("manager", [store])
        client.post("/logout")
        login(client, manager)
        job_id = _job_id(_upload(client, "customers", data))
        client.post(f"/imports/{job_id}/mapping", data=_mapping_form(client, job_id))
        if key == "straight":
            client.post(f"/imports/{job_id}/run")
        else:
            import_jobs.queue(job_id, clock.now())
            calls = {"n": 0}

            def die_after_first_batch(calls=calls):
                calls["n"] += 1
                if calls["n"] == 2:
                    raise Killed
                return False

            with pytest.raises(Killed):
                import_jobs.run(job_id, clock.now(), should_cancel=die_after_first_batch)
            job = import_jobs.read_job(job_id)
            assert job["state"] == "running" and job["next_row"] == importing.BATCH_SIZE
            assert Customer.select().where(Customer.store == store.id).count() > 0
            old = (clock.now() - timedelta(minutes=3)).isoformat()
            import_jobs.write_job(job_id, heartbeat=old)
            assert import_jobs.is_stale(import_jobs.read_job(job_id), clock.now())
            assert import_tasks.resume_stale_imports.call_local() == [job_id]
        job = import_jobs.read_job(job_id)
        assert job["state"] == "done"
        totals[key] = (
            job["totals"],
            job["landed"],
            Customer.select().where(Customer.store == store.id).count(),
            len(import_jobs.rejected_rows(job)),
        )
    assert totals["killed"] == totals["straight"]
    assert totals["straight"][0]["created"] == totals["straight"][2]
    assert totals["straight"][0]["rejected"] == totals["straight"][3] > 0


def test_reimporting_the_same_file_changes_nothing(client, shop):
    store, manager = shop
    login(client, manager)
    _import(client, "customers", CUSTOMERS.encode())
    before = list(Customer.select().order_by(Customer.id).dicts())
    again = _import(client, "customers", CUSTOMERS.encode())
    totals = import_jobs.read_job(again)["totals"]
    assert (totals["created"], totals["updated"], totals["unchanged"]) == (0, 0, 3)
    assert list(Customer.select().order_by(Customer.id).dicts()) == before


def _history(client, store, **options) -> None:
    now = clock.now()
    lines = ["order no,phone,date,type"]
    for n in range(3):
        day = (now - timedelta(days=6, hours=n)).strftime("%Y-%m-%d %H:%M")
        lines.append(f"H-{store.key}-{n},01{n + 2}2345678,{day},visit")
    _import(client, "events", ("\n".join(lines) + "\n").encode(), **options)


@pytest.mark.parametrize(("no_plans", "expect_followups"), [("1", False), ("", True)])
def test_do_not_trigger_plans_keeps_history_from_firing_second_visit(
    client, app, no_plans, expect_followups
):
    store = make_store("hist", region="MY")
    manager = make_staff("manager", [store])
    login(client, manager)
    now = clock.now()
    plans.create_plan(
        store,
        {"template": "second_visit", "name": "Second visit", "status": "active"},
        now=now,
    )
    for n in range(3):
        from app.services import customers

        customers.upsert_customer(store, {"name": f"C{n}", "phone": f"01{n + 2}2345678"}, now)
    _history(client, store, no_plans=no_plans)
    assert Event.select().where(Event.store == store.id).count() == 3
    for hours in range(0, 72, 3):
        scheduler.tick(now=now + timedelta(hours=hours))
    assert (FollowUp.select().where(FollowUp.store == store.id).count() > 0) is expect_followups


def test_another_stores_manager_gets_404(client, app):
    store = make_store("a")
    other = make_store("b")
    manager_a = make_staff("manager", [store])
    manager_b = make_staff("manager", [other])
    login(client, manager_a)
    job_id = _job_id(_upload(client, "customers", CUSTOMERS.encode()))
    client.post("/logout")
    login(client, manager_b)
    for url in ("", "/mapping", "/status", "/rejected.csv"):
        assert client.get(f"/imports/{job_id}{url}").status_code == 404
    for url in ("/mapping", "/run", "/cancel", "/resume"):
        assert client.post(f"/imports/{job_id}{url}").status_code == 404
    assert client.get("/imports/not-an-id/status").status_code == 404


def test_employees_cannot_import(client, shop):
    store, _ = shop
    employee = make_staff("employee", [store])
    login(client, employee)
    assert client.get("/imports").status_code == 403
    assert _upload(client, "customers", CUSTOMERS.encode()).status_code == 403


def test_customer_created_by_the_api_gets_the_signup_bonus_once(client, shop):
    store, _ = shop
    _, raw = tokens.create_token(store, "POS")
    headers = {"Authorization": f"Bearer {raw}"}
    body = {"name": "Nurul", "phone": "+60125550000"}
    assert client.post("/api/v1/customers", json=body, headers=headers).status_code == 201
    assert client.post("/api/v1/customers", json=body, headers=headers).status_code == 200
    customer = Customer.get(Customer.phone == "+60125550000")
    entries = PointsEntry.select().where(PointsEntry.customer == customer.id)
    assert [(e.kind, e.delta) for e in entries] == [("signup", 50)]
    assert customer.points == 50


def test_imported_new_customers_get_the_signup_bonus_once(client, shop):
    store, manager = shop
    login(client, manager)
    _import(client, "customers", CUSTOMERS.encode())
    _import(client, "customers", CUSTOMERS.encode())
    signups = list(PointsEntry.select().where(PointsEntry.kind == "signup"))
    assert len(signups) == 3
    assert {e.delta for e in signups} == {50}
    assert len({e.customer_id for e in signups}) == 3
    assert Customer.get(Customer.name == "Farah").points == 50


def test_an_existing_customer_updated_by_import_gets_no_bonus(client, shop):
    store, manager = shop
    login(client, manager)
    existing = Customer.create(store=store, name="Old", phone="+60123456789")
    _import(client, "customers", CUSTOMERS.encode())
    signups = {e.customer_id for e in PointsEntry.select().where(PointsEntry.kind == "signup")}
    assert len(signups) == 2 and existing.id not in signups


def test_mapping_screen_names_fields_in_the_viewers_language(client, shop):
    store, manager = shop
    manager.locale = "zh_Hans"
    manager.save()
    login(client, manager)
    job_id = _job_id(_upload(client, "customers", CUSTOMERS.encode()))
    page = client.get(f"/imports/{job_id}/mapping").get_data(as_text=True)
    assert 'value="phone" selected>电话</option>' in page
    assert 'value="level" >会员等级</option>' in page
    assert ">level</option>" not in page and ">phone</option>" not in page

    manager.locale = "en"
    manager.save()
    events = _job_id(_upload(client, "events", b"phone,date\n0123456789,2026-11-01\n"))
    page = client.get(f"/imports/{events}/mapping").get_data(as_text=True)
    assert 'value="customer.phone" selected>Client&#39;s phone</option>' in page
    assert ">customer.phone</option>" not in page and ">item.sku</option>" not in page
    twice = {**_mapping_form(client, events), "col-1": "customer.phone"}
    resp = client.post(f"/imports/{events}/mapping", data=twice)
    assert resp.status_code == 422
    assert "More than one column is mapped to Client&#39;s phone." in resp.get_data(as_text=True)


def test_the_check_runs_in_the_worker_and_the_page_polls_until_it_is_done(client, shop):
    store, manager = shop
    login(client, manager)
    job_id = _job_id(_upload(client, "customers", CUSTOMERS.encode()))
    form = _mapping_form(client, job_id)
    queued = []
    import_tasks.huey.immediate = False  # the worker is busy elsewhere: the check waits
    try:
        import_tasks.huey.flush()
        resp = client.post(f"/imports/{job_id}/mapping", data=form, headers=HX)
        queued = [task.name for task in import_tasks.huey.pending()]
    finally:
        import_tasks.huey.flush()
        import_tasks.huey.immediate = True
    assert resp.status_code == 200 and b"<html" not in resp.data
    assert b'hx-trigger="every 1s"' in resp.data and b"Checking every row" in resp.data
    job = import_jobs.read_job(job_id)
    assert job["state"] == "checking" and job["check"] is None
    assert queued == ["check_import"]
    assert client.post(f"/imports/{job_id}/run").status_code == 409
    assert client.get(f"/imports/{job_id}").headers["Location"].endswith(f"/{job_id}/check")

    steps = []
    real_write = import_jobs.write_job

    def watch(job_key, **fields):
        steps.append(fields.get("check_next_row"))
        return real_write(job_key, **fields)

    import_jobs.write_job = watch
    try:
        import_tasks.check_import.call_local(job_id)
    finally:
        import_jobs.write_job = real_write
    assert 4 in steps  # progress saved while checking
    page = client.get(f"/imports/{job_id}/check")
    assert page.status_code == 200 and b"<html" in page.data
    assert b"hx-trigger" not in page.data and b"3 would be created" in page.data
    assert import_jobs.read_job(job_id)["state"] == "checked"
    assert Customer.select().count() == 0
    assert client.post(f"/imports/{job_id}/run").status_code == 303
    assert Customer.select().count() == 3


def test_a_check_whose_worker_died_is_started_again(client, shop):
    store, manager = shop
    login(client, manager)
    job_id = _job_id(_upload(client, "customers", CUSTOMERS.encode()))
    table = import_jobs.load_table(import_jobs.read_job(job_id))
    mapping = importing.suggest_mapping("customers", table.headers)
    old = clock.now() - timedelta(minutes=5)
    import_jobs.start_check(job_id, mapping, None, {"create_tags": True}, old)
    assert import_tasks.resume_stale_imports.call_local() == [job_id]
    job = import_jobs.read_job(job_id)
    assert job["state"] == "checked" and job["check"]["created"] == 3


def test_old_import_files_are_removed_and_the_report_stays(client, shop):
    store, manager = shop
    login(client, manager)
    done = _import(client, "customers", CUSTOMERS.encode())
    abandoned = _job_id(_upload(client, "customers", CUSTOMERS.encode()))
    recent = _import(client, "customers", CUSTOMERS.encode())
    later = clock.now() + timedelta(days=31)
    import_jobs.write_job(recent, finished_at=(later - timedelta(days=2)).isoformat())
    running = _job_id(_upload(client, "customers", CUSTOMERS.encode()))
    import_jobs.write_job(running, state="running", heartbeat=later.isoformat())

    os.environ["REVISIT_IMPORT_FILE_DAYS"] = "30"
    try:
        mine = {done, abandoned, recent, running}
        assert not mine & set(import_jobs.purge_old_files(clock.now()))
        purged = mine & set(import_jobs.purge_old_files(later))
    finally:
        del os.environ["REVISIT_IMPORT_FILE_DAYS"]
    assert purged == {done, abandoned}
    for job_id in purged:
        folder = import_jobs.job_dir(job_id)
        assert not list(folder.glob("upload*")) and (folder / "job.json").exists()
    for job_id in (recent, running):
        assert list(import_jobs.job_dir(job_id).glob("upload*"))

    page = client.get(f"/imports/{done}")
    assert page.status_code == 200 and b"3 created" in page.data
    assert b"has been removed" in page.data and b"Resume" not in page.data
    rejected = client.get(f"/imports/{done}/rejected.csv").get_data(as_text=True)
    assert "Bad Phone" in rejected and "line 4" in rejected
    assert client.get(f"/imports/{abandoned}/mapping").status_code == 303
    assert b"This import was not run." in client.get(f"/imports/{abandoned}").data
    assert client.post(f"/imports/{abandoned}/mapping", data={}).status_code == 409


def test_the_nightly_job_purges_with_the_configured_days(client, shop):
    store, manager = shop
    login(client, manager)
    job_id = _import(client, "customers", CUSTOMERS.encode())
    import_jobs.write_job(job_id, finished_at=(clock.now() - timedelta(days=8)).isoformat())
    os.environ["REVISIT_IMPORT_FILE_DAYS"] = "10"
    try:
        assert job_id not in import_tasks.purge_import_files.call_local()
        os.environ["REVISIT_IMPORT_FILE_DAYS"] = "7"
        assert job_id in import_tasks.purge_import_files.call_local()
    finally:
        del os.environ["REVISIT_IMPORT_FILE_DAYS"]


def test_revisit_import_purge_files_removes_old_uploads(client, app, shop):
    store, manager = shop
    login(client, manager)
    job_id = _import(client, "customers", CUSTOMERS.encode())
    import_jobs.write_job(job_id, finished_at=(clock.now() - timedelta(days=10)).isoformat())
    runner = app.test_cli_runner()
    kept = runner.invoke(args=["import", "purge-files", "--days", "30"])
    assert kept.exit_code == 0 and "Removed the files of" in kept.output
    assert list(import_jobs.job_dir(job_id).glob("upload*"))
    removed = runner.invoke(args=["import", "purge-files", "--days", "5"])
    assert removed.exit_code == 0
    assert not list(import_jobs.job_dir(job_id).glob("upload*"))
    assert import_jobs.read_job(job_id)["purged_at"]
