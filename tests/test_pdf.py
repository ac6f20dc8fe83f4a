"""The weekly PDF report: rendering (Chinese, Thai, Malay names), progress, download, e-mail."""

import json
import subprocess
from datetime import date
from email import message_from_bytes

import pytest
from weasyprint import HTML

from app.models import ContactLog, FollowUp, Plan, Visit
from app.services import pdf, reports
from tests.factories import login, make_customer, make_staff, make_store, utc
from tests.stubs import SmtpSink

NOW = utc(2026, 11, 24, 2, 0)  # Tuesday 10:00 in Kuala Lumpur


@pytest.fixture
def week(app):
    """A week of work with clients named in Chinese, Thai and Malay."""
    store = make_store("kl", name="Bunga Beauty KL", timezone="Asia/Kuala_Lumpur")
    manager = make_staff("manager", [store], name="Farah", email="farah@example.test")
    aisyah = make_staff("employee", [store], name="Nur Aisyah binti Ahmad")
    plan = Plan.create(
        store=store,
        name="Second visit",
        template="second_visit",
        type="behaviour",
        status="active",
        window_days=14,
    )
    for name in ("王小红", "สมหญิง ใจดี", "Siti Nurhaliza"):
        c = make_customer(store, name=name)
        f = FollowUp.create(
            store=store,
            customer=c,
            plan=plan,
            assignee=aisyah,
            due_at=utc(2026, 11, 17, 2),
            status="done",
            completed_at=utc(2026, 11, 17, 3),
        )
        ContactLog.create(
            followup=f, customer=c, staff=aisyah, outcome="reached", at=utc(2026, 11, 17, 3)
        )
        Visit.create(
            customer=c,
            store=store,
            day=date(2026, 11, 19),
            first_at=utc(2026, 11, 19, 4),
            amount="120.00",
        )
    reports.attribute_returns(store)  # the visits above were written directly, not as events
    return store, manager


def render(app, store):
    with app.test_request_context():
        report_id = pdf.new_report(store, date(2026, 11, 16), date(2026, 11, 22), NOW)
        path = pdf.build_report(report_id, NOW)
    return report_id, path


def test_report_pdf_contains_chinese_thai_and_malay_names(app, week, tmp_path):
    store, _manager = week
    _report_id, path = render(app, store)
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "王小红" in text
    assert "สมหญิง" in text
    assert "Nur Aisyah binti Ahmad" in text
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    pages = int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages")))
    assert 1 <= pages <= 4


def test_url_fetcher_refuses_anything_but_static_files():
    fetcher = pdf.StaticOnlyFetcher()
    with pytest.raises(ValueError):
        fetcher.fetch("http://127.0.0.1:1/secret.png")
    with pytest.raises(ValueError):
        fetcher.fetch("file:///etc/passwd")
    css = (pdf.STATIC_DIR / "css" / "app.css").as_uri()
    assert fetcher.fetch(css) is not None
    html = '<img src="file:///etc/hostname"><p>ok</p>'
    doc = HTML(string=html, base_url=pdf.STATIC_DIR.as_uri() + "/", url_fetcher=fetcher)
    assert doc.write_pdf().startswith(b"%PDF")


def test_report_page_queues_a_job_shows_progress_and_downloads(client, week):
    store, manager = week
    login(client, manager)
    resp = client.post(
        "/reports",
        data={"start": "2026-11-16", "end": "2026-11-22"},
        headers={"HX-Request": "true"},
    )
    assert resp.status_code == 201
    html = resp.get_data(as_text=True)
    assert "Download the PDF" in html
    report_id = html.split("/reports/")[1].split(".pdf")[0]
    status = json.loads((pdf.report_dir() / f"{report_id}.json").read_text())
    assert status["state"] == "done" and status["progress"] == 100
    assert client.get(f"/reports/{report_id}/status").status_code == 200
    download = client.get(f"/reports/{report_id}.pdf")
    assert download.status_code == 200 and download.data.startswith(b"%PDF")


def test_report_form_rejects_a_backwards_period(client, week):
    _store, manager = week
    login(client, manager)
    resp = client.post(
        "/reports",
        data={"start": "2026-11-22", "end": "2026-11-16"},
        headers={"HX-Request": "true"},
    )
    assert resp.status_code == 422
    assert "must not be before" in resp.get_data(as_text=True)


def test_status_of_a_queued_report_polls_until_done(client, week):
    store, manager = week
    login(client, manager)
    report_id = pdf.new_report(store, date(2026, 11, 16), date(2026, 11, 22), NOW)
    html = client.get(f"/reports/{report_id}/status", headers={"HX-Request": "true"}).get_data(
        as_text=True
    )
    assert 'hx-trigger="every 1s"' in html and "<progress" in html
    assert client.get(f"/reports/{report_id}.pdf").status_code == 404


def test_monday_eight_oclock_mails_last_weeks_report_to_managers_once(app, week):
    store, _manager = week
    sink = SmtpSink()
    try:
        monday_8 = utc(2026, 11, 30, 0, 15)  # 08:15 in Kuala Lumpur
        with app.test_request_context():
            assert pdf.mail_weekly_reports(utc(2026, 11, 30, 3), sink.url, "r@x.test") == []
            assert pdf.mail_weekly_reports(monday_8, sink.url, "r@x.test") == ["kl"]
            assert pdf.mail_weekly_reports(monday_8, sink.url, "r@x.test") == []
            assert pdf.mail_weekly_reports(monday_8, None, "r@x.test") == []
    finally:
        sink.close()
    assert len(sink.messages) == 1
    assert sink.messages[0]["to"] == ["farah@example.test"]
    msg = message_from_bytes(sink.messages[0]["data"])
    parts = [p for p in msg.walk() if p.get_content_type() == "application/pdf"]
    assert parts and parts[0].get_payload(decode=True).startswith(b"%PDF")
    assert "2026-11-23" in msg["Subject"] or "2026-11-29" in msg["Subject"]
